"""Issue 13: poolcli on a dask cluster against the local tiled path, dask and xarray.

A float32 zarr (default 32768x32768 in 4096x4096 chunks, 4 GiB, Blosc LZ4 with byte
shuffle, the compressor poolcli writes) is made once in a temporary folder and pooled
with max k=2 s=2 four ways, each into a new zarr of 2048x2048 chunks (the input's scaled
by the stride, as `pool_store` writes them), with the same compressor:

1. local tiled: `poolcli.stores.pool_store(src, dst, Pipeline.parse("max:k=2"),
   memory_limit=--memory-limit, force_tiled=True)`, in a child process of its own;
2. poolcli dask: `pool(da.from_zarr(src), "max", 2)`, rechunked to the output chunks,
   `da.store`d on a `distributed.LocalCluster` (2 worker processes x 1 thread,
   `--worker-memory` each);
3. dask coarsen: `da.coarsen(np.max, x, {0: 2, 1: 2})`, same cluster, same store;
4. xarray coarsen: `xr.DataArray(x).coarsen(dim_0=2, dim_1=2).max()`, same cluster.

Every result is checked against (1): some output blocks (corners, chunk seams, random
places) read back and compared exactly. Peak RSS of every process is measured per run:
the child of (1) by getrusage; the workers' and this process's (client and scheduler,
which a LocalCluster runs here) by the kernel's high-water mark VmHWM, reset before each
run through /proc/self/clear_refs (Linux; elsewhere the lifetime peak by getrusage).
One run each: the machine is shared and noisy, so ratios matter more than seconds.

    python benchmarks/bench_dask.py                  # 4 GiB, ~10 min on 2 cores
    python benchmarks/bench_dask.py --gb 0.25        # 8192x8192, a quick run
    python benchmarks/bench_dask.py --json dask.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import format_table, machine_info, verdict, write_json

MiB = 1 << 20


# --- peak memory of a process ----------------------------------------------------------


def reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float | None:
    """A memory line of /proc/self/status in MiB (None where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_mib() -> float:
    """This process's peak RSS since the last reset_peak (VmHWM), else its lifetime peak."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def rss_mib() -> float:
    rss = _status_mib("VmRSS")
    return rss if rss is not None else float("nan")


# --- the data ------------------------------------------------------------------------


def make_input(path: Path, side: int, chunk: int) -> None:
    """A side x side float32 zarr: a smooth field plus quantised noise, so that it
    compresses a little as measured images do (random bits would not compress at all)."""
    import zarr

    from poolcli.io.zarr_store import compressors

    arr = zarr.create_array(store=str(path), shape=(side, side), chunks=(chunk, chunk),
                            dtype=np.float32, fill_value=0, compressors=compressors())
    rng = np.random.default_rng(0)
    for i in range(0, side, chunk):
        rows = np.arange(i, min(i + chunk, side), dtype=np.float32)[:, None]
        for j in range(0, side, chunk):
            cols = np.arange(j, min(j + chunk, side), dtype=np.float32)[None, :]
            field = 100 * np.sin(rows / 977) * np.cos(cols / 1231)
            noise = rng.integers(0, 256, (rows.size, cols.size), dtype=np.uint8)
            arr[i:i + rows.size, j:j + cols.size] = field + noise.astype(np.float32) / 8


def ensure_input(path: Path, side: int, chunk: int) -> None:
    """The input zarr at ``path``, made (and said) unless a kept work folder has it."""
    if (path / "zarr.json").exists():
        return
    t0 = time.perf_counter()
    make_input(path, side, chunk)
    print(f"\nmade {path}: {side}x{side} float32 ({side * side * 4 / 2**30:.2f} GiB) in "
          f"{chunk}x{chunk} chunks, {time.perf_counter() - t0:.0f} s")


@contextlib.contextmanager
def bench_cluster(workers: int, memory: str):
    """A Client of a LocalCluster of ``workers`` single-threaded processes with ``memory``
    each (loopback), its workers warmed up; closed on leaving."""
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"distributed.worker.daemon": False})
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", memory_limit=memory,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.run(_warm_up)
        yield client


def print_machine(info: dict) -> None:
    """The machine and the versions that matter here (not the image peers')."""
    print("machine:\n" + "\n".join(f"  {k:<13} {v}" for k, v in info.items()
                                   if k not in ("torch", "scikit-image", "scipy", "Pillow",
                                                "OpenCV", "tinybrain")))


def output_array(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...]):
    from poolcli.io.zarr_store import create_output

    return create_output(path, shape, np.dtype(np.float32), chunks)


# --- (1) the local tiled path, in a child process ------------------------------------


def child_tiled(src: str, dst: str, limit: str) -> dict:
    from poolcli import Pipeline
    from poolcli.stores import pool_store
    from poolcli.tiled import return_big_buffers

    return_big_buffers()  # as the command line does
    base = rss_mib()
    t0 = time.perf_counter()
    res = pool_store(src, dst, Pipeline.parse("max:k=2"), memory_limit=limit,
                     force_tiled=True)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "base_mib": base, "chunks": res.chunks, "tiled": res.tiled,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_tiled(src: Path, dst: Path, limit: str) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child-tiled", str(src), str(dst),
                        "--memory-limit", limit], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"the tiled run failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --- (2)-(4) on the cluster ----------------------------------------------------------


