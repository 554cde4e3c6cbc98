"""Time poolcli.pool beside PyTorch, scikit-image, SciPy, Pillow, OpenCV and tinybrain.

Issue 2's workloads W1..W7 and issue 11's integer workloads W8 (mode of label masks,
uint8 and uint32), W9 (avg of a uint8 image) and W10 (avg of a uint8 volume); W11 and
W11-BIG, means of int64 images (small values, and values near 2**62 summed exactly).
For each workload this runs, interleaved round by round in one process:
the copy floor ``np.copyto(dst, x)``, ``poolcli.pool`` with threads=1 (and threads=2),
and every peer that can do the same operation; checks each peer's result against
poolcli's; prints median milliseconds, the ratio to the copy floor and the targets with
PASS/FAIL. Peers that are not installed are skipped with a message.

    python benchmarks/bench_core.py                # whole run, about 5-6 minutes
    python benchmarks/bench_core.py --repeat 15 --only W1,W4 --json core.json
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _timing import (
    format_info,
    format_table,
    machine_info,
    median_ms,
    time_round_robin,
    verdict,
    write_json,
)

from poolcli import pool

COPY = "np.copyto (copy floor)"
P1 = "poolcli threads=1"
P2 = "poolcli threads=2"
C1 = "machine ceiling: np.sin, 1 thread"
C2 = "machine ceiling: np.sin, 2 threads"


def _optional(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except Exception as exc:  # ImportError, or a broken install
        print(f"note: {name} is not importable ({exc.__class__.__name__}: {exc}); "
              f"its rows are skipped", file=sys.stderr)
        return None


torch = _optional("torch")
F = _optional("torch.nn.functional") if torch is not None else None
skmeasure = _optional("skimage.measure")
ndimage = _optional("scipy.ndimage")
PILImage = _optional("PIL.Image")
cv2 = _optional("cv2")  # opencv-python-headless: bench-only peer, never a dependency
tinybrain = _optional("tinybrain")  # bench-only peer, never a dependency
if cv2 is not None:
    cv2.setNumThreads(1)


@dataclass
class Peer:
    name: str
    run: Callable[[], Any]
    # Maps the timed call's result to an array comparable with poolcli's output.
    convert: Callable[[Any], np.ndarray] = np.asarray
    atol: float = 0.0
    rtol: float = 0.0


@dataclass
class Workload:
    key: str
    title: str
    x: np.ndarray
    params: dict[str, Any]
    two_threads: bool = True
    ratio_target: float | None = None
    speedup_target: float | None = None  # threads=2 vs threads=1
    # (peer name, factor): poolcli threads=1 must be >= factor times faster than the peer;
    # a factor below 1 means "within 1/factor of the peer".
    peer_target: tuple[str, float] | None = None
    peers: list[Peer] = field(default_factory=list)
    more_peer_targets: list[tuple[str, float]] = field(default_factory=list)


def _tensor(a: np.ndarray) -> Any:
    return torch.from_numpy(a)


CV_AREA = "OpenCV resize INTER_AREA (1 thread)"
CV_DILATE = "OpenCV dilate 7x7 (1 thread)"
TB_AVG = "tinybrain downsample_with_averaging"
TB_SEG = "tinybrain downsample_segmentation"


def _cv_area(x: np.ndarray, atol: float = 0.0, rtol: float = 0.0) -> Peer:
    size = (x.shape[1] // 2, x.shape[0] // 2)
    return Peer(CV_AREA, lambda: cv2.resize(x, size, interpolation=cv2.INTER_AREA),
                atol=atol, rtol=rtol)


def _tinybrain(fn_name: str, x: np.ndarray, factor: tuple[int, ...], atol: float = 0.0,
               rtol: float = 0.0) -> Peer:
    # tinybrain's fast path is for Fortran order: it gets the transposed view (no copy)
    # and its result is transposed back, so both tools read the same memory layout.
    fn = getattr(tinybrain, fn_name)
    xt = x.T
    name = TB_AVG if fn_name == "downsample_with_averaging" else TB_SEG
    return Peer(name, lambda: fn(xt, factor)[0], convert=lambda r: np.asarray(r).T,
                atol=atol, rtol=rtol)


def _labels(rng: np.random.Generator, dtype: Any, n: int = 4096, blob: int = 64) -> np.ndarray:
    """A label mask: blob x blob squares of 50 labels (issue 11's W8)."""
    lab = rng.integers(0, 50, (n // blob, n // blob)).astype(dtype)
    return np.ascontiguousarray(lab.repeat(blob, 0).repeat(blob, 1))


def make_workloads(rng: np.random.Generator, only: set[str] | None) -> list[Workload]:
    def want(key: str) -> bool:
        return only is None or key in only

    wl: list[Workload] = []
    big = None
    if any(want(k) for k in ("W1", "W2", "W3", "W4", "W7")):
        big = rng.standard_normal((4096, 4096), dtype=np.float32)

    if want("W1"):
        x = big
        w = Workload("W1", "max k=2 s=2, float32 4096x4096", x,
                     dict(kind="max", kernel=2, stride=2), ratio_target=2.0,
                     speedup_target=1.6)
        w.peers.append(Peer("numpy reshape().max()",
                            lambda x=x: x.reshape(2048, 2, 2048, 2).max(axis=(1, 3))))
        if torch is not None:
            t = _tensor(x)[None, None]
            w.peers.append(Peer("torch max_pool2d (1 thread)",
                                lambda t=t: F.max_pool2d(t, 2, 2)[0, 0].numpy()))
        if skmeasure is not None:
            w.peers.append(Peer("skimage block_reduce(np.max)",
                                lambda x=x: skmeasure.block_reduce(x, (2, 2), np.max)))
        if ndimage is not None:
            w.peers.append(Peer("scipy maximum_filter + [1::2]",
                                lambda x=x: ndimage.maximum_filter(x, size=2)[1::2, 1::2]))
        wl.append(w)

    if want("W2"):
        x = big
        w = Workload("W2", "avg k=2 s=2, float32 4096x4096", x,
                     dict(kind="avg", kernel=2, stride=2), ratio_target=2.0,
                     speedup_target=1.6)
        w.peers.append(Peer("numpy reshape().mean()",
                            lambda x=x: x.reshape(2048, 2, 2048, 2).mean(axis=(1, 3)),
                            rtol=1e-5, atol=1e-6))
        if torch is not None:
            t = _tensor(x)[None, None]
            w.peers.append(Peer("torch avg_pool2d (1 thread)",
                                lambda t=t: F.avg_pool2d(t, 2, 2)[0, 0].numpy(),
                                rtol=1e-5, atol=1e-6))
        if skmeasure is not None:
            w.peers.append(Peer("skimage block_reduce(np.mean)",
                                lambda x=x: skmeasure.block_reduce(x, (2, 2), np.mean),
                                rtol=1e-5, atol=1e-6))
        if ndimage is not None:
            w.peers.append(Peer("scipy uniform_filter + [1::2]",
                                lambda x=x: ndimage.uniform_filter(x, size=2)[1::2, 1::2],
                                rtol=1e-5, atol=1e-6))
        if cv2 is not None:
            w.peers.append(_cv_area(x, rtol=1e-5, atol=1e-6))
        if tinybrain is not None:
            w.peers.append(_tinybrain("downsample_with_averaging", x, (2, 2), rtol=1e-5,
                                      atol=1e-6))
        wl.append(w)

    if want("W3"):
        x = big
        w = Workload("W3", "max k=3 s=2 p=1, float32 4096x4096", x,
                     dict(kind="max", kernel=3, stride=2, padding=1), ratio_target=4.0,
                     speedup_target=1.6)
        if torch is not None:
            t = _tensor(x)[None, None]
            w.peers.append(Peer("torch max_pool2d (1 thread)",
                                lambda t=t: F.max_pool2d(t, 3, 2, 1)[0, 0].numpy()))
        if ndimage is not None:
            w.peers.append(Peer("scipy maximum_filter + [::2]",
                                lambda x=x: ndimage.maximum_filter(
                                    x, size=3, mode="constant", cval=-np.inf)[::2, ::2]))
        wl.append(w)

    if want("W4"):
        x = big
        w = Workload("W4", "max k=7 s=1 p=3, float32 4096x4096", x,
                     dict(kind="max", kernel=7, stride=1, padding=3), ratio_target=10.0,
                     speedup_target=1.6, peer_target=("scipy maximum_filter", 5.0))
        if torch is not None:
            t = _tensor(x)[None, None]
            w.peers.append(Peer("torch max_pool2d (1 thread)",
                                lambda t=t: F.max_pool2d(t, 7, 1, 3)[0, 0].numpy()))
        if ndimage is not None:
            w.peers.append(Peer("scipy maximum_filter",
                                lambda x=x: ndimage.maximum_filter(
                                    x, size=7, mode="constant", cval=-np.inf)))
        if cv2 is not None:
            se = np.ones((7, 7), np.uint8)
            w.peers.append(Peer(CV_DILATE, lambda x=x, se=se: cv2.dilate(
                x, se, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)))
        w.more_peer_targets.append((CV_DILATE, 1 / 1.5))  # issue 11
        wl.append(w)

    if want("W5"):
        x = rng.standard_normal((16, 64, 112, 112), dtype=np.float32)
        w = Workload("W5", "max k=3 s=2 p=1, float32 16x64x112x112", x,
                     dict(kind="max", kernel=3, stride=2, padding=1), ratio_target=4.0)
        if torch is not None:
            t = _tensor(x)
            w.peers.append(Peer("torch max_pool2d (1 thread)",
                                lambda t=t: F.max_pool2d(t, 3, 2, 1).numpy()))
        if ndimage is not None:
            w.peers.append(Peer("scipy maximum_filter + [::2]",
                                lambda x=x: ndimage.maximum_filter(
                                    x, size=(1, 1, 3, 3), mode="constant",
                                    cval=-np.inf)[:, :, ::2, ::2]))
        wl.append(w)

    if want("W6"):
        x = rng.integers(0, 256, size=(3000, 4000, 3), dtype=np.uint8)
        # Issue 2 asked for "within 2x of Pillow", issue 11 for "no slower than Pillow".
        w = Workload("W6", "avg k=2, uint8 3000x4000x3 image, uint8 out", x,
                     dict(kind="avg", kernel=2, axes=(0, 1), dtype=np.uint8),
                     peer_target=("Pillow Image.reduce(2)", 1.0), speedup_target=1.5)
        if PILImage is not None:
            im = PILImage.fromarray(x)
            # Pillow rounds halves up, poolcli to even: they may differ by 1.
            w.peers.append(Peer("Pillow Image.reduce(2)", lambda im=im: im.reduce(2),
                                atol=1.0))
        if skmeasure is not None:
            w.peers.append(Peer("skimage block_reduce(np.mean), float64 out",
                                lambda x=x: skmeasure.block_reduce(x, (2, 2, 1), np.mean),
                                atol=0.5 + 1e-9))
        if ndimage is not None:
            w.peers.append(Peer("scipy uniform_filter(float32) + [1::2]",
                                lambda x=x: ndimage.uniform_filter(
                                    x, size=(2, 2, 1), output=np.float32)[1::2, 1::2],
                                atol=0.5 + 1e-3))
        if cv2 is not None:
            # OpenCV rounds halves up, poolcli to even: they may differ by 1.
            w.peers.append(_cv_area(x, atol=1.0))
        wl.append(w)

    if want("W7"):
        x = big
        n = (x.shape[0] // 3) * 3
        w = Workload("W7", "median k=3 s=3, float32 4096x4096", x,
                     dict(kind="median", kernel=3, stride=3),
                     peer_target=("skimage block_reduce(np.median)", 10.0))
        if skmeasure is not None:
            # block_reduce pads a partial last block; crop to the full blocks pool uses.
            w.peers.append(Peer("skimage block_reduce(np.median)",
                                lambda x=x, n=n: skmeasure.block_reduce(
                                    x[:n, :n], (3, 3), np.median)))
        if ndimage is not None:
            w.peers.append(Peer("scipy median_filter + [1::3]",
                                lambda x=x: ndimage.median_filter(x, size=3)[1::3, 1::3]))
        if torch is not None:
            t = _tensor(x[:n, :n])
            m = n // 3
            w.peers.append(Peer("torch unfold + median (1 thread)",
                                lambda t=t, m=m: t.unfold(0, 3, 3).unfold(1, 3, 3)
                                .reshape(m, m, 9).median(-1).values.numpy()))
        wl.append(w)

    # Issue 11: integer images, volumes and label masks.
    for key, dt in (("W8", np.uint8), ("W8-U32", np.uint32)):
        if want(key):
            x = _labels(rng, dt)
            w = Workload(key, f"mode k=2, {np.dtype(dt).name} labels 4096x4096 "
                         "(64x64 blobs of 50 labels)", x, dict(kind="mode", kernel=2),
                         speedup_target=1.5, peer_target=(TB_SEG, 0.25))
            if tinybrain is not None:
                w.peers.append(_tinybrain("downsample_segmentation", x, (2, 2)))
            wl.append(w)

    if want("W9"):
        x = rng.integers(0, 256, size=(4096, 4096), dtype=np.uint8)
        w = Workload("W9", "avg k=2, uint8 4096x4096, uint8 out", x,
                     dict(kind="avg", kernel=2, dtype=np.uint8), speedup_target=1.5,
                     peer_target=(CV_AREA, 1 / 3))
        if cv2 is not None:
            w.peers.append(_cv_area(x, atol=1.0))  # OpenCV rounds halves up
        if tinybrain is not None:
            w.peers.append(_tinybrain("downsample_with_averaging", x, (2, 2), atol=1.0))
        if PILImage is not None:
            im = PILImage.fromarray(x)
            w.peers.append(Peer("Pillow Image.reduce(2)", lambda im=im: im.reduce(2),
                                atol=1.0))
        wl.append(w)

    if want("W10"):
        x = rng.integers(0, 256, size=(256, 1024, 1024), dtype=np.uint8)
        w = Workload("W10", "avg 2x2x2, uint8 volume 256x1024x1024, uint8 out", x,
                     dict(kind="avg", kernel=(2, 2, 2), dtype=np.uint8),
                     speedup_target=1.5, peer_target=(TB_AVG, 1 / 1.5))
        if tinybrain is not None:
            w.peers.append(_tinybrain("downsample_with_averaging", x, (2, 2, 2), atol=1.0))
        wl.append(w)

    # 64-bit integer means: float64 sums where they are exact, exact 32-bit halves where
    # the values times the window could pass 2**53 (W11-BIG, values near 2**62).
    for key, top in (("W11", 2**40), ("W11-BIG", 2**62)):
        if want(key):
            x = rng.integers(-top, top, size=(2048, 2048), dtype=np.int64)
            wl.append(Workload(key, f"avg k=2, int64 2048x2048, |values| < 2**"
                               f"{top.bit_length() - 1}, float64 out", x,
                               dict(kind="avg", kernel=2), two_threads=False))
    return wl


class Ceiling:
    """How much faster two threads run than one on this machine right now.

    Cache-resident np.sin over 64 KiB blocks, split between 1 or 2 worker threads of a
    persistent pool: compute-bound, GIL released, no shared memory traffic, so about
    2x on two free cores. Timed in the same rounds as poolcli's threads=1/2 runs; when
    other processes hold a core it drops towards 1x, and so must any threading speed-up.
    """

    def __init__(self) -> None:
        self.x = np.linspace(0, 1, 4 * 2**20, dtype=np.float32).reshape(-1, 16384)
        self.out = np.empty_like(self.x)
        self.ex = ThreadPoolExecutor(2)

    def _part(self, rows: range) -> None:
        for i in rows:
            np.sin(self.x[i], out=self.out[i])

    def run(self, n: int) -> None:
        rows = range(self.x.shape[0])
        futures = [self.ex.submit(self._part, rows[i::n]) for i in range(n)]
        for f in futures:
            f.result()


CEILING = Ceiling()


def check(peer: Peer, result: Any, ref: np.ndarray) -> str:
    try:
        got = peer.convert(result)
        np.testing.assert_allclose(got, ref, rtol=peer.rtol, atol=peer.atol)
    except AssertionError as exc:
        first = str(exc).strip().splitlines()
        return "MISMATCH: " + (" ".join(first[:3]) if first else "")
    return "ok" if peer.atol == 0 and peer.rtol == 0 else f"ok (atol={peer.atol:g})"


def run_workload(w: Workload, repeat: int) -> dict[str, Any]:
    x = w.x
    dst = np.empty_like(x)
    ref = pool(x, threads=1, **w.params)
    cases: dict[str, Callable[[], Any]] = {
        COPY: lambda: np.copyto(dst, x),
        P1: lambda: pool(x, threads=1, **w.params),
    }
    if w.two_threads:
        cases[P2] = lambda: pool(x, threads=2, **w.params)
    if w.speedup_target is not None:
        cases[C1] = lambda: CEILING.run(1)
        cases[C2] = lambda: CEILING.run(2)
    for p in w.peers:
        cases[p.name] = p.run
    times, first = time_round_robin(cases, repeat)
    agree: dict[str, str] = {COPY: "", P1: "reference", C1: "calibration", C2: "calibration"}
    if P2 in first:
        res2 = first[P2]
        agree[P2] = ("identical" if res2.dtype == ref.dtype and np.array_equal(res2, ref)
                     else "DIFFERS from threads=1")
    for p in w.peers:
        agree[p.name] = check(p, first[p.name], ref)
    del first
    med = {name: median_ms(ts) for name, ts in times.items()}
    copy_ms = med[COPY]
    rows = []
    for name in cases:
        rows.append(dict(workload=w.key, tool=name, runs=len(times[name]),
                         median_ms=med[name], ratio_to_copy=med[name] / copy_ms,
                         agrees=agree[name], all_ms=[t * 1000 for t in times[name]]))
    targets = []
    p1 = med[P1]
    if w.ratio_target is not None:
        r = p1 / copy_ms
        targets.append(dict(workload=w.key, target=f"poolcli 1 thread <= {w.ratio_target:g}x copy",
                            measured=f"{r:.2f}x copy", ok=r <= w.ratio_target))
    if w.speedup_target is not None and P2 in med:
        s = p1 / med[P2]
        ceiling = med[C1] / med[C2]
        targets.append(dict(workload=w.key,
                            target=f"threads=2 >= {w.speedup_target:g}x faster than threads=1",
                            measured=f"{s:.2f}x (machine ceiling {ceiling:.2f}x)",
                            ok=s >= w.speedup_target))
    peer_targets = ([w.peer_target] if w.peer_target is not None else []) + \
        w.more_peer_targets
    for name, factor in peer_targets:
        if name in med:
            s = med[name] / p1
            if factor >= 1:
                text = f"poolcli 1 thread >= {factor:g}x faster than {name}"
            else:
                text = f"poolcli 1 thread within {1 / factor:g}x of {name}"
            targets.append(dict(workload=w.key, target=text,
                                measured=f"{s:.2f}x faster" if s >= 1 else
                                f"{1 / s:.2f}x slower", ok=s >= factor))
        else:
            targets.append(dict(workload=w.key, target=f"vs {name}",
                                measured=f"{name} not available", ok=None))
    return dict(key=w.key, title=w.title, shape=list(x.shape), dtype=str(x.dtype),
                params={k: str(v) for k, v in w.params.items()}, rows=rows, targets=targets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=9,
                    help="timed runs per tool (slow peers, > 0.4 s a call, run 3 times)")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W4")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-peers", action="store_true",
                    help="time only the copy floor and poolcli (a quick threads check)")
    args = ap.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(1)
    only = {s.strip().upper() for s in args.only.split(",")} if args.only else None
    info = machine_info({"ImageMagick": ["convert", "-version"], "vips": ["vips", "--version"]})
    info["torch threads"] = torch.get_num_threads() if torch is not None else None
    print("poolcli core benchmark: median of interleaved runs; ratio = median / median "
          "np.copyto of the same input, same run")
    print(format_info(info))
    print(f"  load average  {' '.join(f'{v:.2f}' for v in os.getloadavg())} (start)")
    sys.stdout.flush()

    results = []
    for w in make_workloads(np.random.default_rng(args.seed), only):
        if args.no_peers:
            w.peers = []
        print(f"\n{w.key}: {w.title}  (input {w.x.nbytes / 2**20:.0f} MiB)", flush=True)
        res = run_workload(w, args.repeat)
        results.append(res)
        print(format_table(
            ["tool", "runs", "median ms", "x copy", "vs poolcli t=1", "agrees"],
            [[r["tool"], r["runs"], f"{r['median_ms']:.1f}", f"{r['ratio_to_copy']:.2f}",
              f"{r['median_ms'] / res['rows'][1]['median_ms']:.2f}", r["agrees"]]
             for r in res["rows"]]), flush=True)

    print(f"\nload average {' '.join(f'{v:.2f}' for v in os.getloadavg())} (end)")
    all_targets = [t for r in results for t in r["targets"]]
    print("\nTargets (issues 2 and 11)")
    print(format_table(["workload", "target", "measured", "result"],
                       [[t["workload"], t["target"], t["measured"], verdict(t["ok"])]
                        for t in all_targets]))
    mismatches = [(r["workload"], r["tool"]) for res in results for r in res["rows"]
                  if r["agrees"].startswith(("MISMATCH", "DIFFERS"))]
    if mismatches:
        print("\nDISAGREEMENTS: " + ", ".join(f"{k} {t}" for k, t in mismatches))
    if args.json:
        write_json(args.json, dict(machine=info, repeat=args.repeat, workloads=results,
                                   targets=all_targets))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
