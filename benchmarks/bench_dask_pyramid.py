"""Issue 13: pyramids on a dask cluster against the local streamed path and dask's coarsen.

The float32 zarr of `bench_dask.py` (default 16384x16384 in 4096x4096 chunks, 1 GiB, Blosc
LZ4) is made once in a temporary folder, then made into an OME-Zarr pyramid of --levels
levels (default 6) per kind (avg and max), each way into a new store whose datasets are
chunked as poolcli writes them (256x256, level 0 included):

1. local: `poolcli pyramid IN.zarr -o OUT.zarr --levels N --kind K --memory-limit L` in a
   child process (streamed when input, sums and a level exceed L: a float32 input over
   L/4); peak RSS by
   the kernel's accounting of the child (/usr/bin/time, as `bench_pyramid.run_cli`);
2. poolcli dask: `run_pyramids([src], dst, PyramidOptions(engine="dask",
   scheduler=ADDRESS, ...))` on a `distributed.LocalCluster` (2 worker processes x 1
   thread, --worker-memory each);
3. dask coarsen: level i+1 = `da.coarsen(np.mean or np.max, level i, {0: 2, 1: 2})`
   (an odd axis padded with its edge cells first, so a partial block pools its real
   cells as ceil mode does), every level rechunked to 256x256 and `da.store`d into a
   zarr v2 group as one graph, on the same cluster;
4. ome-zarr (avg only, when `ome_zarr` imports): `ome_zarr.writer.write_image` with its
   default method (skimage `resize`, bilinear with anti-aliasing: not a block mean; its
   row is there for time and memory, its values are only compared, not required to
   agree), same levels and chunks, same cluster.

Every level of every way is checked against (1) on sample blocks (corners, a chunk seam,
random places): max exactly; avg exactly for (2), for (3) within 2 float32 ulps per level
of each block's largest value (a mean of means in float32, where poolcli carries float64
sums and rounds once). Peak RSS of
the workers and of this process (client and scheduler) by VmHWM, reset before each run
(`bench_dask.reset_peak`); the cluster's task stream (`distributed.get_task_stream`) says
where the workers' time went, per kind of task.

    python benchmarks/bench_dask_pyramid.py --gb 0.5       # ~7 min on 2 busy cores
    python benchmarks/bench_dask_pyramid.py                # 1 GiB
    python benchmarks/bench_dask_pyramid.py --gb 0.25 --kinds max
    python benchmarks/bench_dask_pyramid.py --json pyr.json
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import format_table, machine_info, verdict, write_json
from bench_dask import (
    MiB,
    _worker_peak,
    _worker_reset,
    bench_cluster,
    ensure_input,
    print_machine,
    sample_starts,
    versions,
)
from bench_pyramid import run_cli

CHUNK_OUT = 256  # poolcli's OME-Zarr datasets: 256x256 chunks over two pooled axes
WAYS = ("local", "poolcli dask", "dask coarsen", "ome-zarr")
NAME = {"local": "(1) poolcli pyramid, local streamed",
        "poolcli dask": "(2) poolcli run_pyramids on dask",
        "dask coarsen": "(3) dask.array.coarsen levels + da.store",
        "ome-zarr": "(4) ome_zarr write_image (resize)"}


# --- the cluster's side ----------------------------------------------------------------


def measured(client, fn) -> dict:
    """Run ``fn()`` with the peaks of the workers and of this process reset first; its
    seconds, the peaks, the task stream summed per kind of task, and whether a worker
    was lost (restarted by its nanny) meanwhile."""
    from distributed import get_task_stream

    before = set(client.scheduler_info()["workers"])
    client.run(_worker_reset)
    client.run_on_scheduler(_worker_reset)  # this process: client and scheduler
    with get_task_stream(client=client) as ts:
        t0 = time.perf_counter()
        extra = fn() or {}
        seconds = time.perf_counter() - t0
    after = set(client.scheduler_info()["workers"])
    peaks = client.run(_worker_peak)
    return {"seconds": seconds, "worker_peak_mib": sorted(peaks.values()),
            "client_peak_mib": client.run_on_scheduler(_worker_peak),
            "workers_lost": len(before - after), "stream": stream_summary(ts.data),
            **extra}


def stream_summary(data: list[dict]) -> dict:
    """Worker seconds per kind of task (compute) and in transfers, from the task stream."""
    from dask.utils import key_split

    out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for t in data:
        for ss in t.get("startstops", ()):
            name = key_split(t["key"]) if ss["action"] == "compute" else ss["action"]
            out[name][0] += ss["action"] == "compute"
            out[name][1] += ss["stop"] - ss["start"]
    return {k: {"tasks": n, "seconds": round(s, 3)} for k, (n, s) in
            sorted(out.items(), key=lambda kv: -kv[1][1])}


def run_poolcli_dask(client, src: Path, dst: Path, kind: str, levels: int) -> dict:
    from poolcli.batch.pyramid_job import PyramidOptions, run_pyramids

    total = [0]

    def tasks(done: int, all_: int) -> None:
        total[0] = all_

    opts = PyramidOptions(levels=levels, kind=kind, engine="dask",
                          scheduler=client.scheduler.address)
    outcomes = list(run_pyramids([str(src)], str(dst), opts, on_tasks=tasks))
    if outcomes[0].error:
        raise SystemExit(f"run_pyramids failed: {outcomes[0].error}")
    return {"tasks": total[0], "levels": len(outcomes[0].records)}


def coarsen_levels(x, kind: str, levels: int) -> list:
    """Level 0 and ``levels`` levels by dask.array.coarsen, each from the one before; an
    odd axis is padded with its edge cells, so a partial block pools its real cells."""
    import dask.array as da

    fn = np.mean if kind == "avg" else np.max
    out = [x]
    for _ in range(levels):
        cur = out[-1]
        odd = [(0, n % 2) for n in cur.shape]
        if any(p for _, p in odd):
            cur = da.pad(cur, odd, mode="edge")
        out.append(da.coarsen(fn, cur, {0: 2, 1: 2}).astype(x.dtype))
    return out


def zarr_group(path: Path):
    import zarr

    from poolcli.io.zarr_store import compressors

    return zarr.open_group(store=str(path), mode="w", zarr_format=2), compressors(False)


def run_coarsen(src: Path, dst: Path, kind: str, levels: int) -> dict:
    import dask
    import dask.array as da

    lv = coarsen_levels(da.from_zarr(str(src)), kind, levels)
    group, comp = zarr_group(dst)
    targets, sources = [], []
    for i, level in enumerate(lv):
        targets.append(group.create_array(
            str(i), shape=level.shape, dtype=level.dtype, fill_value=0, compressors=comp,
            chunks=tuple(min(n, CHUNK_OUT) for n in level.shape),
            chunk_key_encoding={"name": "v2", "separator": "/"}))
        sources.append(level.rechunk(targets[-1].chunks))
    work = da.store(sources, targets, lock=False, compute=False)  # one per level
    tasks = len(set().union(*(w.__dask_graph__().keys() for w in work)))
    dask.compute(*work)
    return {"tasks": tasks}


def run_ome_zarr(src: Path, dst: Path, levels: int) -> dict:
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_image

    x = da.from_zarr(str(src))
    group = zarr.open_group(store=str(dst), mode="w", zarr_format=2)
    write_image(x, group, scale_factors=tuple(2**i for i in range(1, levels + 1)),
                axes="yx", storage_options={"chunks": (CHUNK_OUT, CHUNK_OUT)})
    return {}


# --- checks ----------------------------------------------------------------------------


def dataset_paths(store: Path) -> list[str]:
    """The datasets of an OME-Zarr's multiscales (NGFF 0.4 or 0.5), else 0, 1, ..."""
    import zarr

    attrs = dict(zarr.open_group(str(store), mode="r").attrs)
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if ms:
        return [d["path"] for d in ms[0]["datasets"]]
    names = [k for k, _ in zarr.open_group(str(store), mode="r").arrays()]
    return sorted(names, key=int)


