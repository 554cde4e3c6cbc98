"""One job: load an input, pool it, write its output whole; every failure is a record."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import PoolError, UsageError
from ..image import IMAGE_AXES, for_pipeline, picks_cells, run_image
from ..io import arrays, resolution, tiff, zarr_store
from ..io.atomic import OutputRefused, atomic_write
from ..io.image_read import ImageReadError, read_image
from ..io.image_write import check_settings_apply, write_image
from ..io.inputs import NotAFile, open_regular
from ..io.modes import MODES
from ..io.sniff import format_from_suffix, sniff_format
from ..io.zarr_store import is_zarr_path
from ..pipeline import Pipeline
from ..stores import pool_store
from ..tiled import (
    OverLimit,
    check_fits,
    default_memory_limit,
    pool_file,
    read_header,
    stride_factors,
    working_set,
)
from .jobs import STDIO, Job, Options
from .report import FileRecord, peak_rss_bytes

# zlib level 4 writes photographs within 1% of level 6's size in half the time or less.
PNG_LEVEL = 4


def _out_format(job: Job, in_format: str, opts: Options) -> str:
    if opts.format:
        return opts.format
    if job.dest != STDIO:
        by_suffix = format_from_suffix(job.dest)
        if by_suffix:
            return by_suffix
    return in_format


def run_job(job: Job, pipe: Pipeline, opts: Options, *, stdin: BinaryIO | None = None,
            stdout: BinaryIO | None = None) -> list[FileRecord]:
    """Load, pool and write one input; a failure is returned as an error record.

    Usage errors (a pipeline that cannot fit this input is the input's failure, not a
    usage error) and I/O errors never escape as exceptions, except KeyboardInterrupt.
    Each record carries the process that did the work and its peak RSS so far.
    """
    recs = _run_job(job, pipe, opts, stdin, stdout)
    pid, peak = os.getpid(), peak_rss_bytes()
    for r in recs:
        r.pid, r.process_peak_rss = pid, peak
    return recs


def _run_job(job: Job, pipe: Pipeline, opts: Options, stdin: BinaryIO | None,
             stdout: BinaryIO | None) -> list[FileRecord]:
    t_start = time.perf_counter()
    rec = FileRecord(input="<stdin>" if job.src == STDIO else job.src,
                     output="<stdout>" if job.dest == STDIO else job.dest)
    try:
        return _run(job, pipe, opts, rec, t_start, stdin, stdout)
    except (OutputRefused, UsageError) as e:
        # An input, a device, FIFO or symlink named as an output, or options that cannot
        # apply to this kind of input: a naming or usage mistake, and the batch stops here.
        rec.error = str(e)
        rec.usage_error = rec.stop = True
    except FileExistsError as e:
        rec.error = str(e)
        rec.exists = True
    except (ImageReadError, arrays.ArrayReadError, tiff.TiffReadError, NotAFile) as e:
        rec.error = f"cannot read: {e}"
    except StreamClosed as e:
        rec.error = str(e)
        rec.stop = True
    except PoolError as e:
        rec.error = str(e)
        rec.usage_error = True
    except (ValueError, TypeError) as e:
        rec.error = str(e)
    except MemoryError:
        # a limit cannot help here: what fits it was checked before the work started
        rec.error = "out of memory: the machine could not allocate what this input needs"
    except OSError as e:
        rec.error = e.strerror or str(e)
        rec.cause = e.strerror
        if e.filename:
            rec.error = f"{e.filename}: {rec.error}"
    rec.status = "error"
    rec.seconds = time.perf_counter() - t_start
    return [rec]


def _run(job: Job, pipe: Pipeline, opts: Options, rec: FileRecord, t_start: float,
         stdin: BinaryIO | None, stdout: BinaryIO | None) -> list[FileRecord]:
    t0 = time.perf_counter()
    if STDIO not in (job.src, job.dest) and (is_zarr_path(job.src) or is_zarr_path(job.dest)):
        return _run_zarr(job, pipe, opts, rec, t0, t_start)
    limit = opts.memory_limit or default_memory_limit()
    if job.src == STDIO:
        data: bytes | None = (stdin.read(limit + 1) if stdin is not None else b"")
        if len(data) > limit:
            raise OverLimit(f"standard input holds more than the memory limit of {limit:,} "
                            "bytes; save it to a file (a .npy file is pooled in chunks)")
        head = data[:16]
        rec.input_bytes = len(data)
    else:
        data = None
        with open_regular(job.src) as f:
            head = f.read(16)
            rec.input_bytes = os.fstat(f.fileno()).st_size
    in_format = sniff_format(head)
    if in_format is None:
        raise ImageReadError("not a PNG, JPEG, TIFF, BMP, WebP, GIF, .npy or .npz file")
    out_format = _out_format(job, in_format, opts)
    if in_format in ("npy", "npz") and out_format not in ("npy", "npz"):
        raise UsageError(f"an array cannot be written as {out_format}; use .npy or .npz")
    src: Any = data if data is not None else job.src
    if in_format == "tiff" and (opts.axes is not None or opts.dtype is not None
                                or tiff.needs_tifffile(src)):
        # a stack, or samples Pillow would not hold exactly: one array through tifffile
        return _run_tiff(job, pipe, opts, rec, src, out_format, t0, t_start, stdout)
    # Options that cannot apply are refused before any decoding.
    try:
        check_settings_apply(out_format, opts.quality, opts.compress_level)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if in_format not in ("npy", "npz"):
        if opts.axes is not None and opts.axes != (0, 1):
            raise UsageError("`axes` applies to .npy/.npz inputs; images are pooled over "
                             "height and width")
        if opts.dtype is not None and out_format not in ("npy", "npz"):
            raise UsageError("`dtype` applies to array outputs; an image keeps its mode; "
                             "write .npy (format=npy) to choose a dtype")
    if in_format == "npy" and data is None and out_format == "npy" and job.dest != STDIO:
        head_info = read_header(job.src)
        if working_set(head_info.shape, head_info.dtype, pipe, opts.axes) > limit:
            res = pool_file(job.src, job.dest, pipe, axes=opts.axes, dtype=opts.dtype,
                            threads=opts.threads, memory_limit=limit, overwrite=opts.overwrite,
                            protect=opts.protect)
            return [from_result(rec, res, t_start)]
    if in_format in ("npy", "npz"):
        # everything is held at once: refuse before reading what cannot fit
        heads = (arrays.npz_headers(src) if in_format == "npz"
                 else {"": arrays.read_npy_header(io.BytesIO(data) if data is not None
                                                  else job.src)})
        need = sum(working_set(h.shape, h.dtype, pipe, opts.axes) for h in heads.values()
                   if h.shape and not h.dtype.hasobject)
        remedy = ("write a .npy file (not standard output) to pool it in chunks"
                  if in_format == "npy" and data is None else "")
        check_fits("pooling it in memory", need, limit, remedy)
        return _run_arrays(job, pipe, opts, rec, src, out_format, t0, t_start, stdout)
    # a palette stays indices (and its palette) when the kinds pick cells: label images
    img = for_pipeline(read_image(src, max_pixels=opts.max_pixels,
                                  keep_palette=picks_cells(pipe)), pipe)
    rec.load_seconds = time.perf_counter() - t0
    return _run_image(job, pipe, opts, rec, img, out_format, t_start, stdout)


def _run_image(job, pipe, opts, rec, img, out_format, t_start, stdout):
    arr = img.array
    rec.input_shape, rec.input_dtype, rec.axes = arr.shape, str(arr.dtype), IMAGE_AXES
    limit = opts.memory_limit or default_memory_limit()
    check_fits("pooling it", working_set(arr.shape, arr.dtype, pipe, IMAGE_AXES), limit)
    t1 = time.perf_counter()
    as_image = out_format not in ("npy", "npz")
    out, rec.stages = run_image(img, pipe, premultiply=opts.premultiply, keep_mode=as_image,
                                dtype=opts.dtype, threads=opts.threads)
    rec.pool_seconds = time.perf_counter() - t1
    rec.output_shape = out.shape
    t2 = time.perf_counter()
    if out_format in ("npy", "npz"):
        rec.output_dtype = str(out.dtype)
        if out_format == "npy":
            _write(job, opts, stdout, lambda f: arrays.write_npy(out, f))
        else:
            _write(job, opts, stdout, lambda f: arrays.write_npz({"image": out}, f))
    else:
        rec.output_dtype = str(MODES[img.mode].dtype)
        level = opts.compress_level
        if level is None and out_format == "png":
            level = PNG_LEVEL
        spans = stride_factors(pipe.plans(arr.shape, arr.dtype, axes=IMAGE_AXES))
        like = resolution.pooled_image(img, spans)  # the dpi of the pooled grid
        _write(job, opts, stdout, lambda f: write_image(
            out, f, like, format=out_format, quality=opts.quality, compress_level=level,
            threads=opts.threads))
    rec.save_seconds = time.perf_counter() - t2
    rec.seconds = time.perf_counter() - t_start
    return [rec]


def _run_zarr(job: Job, pipe: Pipeline, opts: Options, rec: FileRecord, t0: float,
              t_start: float) -> list[FileRecord]:
    """A zarr store in or out: streamed chunk by chunk within the memory limit."""
    limit = opts.memory_limit or default_memory_limit()
    if is_zarr_path(job.src):
        fill = zarr_store.open_input(job.src).fill_value
        rec.notes = _nodata_notes(pipe, "fill_value", None if fill is None or fill == 0
                                  or fill != fill else fill)
    if is_zarr_path(job.dest):
        if not (is_zarr_path(job.src) or format_from_suffix(job.src) == "npy"):
            raise UsageError("a .zarr output is made from a zarr array or a .npy file")
        res = pool_store(job.src, job.dest, pipe, axes=opts.axes, dtype=opts.dtype,
                         threads=opts.threads, memory_limit=limit, overwrite=opts.overwrite,
                         protect=opts.protect)
        return [from_result(rec, res, t_start)]
    out_format = _out_format(job, "zarr", opts)
    if out_format not in ("npy", "npz"):
        raise UsageError(f"a zarr array is written as zarr, npy or npz, not {out_format}")
    source = zarr_store.open_input(job.src)
    if working_set(tuple(source.shape), source.dtype, pipe, opts.axes) > limit:
        raise PoolError(f"{job.src} is larger than `memory_limit` for a .{out_format} "
                        "output; write a .zarr output, which is made chunk by chunk")
    arr = np.asarray(source[...])
    rec.load_seconds = time.perf_counter() - t0
    out = _pool_array(pipe, rec, arr, opts.axes, opts.threads, opts.dtype)
    t2 = time.perf_counter()
    _write_array(job, opts, None, out, out_format, "array")
    rec.save_seconds = time.perf_counter() - t2
    rec.seconds = time.perf_counter() - t_start
    return [rec]


def from_result(rec: FileRecord, res: Any, t_start: float) -> FileRecord:
    """``rec`` filled from what a streamed run returned (``tiled.FileResult``)."""
    rec.input_shape, rec.input_dtype = res.input_shape, str(res.input_dtype)
    rec.output_shape, rec.output_dtype = res.output_shape, str(res.output_dtype)
    rec.axes, rec.stages = res.axes, res.stages
    rec.pool_seconds = sum(s.seconds for s in res.stages)
    rec.seconds = time.perf_counter() - t_start
    return rec


def _pool_array(pipe: Pipeline, rec: FileRecord, arr: np.ndarray, axes: Any,
                threads: int | None, dtype: Any) -> np.ndarray:
    """Pool a whole array through ``pipe``, filling ``rec``'s shapes, axes and times."""
    rec.input_shape, rec.input_dtype = arr.shape, str(arr.dtype)
    t1 = time.perf_counter()
    out, rec.stages = pipe.run(arr, axes=axes, threads=threads, dtype=dtype)
    rec.pool_seconds = time.perf_counter() - t1
    rec.axes = pipe.plans(arr.shape, arr.dtype, axes=axes)[0].axes
    rec.output_shape, rec.output_dtype = out.shape, str(out.dtype)
    return out


