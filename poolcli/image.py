"""pool_image(): pool a decoded image over height and width, as the image it is.

Colours keep the image's mode and bit depth (rounded half to even and clipped); with an
alpha channel, averaging weights each colour by its alpha, as libvips does, so
transparent pixels do not bleed dark fringes into their neighbours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .io.modes import MODES
from .pipeline import Pipeline, StageTiming

if TYPE_CHECKING:  # Pillow loads only when an image is read or written, not with poolcli
    from .io.image_read import LoadedImage

IMAGE_AXES = (0, 1)  # height and width


def pool_image(image: LoadedImage, pipeline: Pipeline | str, *, premultiply: bool = True,
               keep_mode: bool = True, dtype: Any = None,
               threads: int | None = None) -> np.ndarray:
    """Pool ``image`` (from ``read_image``) through ``pipeline`` over height and width.

    With ``keep_mode`` the result is in the dtype of the image's mode, ready for
    ``write_image``; otherwise it is the pipeline's own result (``dtype`` overrides).
    ``premultiply`` weights colour by alpha when every stage averages.

    >>> from poolcli.io.image_read import LoadedImage
    >>> img = LoadedImage(np.array([[[0, 0, 0, 0], [200, 100, 50, 255]]], np.uint8), "RGBA",
    ...                   "png", alpha=True)
    >>> pool_image(img, "avg:k=1x2")
    array([[[200, 100,  50, 128]]], dtype=uint8)
    """
    return run_image(image, pipeline, premultiply=premultiply, keep_mode=keep_mode,
                     dtype=dtype, threads=threads)[0]


def run_image(image: LoadedImage, pipeline: Pipeline | str, *, premultiply: bool = True,
              keep_mode: bool = True, dtype: Any = None, threads: int | None = None,
              ) -> tuple[np.ndarray, list[StageTiming]]:
    """pool_image(), with each stage's timing as Pipeline.run gives it."""
    pipe = Pipeline.parse(pipeline) if isinstance(pipeline, str) else pipeline
    if image.alpha and premultiply and all(s.kind == "avg" for s in pipe.stages):
        colour, alpha = premultiplied(image.array)
        c_out, timings = pipe.run(colour, axes=IMAGE_AXES, threads=threads)
        a_out, t_alpha = pipe.run(alpha, axes=IMAGE_AXES, threads=threads)
        out = unpremultiply(c_out, a_out)
        c = image.array.shape[2]  # report the image's channels, not colour and alpha apart
        timings = [StageTiming(t.stage, (*t.input_shape[:2], c), (*t.output_shape[:2], c),
                               t.seconds + ta.seconds)
                   for t, ta in zip(timings, t_alpha, strict=True)]
        if keep_mode:
            from .io.image_write import to_image_dtype

            return to_image_dtype(out, image), timings
        return (out if dtype is None else out.astype(dtype)), timings
    if keep_mode:
        # Pool straight into the image's dtype (rounded half to even, clipped, in cache);
        # a 1-bit image keeps the float mean for its >= 0.5 rule.
        target = MODES[image.mode].dtype
        return pipe.run(image.array, axes=IMAGE_AXES, threads=threads,
                        dtype=None if target.kind == "b" else target)
    return pipe.run(image.array, axes=IMAGE_AXES, threads=threads, dtype=dtype)


def premultiplied(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (H, W, C) whose last channel is alpha into float64 colour*alpha and alpha.

    Alpha-weighted averaging, as libvips does: pool both results with the same average
    pooling, then call ``unpremultiply``. Each output colour is then
    ``sum(colour * alpha) / sum(alpha)`` over the window, so a transparent pixel adds
    nothing to its neighbours' colour (no dark fringes), while the output alpha is the
    plain average of the alphas. Returns colour of shape (H, W, C-1) and alpha (H, W, 1).

    >>> c, a = premultiplied(np.array([[[0, 0, 0, 0], [255, 255, 255, 255]]], np.uint8))
    >>> unpremultiply(c.mean(axis=1, keepdims=True), a.mean(axis=1, keepdims=True))
    array([[[255. , 255. , 255. , 127.5]]])
    """
    if array.ndim != 3 or array.shape[2] < 2:
        raise ValueError(
            f"premultiplied needs (H, W, C) with C >= 2, the last channel "
            f"alpha; got shape {array.shape}"
        )
    alpha = array[..., -1:].astype(np.float64)
    return array[..., :-1].astype(np.float64) * alpha, alpha


def unpremultiply(colour_sum: np.ndarray, alpha_sum: np.ndarray) -> np.ndarray:
    """Pooled colour*alpha divided by pooled alpha, with the pooled alpha as last channel.

    Where the pooled alpha is 0 (a window of fully transparent pixels) the colour is 0.
    ``alpha_sum`` may be (H', W', 1) or (H', W'). Returns float64 (H', W', C).
    """
    colour_sum = np.asarray(colour_sum, dtype=np.float64)
    alpha_sum = np.asarray(alpha_sum, dtype=np.float64)
    if alpha_sum.ndim == colour_sum.ndim - 1:
        alpha_sum = alpha_sum[..., None]
    colour = np.zeros_like(colour_sum)
    np.divide(colour_sum, alpha_sum, out=colour, where=alpha_sum > 0)
    return np.concatenate([colour, alpha_sum], axis=-1)