def check_levels(ref: Path, other: Path, levels: int, exact: bool, chunk: int) -> dict:
    """Every level of ``other`` against ``ref`` on sample blocks: exactly, or the largest
    difference in float32 ulps of each block's largest value (``ok`` within 2 a level)."""
    import zarr

    worst, cells, ok = 0.0, 0, True
    paths = dataset_paths(other)
    if len(paths) != levels + 1:
        return {"ok": False, "why": f"{len(paths)} datasets, not {levels + 1}"}
    for i, path in enumerate(paths):
        a = zarr.open_array(str(ref / str(i)), mode="r")
        b = zarr.open_array(str(other / path), mode="r")
        if a.shape != b.shape:
            return {"ok": False, "why": f"level {i}: shape {b.shape} != {a.shape}"}
        side = min(512, *a.shape)
        for r, c in sample_starts(a.shape, max(1, chunk >> i), side):
            key = (slice(r, r + side), slice(c, c + side))
            x, y = a[key], b[key]
            cells += x.size
            if exact:
                ok &= bool(np.array_equal(x, y, equal_nan=True))
            else:
                # in ulps of the block's largest value: a mean near 0 of larger cells
                # carries their rounding, which its own ulp would magnify
                ulp = np.spacing(np.float32(np.abs(x).max()))
                worst = max(worst, float(np.abs(x.astype(np.float64) - y).max() / ulp))
    if not exact:
        ok = worst <= 2 * levels  # a float32 mean of 4 cells per level, each rounded
    return {"ok": ok, "checked_cells": cells, "max_ulps": None if exact else worst}


