"""Inputs -> jobs: expanding folders and naming every output before any work starts."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..io.sniff import ARRAY_SUFFIXES, IMAGE_SUFFIXES, SUFFIX_OF, format_from_suffix
from ..io.zarr_store import is_zarr_path

SUPPORTED = IMAGE_SUFFIXES | ARRAY_SUFFIXES
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
    retried: bool = False  # a job may run again (a cluster task): its own output is no conflict
    # Files no output may replace, as (st_dev, st_ino): every input, and the file
    # standard input came from (a name check alone misses hard links and redirections)
    protect: frozenset[tuple[int, int]] = frozenset()


def name_matches(name: str, pattern: str | None) -> bool:
    """Whether a file name matches a glob, ignoring case (``*.jpg`` finds ``PHOTO.JPG``),
    as suffixes are recognised in any case."""
    return pattern is None or fnmatch.fnmatchcase(name.lower(), pattern.lower())


def walk(folder: Path, recursive: bool, pattern: str | None) -> Iterator[Path]:
    """Supported files under ``folder`` in a stable order; symlinked folders are followed
    once each, so a link loop ends. ``pattern`` matches names case-insensitively.

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
            # a FIFO, device or socket is never searched: reading one may never end
            elif (e.is_file() and Path(e.name).suffix.lower() in SUPPORTED
                  and name_matches(e.name, pattern)):
                yield Path(e.path)
        stack.extend(reversed(subdirs))


def expand(inputs: list[str], recursive: bool = False, pattern: str | None = None, *,
           skip: Path | None = None) -> list[tuple[str, Path | None]]:
    """(file, the folder it was found in) per input: a folder stands for its supported files.

    ``skip`` is a folder whose files are never inputs (an output folder inside an input
    folder: last run's outputs). UsageError for a missing input or a folder with no files.
    """
    pairs: list[tuple[str, Path | None]] = []
    for name in inputs:
        if name == STDIO:
            pairs.append((STDIO, None))
            continue
        p = Path(name)
        if p.is_dir() and not is_zarr_path(name):  # a zarr store is one input
            found = list(walk(p, recursive, pattern))
            if skip is not None and skip.resolve() != p.resolve():
                found = [f for f in found if not f.resolve().is_relative_to(skip.resolve())]
            if not found:
                raise UsageError(_nothing_found(name, p, recursive, pattern))
            pairs.extend((str(f), p) for f in found)
        elif p.exists():
            pairs.append((name, None))
        else:
            # `poolcli avg in.jpg out.jpg`: the last name was meant as the output
            hint = (f"; to name the output use output={name}"
                    if len(inputs) > 1 and name == inputs[-1] and format_from_suffix(name)
                    else "")
            raise UsageError(f"input {name} does not exist{hint}")
    return pairs


def _nothing_found(name: str, folder: Path, recursive: bool, pattern: str | None) -> str:
    """Why a folder input gave no files: the glob (named), or no supported suffix."""
    if pattern is not None and any(walk(folder, recursive, None)):
        text = (f"no file in folder {name} matches glob={pattern!r} (names are matched "
                "ignoring case)")
    else:
        text = f"folder {name} holds no supported files ({', '.join(sorted(SUPPORTED))})"
    subs = 0 if recursive else unsearched_folders([name])
    if subs:
        text += f"; {_folders(subs)} not searched; recursive=True descends"
    return text


def unsearched_folders(inputs: list[str]) -> int:
    """How many sub-folders of the folder inputs a search without ``recursive`` skips."""
    count = 0
    for name in inputs:
        if name != STDIO and os.path.isdir(name) and not is_zarr_path(name):
            try:
                count += sum(1 for e in os.scandir(name)
                             if e.is_dir() and not e.name.startswith("."))
            except OSError:
                continue
    return count


def _folders(n: int) -> str:
    return f"{n} sub-folder{'s' if n != 1 else ''}"


def unsearched_note(inputs: list[str], recursive: bool) -> str | None:
    """"3 sub-folders not searched; recursive=True descends", or None."""
    n = 0 if recursive else unsearched_folders(inputs)
    return f"{_folders(n)} not searched; recursive=True descends" if n else None


