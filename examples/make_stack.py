"""Make examples/blobs_stack.tif and examples/blobs_labels.png (synthetic, this project's).

A 5-page 16-bit z-stack of 96x128 pixels holding twelve Gaussian blobs with a little
noise, and the label mask of the same blobs (0 = background, 1..12 = blob) in the middle
page. Run: python examples/make_stack.py
"""

from pathlib import Path

import numpy as np
import tifffile

from poolcli.io import png

here = Path(__file__).parent
rng = np.random.default_rng(12)
z, y, x = np.mgrid[0:5, 0:96, 0:128]
stack = np.zeros((5, 96, 128))
labels = np.zeros((96, 128), np.uint8)
for i in range(1, 13):
    cz, cy, cx = rng.uniform(1, 4), rng.uniform(10, 86), rng.uniform(10, 118)
    r = rng.uniform(4, 9)
    blob = np.exp(-((z - cz) ** 2 / 2 + ((y - cy) ** 2 + (x - cx) ** 2) / r**2))
    stack += rng.uniform(8000, 30000) * blob
    labels[blob[2] > 0.5] = i
stack += rng.normal(600, 80, stack.shape)
stack = np.clip(np.rint(stack), 0, 65535).astype(np.uint16)
tifffile.imwrite(here / "blobs_stack.tif", stack, photometric="minisblack",
                 resolution=(10.0, 10.0), resolutionunit="CENTIMETER",
                 metadata={"axes": "ZYX"}, compression="zlib")
with open(here / "blobs_labels.png", "wb") as f:
    png.write_png(labels, f, "L", level=9)