def _worker_reset() -> tuple[bool, float]:
    import gc

    gc.collect()
    return reset_peak(), rss_mib()


def _warm_up() -> None:
    """Import what the tasks need, so that no run pays a worker's first imports."""
    import dask.array
    import zarr

    import poolcli
    import poolcli.dask_engine

    del dask, zarr, poolcli
    with contextlib.suppress(ImportError):
        import xarray  # noqa: F401


def _worker_peak() -> float:
    return peak_mib()


def cluster_lazy(way: str, src: str, out_chunks: tuple[int, ...]):
    """The lazy pooled array of one way, rechunked to the output's zarr chunks."""
    import dask.array as da

    x = da.from_zarr(src)
    if way == "poolcli dask":
        from poolcli import pool

        y = pool(x, "max", 2)
    elif way == "dask coarsen":
        y = da.coarsen(np.max, x, {0: 2, 1: 2})
    elif way == "xarray coarsen":
        import xarray as xr

        y = xr.DataArray(x).coarsen(dim_0=2, dim_1=2).max().data
    else:
        raise ValueError(way)
    return y.rechunk(out_chunks)


def run_on_cluster(client, way: str, src: Path, dst: Path, out_shape, out_chunks) -> dict:
    import dask.array as da

    lazy = cluster_lazy(way, str(src), out_chunks)
    tasks = len(lazy.__dask_graph__())
    target = output_array(dst, out_shape, out_chunks)
    resets = client.run(_worker_reset)
    client.run_on_scheduler(_worker_reset)
    base = {w: r[1] for w, r in resets.items()}
    t0 = time.perf_counter()
    da.store(lazy, target, lock=False, compute=True)
    seconds = time.perf_counter() - t0
    peaks = client.run(_worker_peak)
    return {"seconds": seconds, "tasks": tasks, "scheduler_peak_mib":
            client.run_on_scheduler(_worker_peak),
            "worker_peak_mib": sorted(peaks.values()),
            "worker_base_mib": sorted(base.values()),
            "reset": all(r[0] for r in resets.values())}


# --- checks --------------------------------------------------------------------------


