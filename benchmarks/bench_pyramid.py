"""Issue 12: pyramids and zarr streaming against tinybrain, ome-zarr-py and xarray.

Every case runs in its own process, so its peak RSS is its own (printed as the peak and
as the growth over the process after its input was made). One run each unless said.

    python benchmarks/bench_pyramid.py                  # all, ~5 min on 2 cores
    python benchmarks/bench_pyramid.py --depth 512      # the full 512x2048x2048 volume
    python benchmarks/bench_pyramid.py --only image,zarr

Workloads:
- image: 4096x4096 uint8 to 5 avg levels in memory (median of 5 runs): poolcli.pyramid,
  tinybrain.downsample_with_averaging(num_mips=5), ome-zarr-py Scaler.local_mean.
- volume: DEPTHx2048x2048 uint8 to 5 levels over y, x in memory (one run each).
- zarr: a DEPTH_Zx4096x4096 uint8 zarr, 8x --memory-limit: `poolcli pyramid` streamed
  into an OME-Zarr, and xarray coarsen (dask, level from the stored previous level);
  then `poolcli avg -k 2` zarr -> zarr against the .npy tiled path on the same array.
Peers that do not import are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- cases, each run in a child process -------------------------------------------------


def _image(tool: str) -> dict:
    x = np.random.default_rng(0).integers(0, 256, (4096, 4096), dtype=np.uint8)
    fn = _pyramid_fn(tool, x, (0, 1))
    base = rss_mib()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "base_mib": base}


def _volume(tool: str, depth: int) -> dict:
    x = np.random.default_rng(0).integers(0, 256, (depth, 2048, 2048), dtype=np.uint8)
    fn = _pyramid_fn(tool, x, (1, 2))
    base = rss_mib()
    t0 = time.perf_counter()
    fn()
    return {"seconds": time.perf_counter() - t0, "base_mib": base}


def _pyramid_fn(tool: str, x: np.ndarray, axes: tuple[int, ...]):
    if tool == "poolcli":
        from poolcli import pyramid

        return lambda: pyramid(x, levels=5, axes=axes)
    if tool == "tinybrain":
        import tinybrain

        if x.ndim == 2:
            return lambda: tinybrain.downsample_with_averaging(x, (2, 2), num_mips=5)
        xt = x.transpose(1, 2, 0)  # tinybrain pools its first axes: (y, x, z), a view
        return lambda: tinybrain.downsample_with_averaging(xt, (2, 2, 1), num_mips=5)
    if tool == "ome-zarr":
        from ome_zarr.scale import Scaler

        scaler = Scaler(max_layer=5, downscale=2, method="local_mean")
        return lambda: scaler.local_mean(x)
    raise SystemExit(f"unknown tool {tool}")


def _xarray_pyramid(src: str, out: str) -> dict:
    import dask
    import dask.array as da
    import xarray as xr

    dask.config.set(scheduler="threads")
    base = rss_mib()
    t0 = time.perf_counter()
    cur = da.from_zarr(src)
    for i in range(1, 6):
        arr = xr.DataArray(cur, dims=("z", "y", "x"))
        lvl = arr.coarsen(y=2, x=2, boundary="pad").mean().round().astype(np.uint8)
        path = f"{out}/{i}"
        lvl.data.rechunk((1, 256, 256)).to_zarr(path, overwrite=True)
        cur = da.from_zarr(path)
    return {"seconds": time.perf_counter() - t0, "base_mib": base}


def child(args: argparse.Namespace) -> None:
    kind, tool = args.case.split(":")
    try:
        if kind == "image":
            res = _image(tool)
        elif kind == "volume":
            res = _volume(tool, args.depth)
        elif kind == "xarray":
            res = _xarray_pyramid(args.src, args.out)
        else:
            raise SystemExit(f"unknown case {args.case}")
    except ImportError as e:
        res = {"skipped": f"{tool} does not import ({e})"}
    res["peak_mib"] = rss_mib()
    print(json.dumps(res))


# --- the parent: runs the cases and prints the tables -----------------------------------


def run_case(case: str, **kw) -> dict:
    argv = [sys.executable, __file__, "--child", "--case", case]
    for k, v in kw.items():
        argv += [f"--{k}", str(v)]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        return {"skipped": f"failed: {p.stderr.strip().splitlines()[-1:]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_cli(args: list[str]) -> dict:
    """A poolcli command's wall time and peak RSS (its own process, by /usr/bin/time)."""
    timer = ["/usr/bin/time", "-f", "PEAK_KB %M"] if os.path.exists("/usr/bin/time") else []
    t0 = time.perf_counter()
    p = subprocess.run([*timer, sys.executable, "-m", "poolcli", *args, "-q"],
                       capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"poolcli {' '.join(args)} failed: {p.stderr}")
    peak = [int(w.split()[1]) for w in p.stderr.splitlines() if w.startswith("PEAK_KB")]
    return {"seconds": seconds, "peak_mib": peak[0] / 1024 if peak else float("nan")}


