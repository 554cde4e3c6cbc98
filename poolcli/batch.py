"""Inputs -> jobs -> outputs: expanding folders, naming outputs, pooling and writing one file."""

from __future__ import annotations

import fnmatch
import io
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import PoolError, UsageError
from .io import arrays, images
from .io.atomic import atomic_write
from .io.sniff import ARRAY_SUFFIXES, IMAGE_SUFFIXES, SUFFIX_OF, format_from_suffix, sniff_format
from .pipeline import Pipeline, StageTiming
from .report import FileRecord, peak_rss_bytes
from .tiled import default_memory_limit, pool_file, read_header, working_set

SUPPORTED = IMAGE_SUFFIXES | ARRAY_SUFFIXES
# zlib level 4 writes photographs within 1% of level 6's size in half the time or less.
PNG_LEVEL = 4
STDIO = "-"


@dataclass(frozen=True)
class Job:
    """One input and where its result goes (``STDIO`` for the standard streams)."""

    src: str  # a path, or "-" for standard input
    dest: str  # a path, or "-" for standard output


@dataclass(frozen=True)
class Options:
    """Output settings shared by every job of a run."""

    axes: tuple[int, ...] | None = None
    dtype: str | None = None
    format: str | None = None
    overwrite: bool = False
    premultiply: bool = True
    quality: int | None = None
    compress_level: int | None = None
    memory_limit: int | None = None
    threads: int | None = None
    max_pixels: int | None = None


def walk(folder: Path, recursive: bool, pattern: str | None) -> Iterator[Path]:
    """Supported files under ``folder`` in a stable order; symlinked folders are followed
    once each, so a link loop ends.

    The real tree comes first and linked folders after it, so a folder reachable both
    directly and through a link is found (and mirrored) under its real name.
    """
    seen: set[str] = set()
    stack = [folder]
    links: list[Path] = []
    while stack or links:
        d = stack.pop() if stack else links.pop(0)
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                if recursive:
                    (links if e.is_symlink() else subdirs).append(Path(e.path))
            elif Path(e.name).suffix.lower() in SUPPORTED and (
                    pattern is None or fnmatch.fnmatch(e.name, pattern)):
                yield Path(e.path)
        stack.extend(reversed(subdirs))


def default_name(src: Path, tag: str, fmt: str | None) -> Path:
    """``photo.png`` -> ``photo.max.png`` beside the input (the format's suffix if given)."""
    suffix = SUFFIX_OF[fmt] if fmt else src.suffix
    return src.with_name(f"{src.stem}.{tag}{suffix}")


def plan_jobs(inputs: list[str], output: str | None, tag: str, *, recursive: bool = False,
              pattern: str | None = None, fmt: str | None = None) -> list[Job]:
    """Expand inputs (files, folders, "-") and decide every output path, or raise UsageError."""
    if not inputs:
        raise UsageError("no INPUT given; name image or .npy files, folders, or - for stdin")
    if inputs.count(STDIO) > 1:
        raise UsageError("standard input (-) can be named only once")
    pairs: list[tuple[str, Path | None]] = []  # (file, folder it came from)
    for name in inputs:
        if name == STDIO:
            pairs.append((STDIO, None))
            continue
        p = Path(name)
        if p.is_dir():
            found = list(walk(p, recursive, pattern))
            if output not in (None, STDIO) and recursive:
                # an output folder inside the input folder: last run's outputs are not inputs
                skip = Path(output).resolve()
                if skip != p.resolve():
                    found = [f for f in found if not f.resolve().is_relative_to(skip)]
            if not found:
                raise UsageError(f"folder {name} holds no supported files "
                                 f"({', '.join(sorted(SUPPORTED))})"
                                 + ("" if recursive else "; -r searches sub-folders"))
            pairs.extend((str(f), p) for f in found)
        elif p.exists():
            pairs.append((name, None))
        else:
            raise UsageError(f"input {name} does not exist")
    many = len(pairs) > 1 or any(folder is not None for _, folder in pairs)
    if STDIO in inputs and len(pairs) > 1:
        raise UsageError("standard input (-) must be the only input")
    if STDIO in inputs and output is None:
        raise UsageError("standard input needs -o: a file name, or - for standard output")
    if output == STDIO and many:
        raise UsageError("-o - (standard output) takes one input file; give -o a folder")
    out_dir: Path | None = None
    # A trailing slash says "a folder" even for one input that does not exist yet.
    as_folder = output is not None and output.endswith(("/", os.sep))
    if output is not None and output != STDIO and (many or as_folder or Path(output).is_dir()):
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"-o {output} is a file, but {len(pairs)} inputs need a folder")
    # Every input, as the file system sees it: no output may land on any of them.
    sources = {Path(src).resolve(): src for src, _ in pairs if src != STDIO}
    jobs = []
    for src, folder in pairs:
        if src == STDIO:
            jobs.append(Job(STDIO, str(output)))
            continue
        s = Path(src)
        if output == STDIO:
            dest = STDIO
        elif out_dir is None and output is not None:
            dest = output
        elif out_dir is None:
            dest = str(default_name(s, tag, fmt))
        else:
            rel = s.relative_to(folder) if folder is not None else Path(s.name)
            name = rel.with_suffix(SUFFIX_OF[fmt]) if fmt else rel
            dest = str(out_dir / name)
        if dest != STDIO:
            _check_dest(Path(dest), s, sources, out_dir)
        jobs.append(Job(src, dest))
    dests = [j.dest for j in jobs if j.dest != STDIO]
    if len(set(dests)) != len(dests):
        dup = next(d for d in dests if dests.count(d) > 1)
        raise UsageError(f"two inputs would both be written to {dup}; use -o with a folder "
                         "input to keep sub-folders apart")
    return jobs