def sample_starts(shape: tuple[int, int], chunk: int, side: int,
                  count: int = 6) -> list[tuple[int, int]]:
    """Corners of ``side``-square blocks to compare: both corners of the array, one
    across the first chunk seam, and random ones (the same every run)."""
    h, w = shape
    rng = np.random.default_rng(1)
    starts = [(0, 0), (h - side, w - side),
              (max(0, min(chunk, h) - side // 2), max(0, min(chunk, w) - side // 2))]
    starts += [(int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)))
               for _ in range(count - len(starts))]
    return starts


def check_blocks(ref: Path, other: Path, shape: tuple[int, int], chunk: int,
                 count: int = 6) -> tuple[bool, int]:
    """Compare corners, a chunk seam and random blocks of two outputs exactly."""
    import zarr

    a, b = zarr.open_array(str(ref), mode="r"), zarr.open_array(str(other), mode="r")
    if a.shape != b.shape:
        return False, 0
    side = min(512, *shape)
    cells = 0
    for i, j in sample_starts(shape, chunk, side, count):
        key = (slice(i, i + side), slice(j, j + side))
        if not np.array_equal(a[key], b[key], equal_nan=True):
            return False, cells
        cells += side * side
    return True, cells


def versions() -> dict:
    out = {}
    for mod in ("dask", "distributed", "xarray", "zarr", "numcodecs", "psutil"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    return out


# --- main ----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child-tiled", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--gb", type=float, default=4.0,
                    help="input size in GiB (default 4: 32768x32768 float32)")
    ap.add_argument("--chunk", type=int, default=4096, help="input chunk side")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory", default="1GiB",
                    help="memory_limit of each worker (and the local path's limit)")
    ap.add_argument("--memory-limit", default=None,
                    help="memory_limit of the local tiled path (default: --worker-memory)")
    ap.add_argument("--only", default="tiled,poolcli dask,dask coarsen,xarray coarsen")
    ap.add_argument("--workdir", default=None,
                    help="folder for the input and outputs (default: a new one under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--json", default=None, help="write the results as JSON (- for stdout)")
    args = ap.parse_args()
    limit = args.memory_limit or args.worker_memory
    if args.child_tiled:
        print(json.dumps(child_tiled(*args.child_tiled, limit)))
        return

    from poolcli.tiled import parse_size

    # the side: a multiple of 2 near sqrt(GiB / 4 bytes)
    side = max(2, 2 * round(math.sqrt(args.gb * (1 << 30) / 4) / 2))
    chunk = min(args.chunk, side)
    shape, out_shape = (side, side), (side // 2, side // 2)
    out_chunks = (chunk // 2, chunk // 2)
    nbytes = side * side * 4
    worker_limit = parse_size(args.worker_memory)
    only = [w for w in args.only.split(",") if w]
    if "tiled" not in only:
        only.insert(0, "tiled")  # the reference every result is checked against

    info = machine_info() | versions()
    print_machine(info)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_dask_"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "in.zarr"
    results: dict[str, dict] = {}
    try:
        ensure_input(src, side, chunk)
        stored = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
        print(f"stored {stored / 2**30:.2f} GiB ({stored / nbytes:.0%} of raw), "
              f"max k=2 s=2 into {out_chunks[0]}x{out_chunks[1]} chunks; one run each\n")

        shutil.rmtree(work / "tiled.zarr", ignore_errors=True)
        results["tiled"] = run_tiled(src, work / "tiled.zarr", limit)
        results["tiled"]["ok"] = True
        print(f"  local tiled: {results['tiled']['seconds']:.1f} s", flush=True)

        cluster_ways = [w for w in only if w != "tiled"]
        if cluster_ways:
            with bench_cluster(args.workers, args.worker_memory) as client:
                for way in cluster_ways:
                    dst = work / (way.replace(" ", "-") + ".zarr")
                    shutil.rmtree(dst, ignore_errors=True)
                    try:
                        r = run_on_cluster(client, way, src, dst, out_shape, out_chunks)
                        r["ok"], r["checked_cells"] = check_blocks(
                            work / "tiled.zarr", dst, out_shape, out_chunks[0])
                    except ImportError as e:
                        r = {"skipped": f"does not import ({e})"}
                    results[way] = r
                    print(f"  {way}: {r.get('seconds', float('nan')):.1f} s", flush=True)
                    shutil.rmtree(dst, ignore_errors=True)
        main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # --- the table ---
    rows = []
    for way, r in results.items():
        if "skipped" in r:
            rows.append([way, "skipped: " + r["skipped"], "", "", "", "", ""])
            continue
        mbps = nbytes / 1e6 / r["seconds"]
        if way == "tiled":
            rss = f"{r['peak_mib']:.0f} (one process)"
            tasks = "-"
        else:
            rss = (" / ".join(f"{p:.0f}" for p in r["worker_peak_mib"])
                   + f" (sched+client {r['scheduler_peak_mib']:.0f})")
            tasks = str(r["tasks"])
        rows.append([way, f"{r['seconds']:.1f}", f"{mbps:.0f}", rss, tasks,
                     "ok" if r["ok"] else "MISMATCH"])
    name = {"tiled": "(1) local tiled pool_store", "poolcli dask": "(2) poolcli pool() on dask",
            "dask coarsen": "(3) dask.array.coarsen", "xarray coarsen": "(4) xarray coarsen"}
    for r in rows:
        r[0] = name.get(r[0], r[0])
    print(f"\n{side}x{side} float32 ({nbytes / 2**30:.2f} GiB), max k=2 s=2, "
          f"{args.workers} workers x 1 thread, {args.worker_memory} each; local limit {limit}\n")
    print(format_table(["way", "seconds", "MB/s in", "peak RSS MiB (workers)", "tasks",
                        "agrees"], rows))

    def secs(way):
        r = results.get(way, {})
        return r.get("seconds")

    ours = secs("poolcli dask")
    targets = []
    co = secs("dask coarsen")
    ratio = co / ours if ours and co else None
    targets.append(["poolcli dask vs dask coarsen (speed-up)", ">= 1.5x",
                    f"{ratio:.2f}x" if ratio else "n/a",
                    verdict(None if ratio is None else ratio >= 1.5)])
    ti = secs("tiled")
    ratio = ti / ours if ours and ti else None
    targets.append(["poolcli dask vs local tiled (speed)", ">= 0.8x",
                    f"{ratio:.2f}x" if ratio else "n/a",
                    verdict(None if ratio is None else ratio >= 0.8)])
    pk = results.get("poolcli dask", {}).get("worker_peak_mib")
    worst = max(pk) if pk else None
    targets.append(["poolcli dask peak RSS per worker", f"<= {worker_limit / MiB:.0f} MiB",
                    f"{worst:.0f} MiB" if worst else "n/a",
                    verdict(None if worst is None else worst * MiB <= worker_limit)])
    print()
    print(format_table(["target", "wanted", "measured", "verdict"], targets))
    print(f"\nthis process (client + scheduler) lifetime peak: {main_peak:.0f} MiB; "
          "one run each on a shared machine: treat seconds as +-20%")
    bad = [w for w, r in results.items() if "ok" in r and not r["ok"]]
    if args.json:
        write_json(args.json, {"machine": info, "shape": shape, "chunks": (chunk, chunk),
                               "out_chunks": out_chunks, "worker_memory": args.worker_memory,
                               "local_limit": limit, "results": results,
                               "main_peak_mib": main_peak,
                               "targets": [dict(zip(["target", "wanted", "measured",
                                                     "verdict"], t, strict=True))
                                           for t in targets]})
    if bad:
        raise SystemExit(f"results differ from the local tiled path: {', '.join(bad)}")


if __name__ == "__main__":
    main()