# --- main ------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0, help="input size in GiB (default 1)")
    ap.add_argument("--chunk", type=int, default=4096, help="input chunk side")
    ap.add_argument("--levels", type=int, default=6, help="levels after level 0")
    ap.add_argument("--kinds", default="avg,max")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory", default="1GiB")
    ap.add_argument("--memory-limit", default=None,
                    help="--memory-limit of the local run (default: --worker-memory)")
    ap.add_argument("--only", default=",".join(WAYS))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    limit = args.memory_limit or args.worker_memory

    from poolcli.tiled import parse_size

    side = max(2, 2 * round(math.sqrt(args.gb * (1 << 30) / 4) / 2))
    chunk = min(args.chunk, side)
    nbytes = side * side * 4
    worker_limit = parse_size(args.worker_memory)
    kinds = [k for k in args.kinds.split(",") if k]
    only = [w for w in args.only.split(",") if w]
    if "local" not in only:
        only.insert(0, "local")  # the reference every way is checked against
    info = machine_info() | versions() | {"ome_zarr": _version("ome_zarr")}
    print_machine(info)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_dask_pyramid_"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "in.zarr"
    results: dict[str, dict[str, dict]] = {k: {} for k in kinds}
    try:
        ensure_input(src, side, chunk)
        print(f"{args.levels} levels per kind into {CHUNK_OUT}x{CHUNK_OUT} chunks; one "
              "run each\n", flush=True)
        with bench_cluster(args.workers, args.worker_memory) as client:
            for kind in kinds:
                ref = work / f"local-{kind}.zarr"
                for way in only:
                    if way == "ome-zarr" and kind != "avg":
                        continue
                    dst = work / f"{way.replace(' ', '-')}-{kind}.zarr"
                    shutil.rmtree(dst, ignore_errors=True)
                    try:
                        r = run_way(way, client, src, dst, kind, args.levels, limit)
                    except ImportError as e:
                        r = {"skipped": f"does not import ({e})"}
                    if "skipped" not in r:
                        r |= check_levels(ref, dst, args.levels,
                                          exact=kind == "max" or way != "dask coarsen",
                                          chunk=chunk)
                        if way == "ome-zarr":  # not a block mean: its values only reported
                            r["ok"], r["agree_needed"] = None, False
                    results[kind][way] = r
                    print(f"  {kind} {way}: {r.get('seconds', float('nan')):.1f} s",
                          flush=True)
                    if way != "local":
                        shutil.rmtree(dst, ignore_errors=True)
                shutil.rmtree(ref, ignore_errors=True)
        main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results, args, side, nbytes, worker_limit, limit, info, main_peak)


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except ImportError:
        return None


