"""Issue 10: 8-bit images are read into NumPy in one copy (image_read._pixels), with
exactly the pixels np.asarray gives."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from poolcli.io import image_read
from poolcli.io.image_read import read_image


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (33, 5)])
def test_one_copy_read_equals_asarray(tmp_path, mode, size):
    bands = len(mode)
    shape = size if bands == 1 else (*size, bands)
    data = np.random.default_rng(bands).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(data, mode).save(tmp_path / "x.png")
    got = read_image(tmp_path / "x.png")
    assert got.array.shape == shape and got.array.dtype == np.uint8
    assert np.array_equal(got.array, data)
    with Image.open(tmp_path / "x.png") as im:
        assert np.array_equal(image_read._pixels(im.convert(mode)), np.asarray(im))


def test_without_the_private_encoder_the_public_way_is_used(tmp_path, monkeypatch):
    data = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    Image.fromarray(data).save(tmp_path / "x.png")

    def gone(img):
        raise AttributeError("no such encoder")

    monkeypatch.setattr(image_read, "_raw_encoder", gone)
    assert np.array_equal(read_image(tmp_path / "x.png").array, data)

    class Short:  # an encoder that stops early: its bytes are not trusted
        def setimage(self, *args):
            pass

        def encode(self, size):
            return 0, 0, b"\0" * 10

        def cleanup(self):
            pass

    monkeypatch.setattr(image_read, "_raw_encoder", lambda img: Short())
    assert np.array_equal(read_image(tmp_path / "x.png").array, data)
