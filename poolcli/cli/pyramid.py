"""`poolcli pyramid`: levels of each input as an OME-Zarr or one file per level."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ..errors import PoolError, UsageError
from .commands import EPILOG, register
from .messages import say
from .options import (
    Axes,
    Format,
    IgnoreNan,
    Inputs,
    MemLimit,
    NoData,
    Overwrite,
    Premult,
    Quiet,
    Report,
    ints,
    option,
    option_value,
    parse_axes,
)
from .text import dims


def _size(text: str) -> int:
    from ..tiled import parse_size

    try:
        return parse_size(text)
    except PoolError as e:
        raise UsageError(str(e)) from None

Levels = Annotated[int | None, option("--levels", metavar="N",
                                    help="levels after level 0 (default: until every "
                                    "pooled axis is <= --min-size)")]
MinSize = Annotated[int, option("--min-size", metavar="PX",
                              help="stop when every pooled axis is this small (default 1)")]
Factor = Annotated[str | None, option("-k", "--factor", metavar="2|2x2x1",
                                    help="kernel = stride per pooled axis (default 2)")]
Kind = Annotated[str, option("--kind", metavar="KIND",
                           help="avg (default), mode for labels, or any kind")]
Labels = Annotated[bool, option("--labels", help="a label mask: mode pooling")]
AxesNames = Annotated[str | None, option("--axes-names", metavar="tczyx",
                                       help="OME-Zarr names of the array's axes, in order")]
Ngff = Annotated[str, option("--ngff", metavar="0.4|0.5",
                           help="OME-Zarr version: 0.4 (zarr v2, default) or 0.5 (zarr v3)")]
PyOutput = Annotated[str, option("-o", "--output", metavar="OUT",
                               help="OUT.zarr (OME-Zarr), or a name/folder for NAME_0.EXT, "
                               "NAME_1.EXT, ...")]


@register(help="Levels pooled from the previous level (kernel = stride = factor) into an "
          "OME-Zarr (OUT.zarr) or one file per level (NAME_<level>.EXT).",
          epilog=EPILOG)
def pyramid(inputs: Inputs, output: PyOutput, levels: Levels = None, min_size: MinSize = 1,
            factor: Factor = None, kind: Kind = "avg", labels: Labels = False,
            axes: Axes = None, axes_names: AxesNames = None, ngff: Ngff = "0.4",
            nodata: NoData = None, ignore_nan: IgnoreNan = False,
            premultiply: Premult = True, format: Format = None, overwrite: Overwrite = False,
            report: Report = None, quiet: Quiet = False,
            memory_limit: MemLimit = None) -> None:
    from ..batch.pyramid_job import PyramidOptions, run_pyramid
    from ..core.kinds import canonical_kind
    from ..io.atomic import OutputRefused
    from ..io.image_read import ImageReadError
    from ..io.zarr_store import is_zarr_path

    if labels and kind != "avg":
        raise UsageError("--labels chooses mode pooling; drop --kind")
    name = "mode" if labels else canonical_kind(kind)
    if ngff not in ("0.4", "0.5"):
        raise UsageError(f"--ngff {ngff!r} is not supported; use 0.4 or 0.5")
    if report not in (None, "table", "json", "none"):
        raise UsageError(f"--report {report!r} is not understood; use table, json or none")
    from ..batch.jobs import expand

    inputs = [name for name, _ in expand(inputs)]  # a folder stands for its files
    if is_zarr_path(output) and len(inputs) > 1:
        raise UsageError(f"-o {output} is one OME-Zarr image; give one INPUT, or a folder")
    fac = 2 if factor is None else ints("--factor", factor)
    opts = PyramidOptions(
        levels=levels, min_size=min_size, kind=name, factor=fac, axes=parse_axes(axes),
        axes_names=axes_names, ngff=ngff,
        nodata=None if nodata is None else option_value("nodata", "--nodata", nodata),
        ignore_nan=ignore_nan, premultiply=premultiply, format=format, overwrite=overwrite,
        memory_limit=None if memory_limit is None else _size(memory_limit))
    show = not quiet and report != "none" and report != "json"
    doc, status = [], 0
    for src in inputs:
        entry = {"input": src, "output": output, "status": "ok", "error": None, "levels": []}

        def line(rec, src=src, entry=entry):
            entry["levels"].append({"level": rec.level, "output": rec.output,
                                    "shape": list(rec.shape), "dtype": rec.dtype,
                                    "seconds": round(rec.seconds, 6)})
            if show:
                sys.stderr.write(f"{src}: level {rec.level} {dims(rec.shape)} {rec.dtype} -> "
                                 f"{rec.output} ({rec.seconds:.3f} s)\n")

        try:
            run_pyramid(src, output, opts, on_level=line)
        except (PoolError, UsageError):
            raise
        except OutputRefused as e:  # an input named as the output: a usage error
            raise UsageError(str(e)) from None
        except (OSError, ValueError, ImageReadError) as e:
            text = (e.strerror or str(e)) if isinstance(e, OSError) and e.strerror else str(e)
            say("error", f"{src}: {text}")
            entry.update(status="error", error=text)
            status = 1
        doc.append(entry)
    if report == "json":
        sys.stderr.write(json.dumps({"files": doc}, indent=2) + "\n")
    raise typer.Exit(status)
