"""pool_image(): pool a decoded image over height and width, as the image it is.

Colours keep the image's mode and bit depth (rounded half to even and clipped); with an
alpha channel, averaging weights each colour by its alpha, as libvips does, so
transparent pixels do not bleed dark fringes into their neighbours. A palette image is a
label image: kinds that pick a cell pool its indices and keep the palette, the others
pool its colours. ``mode`` on a colour image takes the most frequent whole pixel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .core.kinds import KINDS
from .io.modes import MODES
from .pipeline import Pipeline, StageTiming

if TYPE_CHECKING:  # Pillow loads only when an image is read or written, not with poolcli
    from .io.image_read import LoadedImage

IMAGE_AXES = (0, 1)  # height and width


def picks_cells(pipeline: Pipeline) -> bool:
    """Whether every stage's result is a cell of its window (max, min, median, mode)."""
    return all(KINDS[s.kind].picks_cell for s in pipeline.stages)


def for_pipeline(image: LoadedImage, pipeline: Pipeline) -> LoadedImage:
    """The image as ``pipeline`` pools it: a palette image stays palette indices for kinds
    that pick a cell, and becomes its colours (RGB, or RGBA with transparency) otherwise."""
    if image.mode != "P" or picks_cells(pipeline):
        return image
    return colours(image)


def colours(image: LoadedImage) -> LoadedImage:
    """A palette ("P") image as RGB, or RGBA when its palette has transparent entries."""
    from PIL import Image

    from .io.image_read import LoadedImage

    idx = np.ascontiguousarray(image.array, dtype=np.uint8)
    pil = Image.frombytes("P", (idx.shape[1], idx.shape[0]), idx.tobytes())
    pil.putpalette(image.info.get("palette") or bytes(v for v in range(256) for _ in "rgb"))
    transparency = image.info.get("transparency")
    if transparency is not None:
        pil.info["transparency"] = transparency
    mode = "RGBA" if transparency is not None else "RGB"
    info = {k: v for k, v in image.info.items() if k not in ("palette", "transparency")}
    return LoadedImage(np.asarray(pil.convert(mode)), mode, image.format, info,
                       alpha=mode == "RGBA")


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
    image = for_pipeline(image, pipe)
    if image.array.ndim == 3 and any(s.kind == "mode" for s in pipe.stages):
        return _whole_pixels(image, pipe, keep_mode, dtype, threads)
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


def _whole_pixels(image: LoadedImage, pipe: Pipeline, keep_mode: bool, dtype: Any,
                  threads: int | None) -> tuple[np.ndarray, list[StageTiming]]:
    """Stage by stage, with each `mode` stage taking the most frequent whole pixel: the
    channels are packed into one integer per pixel, pooled, and unpacked, so no pixel is
    ever a mix of channels from different pixels. Ties go to the smallest packed value,
    that is the pixel first in (channel 0, channel 1, ...) order."""
    arr, timings = image.array, []
    for stage in pipe.stages:
        one = Pipeline([stage])
        if stage.kind == "mode" and arr.dtype.kind in "ub" and arr.dtype.itemsize <= 2 \
                and arr.shape[2] * arr.dtype.itemsize <= 8:
            packed, t = one.run(pack_pixels(arr), axes=IMAGE_AXES, threads=threads)
            arr = unpack_pixels(packed, arr.dtype, arr.shape[2])
            c = image.array.shape[2]
            t = [StageTiming(x.stage, (*x.input_shape, c), (*x.output_shape, c), x.seconds)
                 for x in t]
        else:
            arr, t = one.run(arr, axes=IMAGE_AXES, threads=threads)
        timings.extend(t)
    if keep_mode:
        from .io.image_write import to_image_dtype

        return to_image_dtype(arr, image), timings
    return (arr if dtype is None else arr.astype(dtype)), timings


def pack_pixels(array: np.ndarray) -> np.ndarray:
    """(..., C) unsigned pixels -> (...) integers holding all C channels, channel 0 in
    the highest bits (so integer order is channel-by-channel order).

    >>> pack_pixels(np.array([[[1, 2, 3]]], np.uint8))
    array([[66051]], dtype=uint32)
    """
    bits = array.dtype.itemsize * 8
    out_dt = np.uint32 if bits * array.shape[-1] <= 32 else np.uint64
    out = np.zeros(array.shape[:-1], out_dt)
    for c in range(array.shape[-1]):
        out <<= out_dt(bits)
        out |= array[..., c].astype(out_dt)
    return out


def unpack_pixels(packed: np.ndarray, dtype: np.dtype, channels: int) -> np.ndarray:
    """The inverse of ``pack_pixels``."""
    bits = np.dtype(dtype).itemsize * 8
    mask = packed.dtype.type((1 << bits) - 1)
    planes = [(packed >> packed.dtype.type(bits * (channels - 1 - c))) & mask
              for c in range(channels)]
    return np.stack(planes, axis=-1).astype(dtype)


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
