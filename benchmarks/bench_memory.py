"""Time and peak memory of out-of-core pooling beside in-memory runs, on one .npy file.

Each case runs in a fresh process, measured from a wrapper whose only child it is, so
the peak RSS belongs to that case alone. Cases (max, k=3, s=2, p=1 unless --kind):

- poolcli tiled:     pool_file(..., memory_limit=LIMIT)      chunks straight from disk
- poolcli in-memory: pool_file(..., memory_limit=huge)       np.load, pool, save
- numpy + skimage:   np.load + skimage.measure.block_reduce(np.max, 2x2), save
                     (k=2, s=2 without padding: the nearest thing block_reduce does)

    python benchmarks/bench_memory.py                    # 1 GB float32, 128MB limit
    python benchmarks/bench_memory.py --gb 0.25 --limit 64MB --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    "sys.exit(rc)\n"
)


def measure(code: str) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of ``python -c code`` in a fresh process."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-c", code],
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"case failed:\n{code}\n{out.stderr[-2000:]}")
    return seconds, int(out.stdout.split()[-1])


def make_file(path: str, gb: float) -> tuple[int, int]:
    cols = 16384
    rows = max(64, int(gb * 1e9 / 4 / cols))
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, cols))
    for r in range(0, rows, 1024):
        arr[r:r + 1024] = np.random.default_rng(r).standard_normal(
            (min(1024, rows - r), cols), dtype=np.float32)
    arr.flush()
    del arr
    return rows, cols


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0, help="input size in GB (float32)")
    ap.add_argument("--limit", default="128MB", help="memory limit of the tiled case")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        src = os.path.join(d, "in.npy")
        rows, cols = make_file(src, args.gb)
        out = os.path.join(d, "out.npy")
        pipe = "Pipeline.parse('max:k=3,s=2,p=1')"
        cases = {
            f"poolcli tiled ({args.limit})":
                "from poolcli import Pipeline\nfrom poolcli.tiled import pool_file\n"
                f"pool_file({src!r}, {out!r}, {pipe}, memory_limit={args.limit!r}, "
                "overwrite=True)",
            "poolcli in-memory":
                "from poolcli import Pipeline\nfrom poolcli.tiled import pool_file\n"
                f"pool_file({src!r}, {out!r}, {pipe}, memory_limit='1TB', overwrite=True)",
        }
        try:
            import skimage  # noqa: F401
            cases["np.load + block_reduce(2x2)"] = (
                "import numpy as np\nfrom skimage.measure import block_reduce\n"
                f"x = np.load({src!r})\nnp.save({out!r}, block_reduce(x, (2, 2), np.max))")
        except ImportError:
            print("note: scikit-image is not installed; its case is skipped", file=sys.stderr)
        results: dict[str, list[tuple[float, int]]] = {k: [] for k in cases}
        for _ in range(args.repeat):  # round robin, so drift hits every case alike
            for name, code in cases.items():
                results[name].append(measure(code))
    size = rows * cols * 4
    print(f"input: {rows}x{cols} float32, {size / 1e9:.2f} GB; median of {args.repeat} runs, "
          "each in a fresh process")
    base = statistics.median(s for s, _ in results["poolcli in-memory"])
    print(f"{'case':34} {'seconds':>8} {'GB/s':>6} {'peak RSS':>10} {'vs in-memory':>13}")
    for name, runs in results.items():
        sec = statistics.median(s for s, _ in runs)
        rss = statistics.median(r for _, r in runs)
        print(f"{name:34} {sec:8.2f} {size / sec / 1e9:6.2f} {rss / 2**20:7.0f} MiB "
              f"{base / sec:12.2f}x")
    tiled = next(k for k in results if k.startswith("poolcli tiled"))
    peak = statistics.median(r for _, r in results[tiled]) / 2**20
    ratio = base / statistics.median(s for s, _ in results[tiled])
    print(f"targets: peak RSS < 300 MB: {'PASS' if peak < 300 else 'FAIL'} ({peak:.0f} MiB); "
          f"tiled throughput >= 0.8x in-memory: {'PASS' if ratio >= 0.8 else 'FAIL'} "
          f"({ratio:.2f}x)")


if __name__ == "__main__":
    main()
