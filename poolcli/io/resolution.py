"""Resolution metadata of a pooled grid, one rule for every format: the physical size is
kept, so a pixel density (an image's dpi, a TIFF's X/YResolution) is divided, and a pixel's
physical size (an OME-TIFF's PhysicalSizeX/Y/Z) multiplied, by how many input cells one
output cell spans on that axis (the stride, or n/out for an adaptive axis).

``spans`` maps an input axis to that count, as ``tiled.stride_factors`` gives it for a
pipeline (its stages' strides multiplied); an axis not in it is not pooled.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# An image array is (height, width[, channels]): y is axis 0, x axis 1.
IMAGE_Y, IMAGE_X = 0, 1


def density(per_unit: tuple[float, float], spans: dict[int, float], x_axis: int | None,
            y_axis: int | None) -> tuple[float, float]:
    """Pixels per unit ``(x, y)`` on the pooled grid.

    >>> density((300.0, 150.0), {0: 3.0, 1: 2.0}, x_axis=1, y_axis=0)
    (150.0, 50.0)
    """
    return (per_unit[0] / spans.get(x_axis, 1.0), per_unit[1] / spans.get(y_axis, 1.0))


def pixel_size(size: float, spans: dict[int, float], axis: int | None) -> float:
    """A pixel's physical size along ``axis`` on the pooled grid."""
    return size * spans.get(axis, 1.0)


def pooled_image(image: Any, spans: dict[int, float]) -> Any:
    """``image`` (a LoadedImage) with the dpi of its pooled grid, for any format written;
    the same image when it has no dpi."""
    dpi = image.info.get("dpi")
    if not dpi:
        return image
    info = {**image.info, "dpi": density(tuple(dpi), spans, IMAGE_X, IMAGE_Y)}
    return dataclasses.replace(image, info=info)
