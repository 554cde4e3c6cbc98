"""`poolcli pyramid`: levels of each input as an OME-Zarr or one file per level."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from ..errors import PoolError, UsageError
from .batch import Shown
from .commands import EPILOG, register
from .messages import say
from .options import (
    Axes,
    Engine,
    Format,
    IgnoreNan,
    Inputs,
    MemLimit,
    NoData,
    Overwrite,
    Premult,
    Quiet,
    Report,
    Scheduler,
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
Kind = Annotated[str | None, option("--kind", metavar="KIND",
                                  help="avg (default), mode for labels, or any kind (or "
                                  "KIND after the inputs)")]
Labels = Annotated[bool, option("--labels", help="a label mask: mode pooling")]
AxesNames = Annotated[str | None, option("--axes-names", metavar="tczyx",
                                       help="OME-Zarr names of the array's axes, in order")]
Ngff = Annotated[str, option("--ngff", metavar="0.4|0.5",
                           help="OME-Zarr version: 0.4 (zarr v2, default) or 0.5 (zarr v3)")]
PyOutput = Annotated[str, option("-o", "--output", metavar="OUT",
                               help="OUT.zarr (OME-Zarr), or a name/folder for NAME_0.EXT, "
                               "NAME_1.EXT, ...")]


def _trailing_kind(inputs: list[str], kind: str | None) -> tuple[list[str], str | None]:
    """SPEC 5's `pyramid INPUT... [KIND]`: a last argument that names a kind, after at
    least one input, is the kind (a file of that name must be written ./NAME)."""
    from ..core.kinds import ALIASES, KINDS

    last = inputs[-1] if len(inputs) > 1 else None
    if last is None or last.lower() not in (*KINDS, *ALIASES):
        return inputs, kind
    if os.path.lexists(last):
        raise UsageError(f"{last} is both a file here and a kind; write ./{last} for the "
                         f"file, or --kind {last} for the kind")
    if kind is not None:
        raise UsageError(f"the kind is given twice ({last} and --kind {kind}); give one")
    return inputs[:-1], last


@register(help="Levels pooled from the previous level (kernel = stride = factor) into an "
          "OME-Zarr (OUT.zarr) or one file per level (NAME_<level>.EXT). The kind (avg "
          "by default) may follow the inputs: poolcli pyramid scan.zarr max -o out.zarr",
          epilog=EPILOG)
def pyramid(inputs: Inputs, output: PyOutput, levels: Levels = None, min_size: MinSize = 1,
            factor: Factor = None, kind: Kind = None, labels: Labels = False,
            axes: Axes = None, axes_names: AxesNames = None, ngff: Ngff = "0.4",
            nodata: NoData = None, ignore_nan: IgnoreNan = False,
            premultiply: Premult = True, format: Format = None, overwrite: Overwrite = False,
            report: Report = None, quiet: Quiet = False,
            memory_limit: MemLimit = None, engine: Engine = "local",
            scheduler: Scheduler = None) -> None:
    from ..batch.pyramid_job import PyramidOptions, run_pyramids
    from ..core.kinds import canonical_kind
    from ..io.zarr_store import is_zarr_path

    inputs, kind = _trailing_kind(list(inputs), kind)
    if labels and kind is not None:
        raise UsageError(f"--labels chooses mode pooling; drop the kind {kind}")
    name = "mode" if labels else canonical_kind(kind or "avg")
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
        memory_limit=None if memory_limit is None else _size(memory_limit),
        engine=engine, scheduler=scheduler)
    show = not quiet and report != "none" and report != "json"
    entries = {src: {"input": src, "output": output, "status": "ok", "error": None,
                     "levels": []} for src in inputs}
    status, dashboard = 0, []
    shown = Shown(quiet=quiet, live=sys.stderr.isatty() and not quiet)

    def line(src, rec):
        entries[src]["levels"].append({"level": rec.level, "output": rec.output,
                                       "shape": list(rec.shape), "dtype": rec.dtype,
                                       "seconds": round(rec.seconds, 6)})
        if show:
            shown.echo(f"{src}: level {rec.level} {dims(rec.shape)} {rec.dtype} -> "
                    f"{rec.output} ({rec.seconds:.3f} s)")

    try:
        for out in run_pyramids(inputs, output, opts, on_level=line,
                                on_tasks=shown.tasks if shown.live else None,
                                on_cluster=dashboard.append):
            if out.error is not None:
                shown.say("error", f"{out.src}: {out.error}")
                entries[out.src].update(status="error", error=out.error)
                status = 1
    finally:
        shown.stop()
    doc = {"files": list(entries.values())} | ({"dashboard": dashboard[0]} if dashboard
                                                else {})
    if report == "json":
        sys.stderr.write(json.dumps(doc, indent=2) + "\n")
    elif dashboard and not quiet:
        say("note", f"the dask cluster's dashboard was {dashboard[0]}")
    raise typer.Exit(status)