def _write_array(job: Job, opts: Options, stdout: BinaryIO | None, out: np.ndarray,
                 out_format: str, member: str) -> None:
    """``out`` as a .npy, or as the one ``member`` of a .npz."""
    if out_format == "npy":
        _write(job, opts, stdout, lambda f: arrays.write_npy(out, f))
    else:
        _write(job, opts, stdout, lambda f: arrays.write_npz({member: out}, f))


def _nodata_notes(pipe: Pipeline, what: str, value: Any) -> list[str]:
    """A note when the input names a nodata value that no stage applies (never silently)."""
    if value is None or any("nodata" in st.options for st in pipe.stages):
        return []
    return [f"the file's {what} is {value}; it is not applied: give nodata={value} to "
            "skip those cells"]


def _run_tiff(job, pipe, opts, rec, src, out_format, t0, t_start, stdout):
    """A TIFF read whole by tifffile (every page, any samples) and written back as one."""
    stack = tiff.read_tiff(src)
    rec.load_seconds = time.perf_counter() - t0
    if out_format not in ("tiff", "npy", "npz"):
        img = tiff.as_image(stack)
        if img is None or opts.axes is not None:
            raise ValueError(f"a TIFF of shape {stack.array.shape} (axes {stack.axes}) is "
                             f"written as tiff, npy or npz, not {out_format}; use format=tiff")
        return _run_image(job, pipe, opts, rec, img, out_format, t_start, stdout)
    arr = stack.array
    rec.notes = _nodata_notes(pipe, "GDAL_NODATA tag", stack.gdal_nodata)
    axes = opts.axes if opts.axes is not None else stack.image_axes
    # a TIFF keeps its sample type, as an image keeps its mode; an array takes the result's
    dtype = opts.dtype if opts.dtype is not None or out_format != "tiff" else arr.dtype
    out = _pool_array(pipe, rec, arr, axes, opts.threads, dtype)
    t2 = time.perf_counter()
    if out_format == "tiff":
        factors = stride_factors(pipe.plans(arr.shape, arr.dtype, axes=axes))
        result = tiff.scaled(stack, out, factors)
        _write(job, opts, stdout, lambda f: tiff.write_tiff(result, f))
    else:
        _write_array(job, opts, stdout, out, out_format, "image")
    rec.save_seconds = time.perf_counter() - t2
    rec.seconds = time.perf_counter() - t_start
    return [rec]


