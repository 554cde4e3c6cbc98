"""Inputs -> jobs: expanding folders and naming every output before any work starts."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..io.sniff import ARRAY_SUFFIXES, IMAGE_SUFFIXES, SUFFIX_OF

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
    # files no output may replace, as (st_dev, st_ino): every input, and the file
    # standard input came from (a name check alone misses hard links and redirections)
    protect: frozenset[tuple[int, int]] = frozenset()


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
            # a FIFO, device or socket is never searched: reading one may never end
            elif e.is_file() and Path(e.name).suffix.lower() in SUPPORTED and (
                    pattern is None or fnmatch.fnmatch(e.name, pattern)):
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
        if p.is_dir():
            found = list(walk(p, recursive, pattern))
            if skip is not None and skip.resolve() != p.resolve():
                found = [f for f in found if not f.resolve().is_relative_to(skip.resolve())]
            if not found:
                raise UsageError(f"folder {name} holds no supported files "
                                 f"({', '.join(sorted(SUPPORTED))})"
                                 + ("" if recursive else "; recursive=True searches sub-folders"))
            pairs.extend((str(f), p) for f in found)
        elif p.exists():
            pairs.append((name, None))
        else:
            raise UsageError(f"input {name} does not exist")
    return pairs


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
    if output is not None and output != STDIO and (many or as_folder or Path(output).is_dir()):
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"output={output} is a file, but {len(pairs)} inputs need a folder")
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


def _check_dest(dest: Path, src: Path, sources: dict[Path, str], out_dir: Path | None) -> None:
    """Refuse an output that is an input, or that a symlink would carry out of ``out_dir``."""
    target = dest.resolve()
    if target in sources:
        which = "the input itself" if target == src.resolve() else f"the input {sources[target]}"
        raise UsageError(f"output {dest} is {which}; poolcli never writes over an input")
    if out_dir is not None and not target.is_relative_to(out_dir.resolve()):
        raise UsageError(f"output {dest} would be written to {target}, outside the output "
                         f"folder {out_dir} (a symbolic link inside it points elsewhere)")