def default_name(src: Path, tag: str, fmt: str | None) -> Path:
    """``photo.png`` -> ``photo.max.png`` beside the input (the format's suffix if given)."""
    suffix = SUFFIX_OF[fmt] if fmt else src.suffix
    return src.with_name(f"{src.stem}.{tag}{suffix}")


def plan_jobs(inputs: list[str], output: str | None, tag: str, *, recursive: bool = False,
              pattern: str | None = None, fmt: str | None = None) -> list[Job]:
    """Expand inputs (files, folders, "-") and decide every output path, or raise UsageError."""
    if not inputs:
        raise UsageError("no input given; name image or .npy files, folders, or - for "
                         "standard input")
    if inputs.count(STDIO) > 1:
        raise UsageError("standard input (-) can be named only once")
    skip = Path(output) if output not in (None, STDIO) and recursive else None
    pairs = expand(inputs, recursive, pattern, skip=skip)
    many = len(pairs) > 1 or any(folder is not None for _, folder in pairs)
    if STDIO in inputs and len(pairs) > 1:
        raise UsageError("standard input (-) must be the only input")
    if STDIO in inputs and output is None:
        raise UsageError("standard input needs `output`: a file name, or - for standard output")
    if output == STDIO and many:
        raise UsageError("output=- (standard output) takes one input file; give `output` a folder")
    out_dir: Path | None = None
    # A trailing slash says "a folder" even for one input that does not exist yet.
    as_folder = output is not None and output.endswith(("/", os.sep))
    if output is not None and is_zarr_path(output) and not as_folder:
        if many:
            raise UsageError(f"output={output} is one zarr store; give one input")
    elif output is not None and output != STDIO and (many or as_folder
                                                      or Path(output).is_dir()):
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"output={output} is a file, but {len(pairs)} inputs need a folder")
        if not out_dir.exists() and not as_folder and Path(output).suffix:
            # `-o single.png` with many inputs would silently become a folder of that name
            raise UsageError(f"`output` {output} names a file but {_inputs(pairs)} were given; "
                             f"use a folder, e.g. output=out/")
    elif output is not None and output != STDIO:
        check_suffix(output, fmt)
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
        raise UsageError(f"two inputs would both be written to {dup}; use an `output` folder "
                         "with a folder input to keep sub-folders apart")
    return jobs


def _inputs(pairs: list[tuple[str, Path | None]]) -> str:
    return f"{len(pairs)} input{'s' if len(pairs) != 1 else ''}"


def check_suffix(dest: str, fmt: str | None) -> None:
    """An output file's suffix must name a supported format, and the same as ``fmt``
    (UsageError): `.jp2` is never given JPEG bytes, nor `x.png` a .npy array."""
    suffix = Path(dest).suffix
    if not suffix:
        return  # no promise made: the input's format (or `format`) is written
    by_suffix = format_from_suffix(dest)
    if by_suffix is None:
        known = " ".join(sorted(set(SUFFIX_OF.values()) | {".jpeg", ".tiff"}))
        raise UsageError(f"output {dest}: the suffix {suffix} names no supported format; "
                         f"use one of {known}, or format=FMT with a matching suffix")
    if fmt is not None and by_suffix != fmt:
        raise UsageError(f"output {dest} is named as {by_suffix} but format={fmt} was asked "
                         f"for; name it {Path(dest).stem}{SUFFIX_OF[fmt]} or drop `format`")


def _check_dest(dest: Path, src: Path, sources: dict[Path, str], out_dir: Path | None) -> None:
    """Refuse an output that is an input, or that a symlink would carry out of ``out_dir``."""
    target = dest.resolve()
    if target in sources:
        which = "the input itself" if target == src.resolve() else f"the input {sources[target]}"
        raise UsageError(f"output {dest} is {which}; poolcli never writes over an input")
    if out_dir is not None and not target.is_relative_to(out_dir.resolve()):
        raise UsageError(f"output {dest} would be written to {target}, outside the output "
                         f"folder {out_dir} (a symbolic link inside it points elsewhere)")