def _run_arrays(job, pipe, opts, rec, src, out_format, t0, t_start, stdout):
    members = arrays.read_arrays(src)
    rec.load_seconds = time.perf_counter() - t0
    results: dict[str, np.ndarray] = {}
    records = []
    base = rec.input
    for name, arr in members.items():
        r = rec if not records else FileRecord(input=rec.input, output=rec.output)
        if name:
            r.input = f"{base}[{name}]"
        if arr.ndim == 0:
            raise PoolError(f"array {name or ''} is 0-d (a scalar); there is nothing to pool"
                            .replace("array  ", "array "))
        t1 = time.perf_counter()
        out, r.stages = pipe.run(arr, axes=opts.axes, threads=opts.threads, dtype=opts.dtype)
        r.pool_seconds = time.perf_counter() - t1
        r.input_shape, r.input_dtype = arr.shape, str(arr.dtype)
        r.output_shape, r.output_dtype = out.shape, str(out.dtype)
        r.axes = pipe.plans(arr.shape, arr.dtype, axes=opts.axes)[0].axes
        results[name or "arr_0"] = out
        records.append(r)
    t2 = time.perf_counter()
    if out_format == "npy":
        if len(results) != 1:
            raise ValueError(f"{len(results)} arrays cannot go into one .npy; write .npz")
        (only,) = results.values()
        _write(job, opts, stdout, lambda f: arrays.write_npy(only, f))
    else:
        _write(job, opts, stdout, lambda f: arrays.write_npz(results, f))
    rec.save_seconds = time.perf_counter() - t2
    rec.seconds = time.perf_counter() - t_start
    return records