def _check_dest(dest: Path, src: Path, sources: dict[Path, str], out_dir: Path | None) -> None:
    """Refuse an output that is an input, or that a symlink would carry out of ``out_dir``."""
    target = dest.resolve()
    if target in sources:
        which = "the input itself" if target == src.resolve() else f"the input {sources[target]}"
        raise UsageError(f"output {dest} is {which}; poolcli never writes over an input")
    if out_dir is not None and not target.is_relative_to(out_dir.resolve()):
        raise UsageError(f"output {dest} would be written to {target}, outside the output "
                         f"folder {out_dir} (a symbolic link inside it points elsewhere)")


def _out_format(job: Job, in_format: str, opts: Options) -> str:
    if opts.format:
        return opts.format
    if job.dest != STDIO:
        by_suffix = format_from_suffix(job.dest)
        if by_suffix:
            return by_suffix
    return in_format


def run_job_in_worker(job: Job, pipe: Pipeline, opts: Options) -> list[FileRecord]:
    """run_job in a worker process, which ignores SIGINT except while it runs a job.

    Workers inherit an ignored SIGINT from the fork server. A Ctrl-C reaches the whole
    process group: a busy worker stops its file (no partial output), and the executor
    hands the KeyboardInterrupt back as the job's result; an idle one, waiting for work,
    would print a traceback instead, so it keeps ignoring SIGINT.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_job(job, pipe, opts)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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
    except FileExistsError as e:
        rec.error = str(e)
        rec.exists = True
    except (images.ImageReadError, arrays.ArrayReadError) as e:
        rec.error = f"cannot read: {e}"
    except UsageError as e:
        # The options cannot apply to this kind of input: the batch stops here.
        rec.error = str(e)
        rec.usage_error = rec.stop = True
    except PoolError as e:
        rec.error = str(e)
        rec.usage_error = True
    except (ValueError, TypeError) as e:
        rec.error = str(e)
    except MemoryError:
        rec.error = "out of memory; try --memory-limit with a .npy input"
    except OSError as e:
        rec.error = e.strerror or str(e)
        if e.filename:
            rec.error = f"{e.filename}: {rec.error}"
    rec.status = "error"
    rec.seconds = time.perf_counter() - t_start
    return [rec]


def _run(job: Job, pipe: Pipeline, opts: Options, rec: FileRecord, t_start: float,
         stdin: BinaryIO | None, stdout: BinaryIO | None) -> list[FileRecord]:
    t0 = time.perf_counter()
    if job.src == STDIO:
        data: bytes | None = (stdin.read() if stdin is not None else b"")
        head = data[:16]
        rec.input_bytes = len(data)
    else:
        data = None
        with open(job.src, "rb") as f:
            head = f.read(16)
        rec.input_bytes = os.path.getsize(job.src)
    in_format = sniff_format(head)
    if in_format is None:
        raise images.ImageReadError("not a PNG, JPEG, TIFF, BMP, WebP, GIF, .npy or .npz file")
    out_format = _out_format(job, in_format, opts)
    if in_format in ("npy", "npz") and out_format not in ("npy", "npz"):
        raise UsageError(f"an array cannot be written as {out_format}; use .npy or .npz")
    # Options that cannot apply are refused before any decoding.
    if in_format not in ("npy", "npz"):
        if opts.axes is not None and opts.axes != (0, 1):
            raise UsageError("--axes applies to .npy/.npz inputs; images are pooled over "
                             "height and width")
        if opts.dtype is not None and out_format not in ("npy", "npz"):
            raise UsageError("--dtype applies to array outputs; an image keeps its mode; "
                             "write .npy (--format npy) to choose a dtype")
    if in_format == "npy" and data is None and out_format == "npy" and job.dest != STDIO:
        head_info = read_header(job.src)
        limit = opts.memory_limit or default_memory_limit()
        if working_set(head_info.shape, head_info.dtype, pipe, opts.axes) > limit:
            res = pool_file(job.src, job.dest, pipe, axes=opts.axes, dtype=opts.dtype,
                            threads=opts.threads, memory_limit=limit, overwrite=opts.overwrite)
            rec.input_shape, rec.input_dtype = res.input_shape, str(res.input_dtype)
            rec.output_shape, rec.output_dtype = res.output_shape, str(res.output_dtype)
            rec.axes, rec.stages = res.axes, res.stages
            rec.pool_seconds = sum(s.seconds for s in res.stages)
            rec.seconds = time.perf_counter() - t_start
            return [rec]
    src: Any = data if data is not None else job.src
    if in_format in ("npy", "npz"):
        return _run_arrays(job, pipe, opts, rec, src, out_format, t0, t_start, stdout)
    img = images.read_image(src, max_pixels=opts.max_pixels)
    rec.load_seconds = time.perf_counter() - t0
    arr = img.array
    rec.input_shape, rec.input_dtype, rec.axes = arr.shape, str(arr.dtype), (0, 1)
    t1 = time.perf_counter()
    out, rec.stages = _pool_image(img, pipe, opts, out_format)
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
        rec.output_dtype = str(images.MODE_DTYPES[img.mode])
        level = opts.compress_level
        if level is None and out_format == "png":
            level = PNG_LEVEL
        _write(job, opts, stdout, lambda f: images.write_image(
            out, f, img, format=out_format, quality=opts.quality, compress_level=level,
            threads=opts.threads))
    rec.save_seconds = time.perf_counter() - t2
    rec.seconds = time.perf_counter() - t_start
    return [rec]


def _pool_image(img: images.LoadedImage, pipe: Pipeline, opts: Options, out_format: str):
    """Pool an image's height and width; alpha-weighted when every stage averages."""
    as_image = out_format not in ("npy", "npz")
    if img.alpha and opts.premultiply and all(s.kind == "avg" for s in pipe.stages):
        colour, alpha = images.premultiplied(img.array)
        c_out, timings = pipe.run(colour, axes=(0, 1), threads=opts.threads)
        a_out, t_alpha = pipe.run(alpha, axes=(0, 1), threads=opts.threads)
        out = images.unpremultiply(c_out, a_out)
        c = img.array.shape[2]  # report the image's channels, not colour and alpha apart
        timings = [StageTiming(t.stage, (*t.input_shape[:2], c), (*t.output_shape[:2], c),
                               t.seconds + ta.seconds)
                   for t, ta in zip(timings, t_alpha, strict=True)]
        if not as_image and opts.dtype is not None:
            out = out.astype(opts.dtype)
        return out, timings
    if as_image:
        # Pool straight into the image's dtype (rounded half to even, clipped, in cache);
        # a 1-bit image keeps the float mean for its >= 0.5 rule.
        target = images.MODE_DTYPES[img.mode]
        return pipe.run(img.array, axes=(0, 1), threads=opts.threads,
                        dtype=None if target.kind == "b" else target)
    return pipe.run(img.array, axes=(0, 1), threads=opts.threads, dtype=opts.dtype)


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


def _write(job: Job, opts: Options, stdout: BinaryIO | None, write) -> None:
    if job.dest == STDIO:
        buf = io.BytesIO()  # encode fully first: a failure must not leave half a file
        write(buf)
        if stdout is None:
            raise ValueError("no standard output to write to")
        stdout.write(buf.getvalue())
        stdout.flush()
        return
    dest = Path(job.dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, write, overwrite=opts.overwrite)
