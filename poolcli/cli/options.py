"""The command line's options, declared once and shared by every command, and their values.

Values are read with the library's own grammar (``pipeline.parse_value``); this module
adds only the flags' names and the rules that are about flags (which ones clash).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import PoolError, UsageError
from ..pipeline import Stage, parse_ints, parse_value

if TYPE_CHECKING:
    from ..batch.jobs import Options

# --- option values -----------------------------------------------------------------------


def ints(flag: str, text: str | None, sep: str = "x") -> int | tuple[int, ...] | None:
    """``"3"`` -> 3, ``"3x2"`` (or ``"3,2"``) -> (3, 2); None stays None."""
    if text is None:
        return None
    try:
        return parse_ints(text.replace(",", sep), sep)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not understood; use an int or a list like "
                         f"3{sep}2") from None


def parse_axes(text: str | None) -> tuple[int, ...] | None:
    ax = ints("--axes", text, sep=",")
    return (ax,) if isinstance(ax, int) else ax


def option_value(param: str, flag: str, text: str) -> Any:
    try:
        return parse_value(param, text.replace(",", "x"), flag)
    except PoolError as e:
        raise UsageError(str(e)) from None


def make_stage(kind: str, kernel: str | None = None, stride: str | None = None,
               padding: str | None = None, dilation: str | None = None,
               ceil_mode: bool = False, count_include_pad: bool | None = None,
               divisor: float | None = None, norm: float | None = None,
               output_size: str | None = None, global_: bool = False,
               ignore_nan: bool = False, nodata: str | None = None) -> Stage:
    """One pipeline stage from a KIND command's stage options (UsageError if they clash)."""
    opts: dict[str, Any] = {}
    if global_ and output_size:
        raise UsageError("--global and --output-size both set the output size; give one")
    out_size = 1 if global_ else (None if output_size is None else
                                  option_value("output_size", "--output-size", output_size))
    if out_size is not None:
        given = [name for name, val in (("-k", kernel), ("-s", stride), ("-p", padding),
                                        ("-d", dilation), ("--ceil-mode", ceil_mode or None))
                 if val is not None]
        if given:
            what = "--global" if global_ else "--output-size"
            raise UsageError(f"{what} chooses the windows itself (adaptive pooling); drop "
                             f"{', '.join(given)}")
        opts["output_size"] = out_size
    else:
        opts["kernel"] = 2 if kernel is None else option_value("kernel", "--kernel", kernel)
        for param, flag, text in (("stride", "--stride", stride),
                                  ("padding", "--padding", padding),
                                  ("dilation", "--dilation", dilation)):
            if text is not None:
                opts[param] = option_value(param, flag, text)
        if ceil_mode:
            opts["ceil_mode"] = True
    for key, val in (("count_include_pad", count_include_pad), ("divisor_override", divisor),
                     ("norm", norm)):
        if val is not None:
            opts[key] = val
    if ignore_nan:
        opts["ignore_nan"] = True
    if nodata is not None:
        opts["nodata"] = option_value("nodata", "--nodata", nodata)
    return Stage(kind, opts)


def check_dtype(dtype: str | None) -> None:
    """A --dtype must name a bool, integer or float dtype (UsageError otherwise)."""
    from ..core.kinds import check_dtype as library_check

    if dtype is not None:
        try:
            library_check(dtype)
        except PoolError as e:
            raise UsageError(str(e)) from None


def make_options(axes: str | None, dtype: str | None, fmt: str | None, overwrite: bool,
                 premultiply: bool, quality: int | None, compress_level: int | None,
                 memory_limit: str | None, jobs: int | None) -> Options:
    """The output options shared by every job of a run, checked (UsageError)."""
    from ..batch.jobs import Options
    from ..io.image_write import check_settings
    from ..io.sniff import normalise_format
    from ..tiled import parse_size

    check_dtype(dtype)
    if fmt is not None and normalise_format(fmt) is None:
        raise UsageError(f"--format {fmt!r} is not known; use png, jpg, tiff, bmp, webp, gif, "
                         "npy or npz")
    try:
        check_settings(quality, compress_level)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs} must be >= 1")
    return Options(axes=parse_axes(axes), dtype=dtype,
                   format=normalise_format(fmt) if fmt else None, overwrite=overwrite,
                   premultiply=premultiply, quality=quality, compress_level=compress_level,
                   memory_limit=parse_size(memory_limit) if memory_limit else None)


# --- shared options, declared once -------------------------------------------------------


def option(*names: str, help: str, metavar: str | None = None, **kw: Any) -> Any:
    return typer.Option(*names, help=help, metavar=metavar, show_default=False, **kw)


Inputs = Annotated[list[str], typer.Argument(
    help="image or .npy/.npz files, folders, or - for standard input", metavar="INPUT...",
    show_default=False)]