class StreamClosed(Exception):
    """Standard output was closed (or failed) before a whole output was written."""


def _write_all(stream: BinaryIO, data: memoryview) -> None:
    """Write every byte or raise: a pipe whose reader left takes part of a large write
    and reports success, so the count of each system call is checked."""
    try:
        fd = stream.fileno()
    except (OSError, AttributeError, ValueError):  # not a real file (a buffer in tests)
        stream.write(data)
        stream.flush()
        return
    stream.flush()
    done = 0
    while done < len(data):
        n = os.write(fd, data[done:done + (1 << 20)])
        if n <= 0:
            raise BrokenPipeError(32, "short write")
        done += n


def _write(job: Job, opts: Options, stdout: BinaryIO | None, write) -> None:
    if job.dest == STDIO:
        buf = io.BytesIO()  # encode fully first: a failure must not leave half a file
        write(buf)
        if stdout is None:
            raise ValueError("no standard output to write to")
        try:
            _write_all(stdout, buf.getbuffer())
        except (BrokenPipeError, ConnectionResetError):
            raise StreamClosed("standard output was closed before the whole output was "
                               "written (the reading program ended early)") from None
        except OSError as e:
            raise StreamClosed(f"standard output failed before the whole output was "
                               f"written ({e.strerror or e})") from None
        return
    dest = Path(job.dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, write, overwrite=opts.overwrite, protect=opts.protect,
                 same_ok=opts.retried)