def row(name: str, res: dict, ref: float | None = None) -> str:
    if "skipped" in res:
        return f"| {name} | skipped: {res['skipped']} | | |"
    ratio = f"{res['seconds'] / ref:.2f}x" if ref else ""
    growth = res["peak_mib"] - res.get("base_mib", 0)
    return (f"| {name} | {res['seconds']:.3f} s {ratio} | {res['peak_mib']:.0f} MiB | "
            f"{growth:.0f} MiB |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--depth", type=int, default=128, help="volume depth (issue: 512)")
    ap.add_argument("--zarr-depth", type=int, default=32,
                    help="depth of the 4096x4096 zarr (32: 512 MiB)")
    ap.add_argument("--limit", default="64MiB", help="--memory-limit of the zarr runs")
    ap.add_argument("--only", default="image,volume,zarr")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    only = set(args.only.split(","))
    head = "| tool | time | peak RSS | growth over the input |\n|---|---|---|---|"
    if "image" in only:
        print("\n### 4096x4096 uint8 image, 5 avg levels in memory (median of 5)\n")
        print(head)
        res = {t: run_case(f"image:{t}") for t in ("poolcli", "tinybrain", "ome-zarr")}
        ref = res["tinybrain"].get("seconds")
        for t, r in res.items():
            print(row(t, r, ref))
    if "volume" in only:
        print(f"\n### {args.depth}x2048x2048 uint8 volume, 5 avg levels over y, x (one run)\n")
        print(head)
        res = {t: run_case(f"volume:{t}", depth=args.depth)
               for t in ("poolcli", "tinybrain", "ome-zarr")}
        ref = res["tinybrain"].get("seconds")
        for t, r in res.items():
            print(row(t, r, ref))
    if "zarr" in only:
        import zarr

        work = Path(tempfile.mkdtemp(prefix="bench_pyramid_"))
        try:
            shape = (args.zarr_depth, 4096, 4096)
            src = zarr.create_array(store=str(work / "in.zarr"), shape=shape,
                                    chunks=(1, 512, 512), dtype=np.uint8)
            npy = np.lib.format.open_memmap(work / "in.npy", "w+", np.uint8, shape)
            rng = np.random.default_rng(0)
            for z in range(shape[0]):
                plane = rng.integers(0, 256, shape[1:], dtype=np.uint8)
                src[z], npy[z] = plane, plane
            npy.flush()
            del npy
            print(f"\n### {'x'.join(map(str, shape))} uint8 zarr ({np.prod(shape) >> 20} MiB),"
                  f" --memory-limit {args.limit}, 5 levels (one run)\n")
            print(head)
            ours = run_cli(["pyramid", str(work / "in.zarr"), "-o", str(work / "p.zarr"),
                            "--levels", "5", "--memory-limit", args.limit])
            theirs = run_case("xarray:coarsen", src=work / "in.zarr", out=work / "x.zarr")
            print(row("poolcli pyramid (streamed)", ours, theirs.get("seconds")))
            print(row("xarray coarsen + dask", theirs))
            print("\n### avg -k 2, zarr -> zarr against .npy -> .npy (tiled), same array\n")
            print("| path | time | peak RSS | throughput |\n|---|---|---|---|")
            mb = np.prod(shape) / 1e6
            for name, a in (("zarr -> zarr", ["in.zarr", "o.zarr"]),
                            (".npy -> .npy", ["in.npy", "o.npy"])):
                r = run_cli(["avg", str(work / a[0]), "-k", "2", "-o", str(work / a[1]),
                             "--memory-limit", args.limit])
                print(f"| {name} | {r['seconds']:.2f} s | {r['peak_mib']:.0f} MiB | "
                      f"{mb / r['seconds']:.0f} MB/s |")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\npython {sys.version.split()[0]}, numpy {np.__version__}, "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