# stage options
Kernel = Annotated[str | None, option("-k", "--kernel", metavar="K",
                                    help="window: 2, or 3x2 per axis (default 2)")]
Stride = Annotated[str | None, option("-s", "--stride", metavar="S",
                                    help="step: 2 or 2x1 (default: the kernel)")]
Padding = Annotated[str | None, option("-p", "--padding", metavar="P",
                                     help="1, 1x0, same or valid (default 0)")]
Dilation = Annotated[str | None, option("-d", "--dilation", metavar="D",
                                      help="spacing of a window's cells (default 1)")]
Ceil = Annotated[bool, option("--ceil-mode", help="ceil instead of floor: keep a last partial "
                            "window (PyTorch)")]
CountPad = Annotated[bool | None, option(
    "--count-include-pad/--no-count-include-pad",
    help="padded zeros count in avg/l2 (default: yes, but not with -p same)")]
Divisor = Annotated[float | None, option("--divisor", metavar="X",
                                       help="avg divides by X instead of the cell count")]
Norm = Annotated[float | None, option("--norm", metavar="P", help="p of lp (default 2)")]
Axes = Annotated[str | None, option("--axes", metavar="0,1",
                                  help="pooled axes of arrays (default: the last two)")]
OutSize = Annotated[str | None, option("--output-size", metavar="7x7",
                                     help="adaptive pooling to this size")]
Global = Annotated[bool, option("--global", help="one window per axis (global pooling)")]
IgnoreNan = Annotated[bool, option("--ignore-nan", help="skip NaN cells")]
NoData = Annotated[str | None, option("--nodata", metavar="VALUE",
                                    help="skip cells equal to VALUE; a window of them only "
                                    "gives VALUE")]

# output options
Output = Annotated[str | None, option(
    "-o", "--output", metavar="PATH",
    help="a file for one input, a folder for many (or ending in /), - for standard output; "
    "default: beside each input as NAME.KIND.EXT")]
Format = Annotated[str | None, option("--format", metavar="FMT",
                                    help="png, jpg, tiff, bmp, webp, gif, npy or npz "
                                    "(default: the output's suffix, else the input's)")]
Overwrite = Annotated[bool, option("--overwrite", help="replace existing outputs (never inputs)")]
DType = Annotated[str | None, option("--dtype", metavar="DTYPE",
                                   help="dtype of array outputs, e.g. float32")]
Jobs = Annotated[int | None, option(
    "-j", "--jobs", metavar="N",
    help="files at once, in worker processes (default: all cores for batches of 16 MB of "
    "input or more and 4 files per worker; a smaller batch runs in one process, each file "
    "pooled on all cores)")]
Engine = Annotated[str, option(
    "--engine", metavar="local|dask",
    help="local (default), or dask: one task per file on a dask cluster (a zarr store "
    "chunk-parallel across its workers); needs poolcli[dask]")]
Scheduler = Annotated[str | None, option(
    "--scheduler", metavar="ADDRESS",
    help="with --engine dask: join this scheduler (tcp://host:8786); default: a "
    "LocalCluster sized to the machine, started and closed by the run")]
Report = Annotated[str | None, option(
    "--report", metavar="table|json|none",
    help="on standard error (default: table on a terminal, else none)")]
ReportFile = Annotated[Path | None, option("--report-file", metavar="PATH",
                                         help="write the JSON report here")]
Quiet = Annotated[bool, option("-q", "--quiet", help="no progress, warnings or table")]
FailFast = Annotated[bool, option("--fail-fast", help="stop at the first failed input")]
MemLimit = Annotated[str | None, option(
    "--memory-limit", metavar="SIZE",
    help="e.g. 512MB, 2GiB; a larger .npy is pooled in chunks (default: a quarter of RAM); "
    "with --engine dask, also each worker's limit in the LocalCluster started for the run")]
Recursive = Annotated[bool, option("-r", "--recursive", help="search folders' sub-folders")]
Glob = Annotated[str | None, option("--glob", metavar="PATTERN",
                                  help="only files whose names match, e.g. '*.png'")]
Premult = Annotated[bool | None, option("--premultiply/--no-premultiply",
                               help="avg weights colour by alpha (default: yes)")]
Quality = Annotated[int | None, option("--quality", metavar="1-100",
                                     help="JPEG/WebP quality (default 90; WebP lossless when "
                                     "unset)")]
Compress = Annotated[int | None, option("--compress-level", metavar="0-9",
                                      help="PNG zlib level (default 4; 1 is fast)")]
PipeFile = Annotated[Path | None, option("--pipeline-file", metavar="TOML",
                                       help="a pipeline file of [[stage]] tables")]