def run_way(way: str, client, src: Path, dst: Path, kind: str, levels: int,
            limit: str) -> dict:
    if way == "local":
        return run_cli(["pyramid", str(src), "-o", str(dst), "--levels", str(levels),
                        "--kind", kind, "--memory-limit", limit])
    if way == "poolcli dask":
        return measured(client, lambda: run_poolcli_dask(client, src, dst, kind, levels))
    if way == "dask coarsen":
        return measured(client, lambda: run_coarsen(src, dst, kind, levels))
    if way == "ome-zarr":
        import ome_zarr  # noqa: F401  (skipped when absent)

        return measured(client, lambda: run_ome_zarr(src, dst, levels))
    raise SystemExit(f"unknown way {way}")


def report(results, args, side, nbytes, worker_limit, limit, info, main_peak) -> None:
    print(f"\n{side}x{side} float32 ({nbytes / 2**30:.2f} GiB), {args.levels} levels, "
          f"{args.workers} workers x 1 thread, {args.worker_memory} each; local limit "
          f"{limit}\n")
    rows, targets = [], []
    for kind, ways in results.items():
        ref = ways.get("local", {}).get("seconds")
        for way, r in ways.items():
            if "skipped" in r:
                rows.append([kind, NAME[way], "skipped: " + r["skipped"], "", "", "", ""])
                continue
            if way == "local":
                rss = f"{r['peak_mib']:.0f} (one process)"
            else:
                rss = (" / ".join(f"{p:.0f}" for p in r["worker_peak_mib"])
                       + f" (client+sched {r['client_peak_mib']:.0f})")
                if r["workers_lost"]:
                    rss += f", {r['workers_lost']} worker(s) LOST"
            agrees = ("ok" if r["ok"] else "MISMATCH") if r.get("ok") is not None else \
                "(not a block mean)"
            if r.get("max_ulps") is not None:
                agrees += f", <= {r['max_ulps']:.1f} ulp"
            if r.get("why"):
                agrees += f"; {r['why']}"
            rows.append([kind, NAME[way], f"{r['seconds']:.1f}",
                         f"{r['seconds'] / ref:.2f}x" if ref else "", rss,
                         str(r.get("tasks", "-")), agrees])
        ours, peer = (ways.get(w, {}).get("seconds") for w in ("poolcli dask",
                                                               "dask coarsen"))
        if ours and peer:
            targets.append([f"{kind}: poolcli dask vs dask coarsen (speed-up)", ">= 1x",
                            f"{peer / ours:.2f}x", verdict(peer / ours >= 1)])
        pk = ways.get("poolcli dask", {}).get("worker_peak_mib")
        if pk:
            targets.append([f"{kind}: poolcli dask peak RSS per worker",
                            f"<= {worker_limit / MiB:.0f} MiB", f"{max(pk):.0f} MiB",
                            verdict(max(pk) * MiB <= worker_limit)])
    print(format_table(["kind", "way", "seconds", "x local", "peak RSS MiB (workers)",
                        "tasks", "agrees with (1)"], rows))
    print()
    print(format_table(["target", "wanted", "measured", "verdict"], targets))
    for kind, ways in results.items():
        for way, r in ways.items():
            if "stream" in r:
                top = list(r["stream"].items())[:6]
                print(f"\n{kind} {way}, worker seconds per kind of task: " + ", ".join(
                    f"{k} {v['seconds']:.1f} s ({v['tasks']})" for k, v in top))
    print(f"\nthis process (client + scheduler) lifetime peak: {main_peak:.0f} MiB; one run "
          "each on a shared machine: treat seconds as +-20%")
    if args.json:
        write_json(args.json, {"machine": info, "side": side, "levels": args.levels,
                               "worker_memory": args.worker_memory, "local_limit": limit,
                               "results": results, "main_peak_mib": main_peak})
    bad = [f"{k} {w}" for k, ways in results.items() for w, r in ways.items()
           if r.get("ok") is False]
    if bad:
        raise SystemExit(f"levels differ from the local run: {', '.join(bad)}")


if __name__ == "__main__":
    main()
