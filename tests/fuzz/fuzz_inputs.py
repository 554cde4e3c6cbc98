"""Fuzz poolcli's doors: the stage grammar, pipeline files, pool() options and whole files.

    python tests/fuzz/fuzz_inputs.py --minutes 10          # every target, in turns
    python tests/fuzz/fuzz_inputs.py --minutes 2 --target files

A finding is any exception other than the documented ones: PoolError (a ValueError) or
TypeError from the library, a failed record (never an exception) from a job, ValueError
or OSError from `info`'s header reader, and never a hang (each example runs under an
alarm). Hypothesis shrinks a finding to a small example and prints it. The test suite
runs a few examples of each target as a smoke test (tests/test_issue9_fuzz_smoke.py).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from poolcli import Pipeline, PoolError, pool
from poolcli.batch.job import run_job
from poolcli.batch.jobs import Job, Options
from poolcli.io.headers import describe_input

EXAMPLE_SECONDS = 20  # an example running longer than this is a hang

# --- the stage grammar and pipeline files ---------------------------------------------

_TOKENS = ["max", "min", "avg", "mean", "sum", "l2", "lp", "median", "mode", "bogus", ":",
           ",", "|", "=", "x", "k", "s", "p", "d", "ceil", "count_pad", "divisor", "norm",
           "out", "axes", "ignore_nan", "kernel", "stride", "padding", "same", "valid",
           "true", "false", "nan", "inf", "-inf", "-1", "0", "1", "2", "3", "7", "1e308",
           str(2**63), str(10**30), " ", "", "\x00", "é", "(", "[", "'"]


@st.composite
def stage_text(draw) -> str:
    return "".join(draw(st.lists(st.sampled_from(_TOKENS), max_size=24)))


def check_parse(text: str) -> None:
    try:
        pipe = Pipeline.parse(text)
    except PoolError:
        return
    # what parses must describe itself and plan a small shape, or refuse it cleanly
    str(pipe)
    with contextlib.suppress(PoolError):
        pipe.output_shape((9, 7))


_TOML_VALUES = ["true", "false", '"false"', '"same"', "2", "-3", "0", str(2**70), "1.5",
                "nan", "inf", "[]", "[2, 3]", "[[1, 1], [0, 2]]", '["a"]', "[true]",
                "{ a = 1 }", "[" * 40 + "]" * 40, '"\\u0000"']
_TOML_KEYS = ["k", "s", "p", "d", "ceil", "count_pad", "divisor", "norm", "out", "axes",
              "ignore_nan", "kernel", "bogus"]


@st.composite
def toml_text(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from(["[[stage]]", "[stage]", "stage = [1, 2]"])))
        if draw(st.booleans()):
            lines.append(f'kind = "{draw(st.sampled_from(_TOKENS[:10]))}"')
        for _ in range(draw(st.integers(0, 4))):
            lines.append(f"{draw(st.sampled_from(_TOML_KEYS))} = "
                         f"{draw(st.sampled_from(_TOML_VALUES))}")
    return "\n".join(lines) + "\n"


def check_toml(text: str) -> None:
    with contextlib.suppress(PoolError):
        Pipeline.from_toml(text)


# --- pool() options ---------------------------------------------------------------------

_INTS = st.one_of(st.integers(-3, 9), st.sampled_from([2**31, 2**63, 10**30, -(2**63)]))
_OPTION = st.one_of(_INTS, st.tuples(_INTS), st.tuples(_INTS, _INTS), st.just(()),
                    st.tuples(_INTS, _INTS, _INTS))


@st.composite
def pool_call(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    dtype = draw(st.sampled_from(["float32", "float64", "uint8", "int16", "bool"]))
    x = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 5, shape).astype(dtype)
    kw = {"kind": draw(st.sampled_from(["max", "min", "avg", "sum", "l2", "lp", "median",
                                        "mode", "nope"]))}
    for name in ("kernel", "stride", "dilation"):
        if draw(st.booleans()):
            kw[name] = draw(_OPTION)
    if draw(st.booleans()):
        kw["padding"] = draw(st.one_of(_OPTION, st.sampled_from(["same", "valid", "x"])))
    if draw(st.booleans()):
        kw["output_size"] = draw(_OPTION)
    if draw(st.booleans()):
        kw["axes"] = draw(_OPTION)
    if draw(st.booleans()):
        kw["ceil_mode"] = True
    if draw(st.booleans()):
        kw["divisor_override"] = draw(st.sampled_from([1, 0, -1, 2.5, float("nan"),
                                                       float("inf")]))
    if draw(st.booleans()):
        kw["norm"] = draw(st.sampled_from([1, 2, 0, -1, float("nan"), float("inf")]))
    if draw(st.booleans()):
        kw["return_indices"] = True
    return x, kw


def check_pool(call) -> None:
    x, kw = call
    try:
        out = pool(x, **kw)
    except (PoolError, TypeError):
        return
    out = out[0] if isinstance(out, tuple) else out
    assert out.ndim == x.ndim, (x.shape, kw, out.shape)


# --- whole files of every format --------------------------------------------------------


def _seeds() -> dict[str, bytes]:
    """One small valid file per format, to be damaged."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 7, 3), np.uint8)
    out = {}
    for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("TIFF", "RGB"), ("BMP", "RGB"),
                      ("WEBP", "RGB"), ("GIF", "P"), ("PNG", "RGBA"), ("PNG", "I;16"),
                      ("TIFF", "F"), ("PNG", "1")):
        im = Image.fromarray(rgb).convert(mode if mode != "I;16" else "I").convert(mode) \
            if mode not in ("RGB",) else Image.fromarray(rgb)
        buf = io.BytesIO()
        im.save(buf, fmt)
        out[f"{fmt.lower()}-{mode}"] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, rng.standard_normal((2, 9, 7)).astype(np.float32))
    out["npy"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(12).reshape(3, 4), b=np.zeros((2, 2), bool))
    out["npz"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.arange(60.0).reshape(6, 10))
    out["npz-deflate"] = buf.getvalue()
    return out


SEEDS = _seeds()


@st.composite
def damaged_file(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "number"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "number":  # a length or dimension field turned absurd
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                                                    b"\x00\x00\x00\x00", b"9999"]))
    return bytes(data)


_PIPES = [Pipeline.parse(t) for t in ("max:k=2", "avg:k=3,s=2,p=1", "median:k=2",
                                      "mode:k=2|sum:k=1", "lp:out=2")]


_FOLDER: list[Path] = []  # the scratch folder of this run, set by targets()


def check_file(data: bytes, pipe_index: int) -> None:
    folder = _FOLDER[0]
    src = folder / "in.bin"
    src.write_bytes(data)
    for fmt in (None, "npy"):
        dest = folder / ("out.npy" if fmt else "out.png")
        dest.unlink(missing_ok=True)
        opts = Options(format=fmt, overwrite=True, memory_limit=64 << 20, threads=1)
        recs = run_job(Job(str(src), str(dest)), _PIPES[pipe_index], opts)
        for r in recs:
            assert r.status in ("ok", "error")
            assert r.status == "ok" or r.error, r
            # a file of a few KB never needs gigabytes: that would be a lie believed
            assert "out of memory" not in (r.error or ""), r
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".part")]
        assert not leftovers, leftovers
    with contextlib.suppress(ValueError, OSError):
        describe_input(str(src))


# --- running ----------------------------------------------------------------------------


def _alarm(signum, frame):
    raise TimeoutError(f"an example ran longer than {EXAMPLE_SECONDS} s: a hang")


def _timed(fn):
    @functools.wraps(fn)  # hypothesis reads the signature through __wrapped__
    def run(*args, **kwargs):
        signal.alarm(EXAMPLE_SECONDS)
        try:
            fn(*args, **kwargs)
        finally:
            signal.alarm(0)
    return run


def targets(folder: Path, examples: int) -> dict:
    _FOLDER[:] = [folder]
    cfg = settings(max_examples=examples, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck), print_blob=True)
    return {
        "parse": cfg(given(stage_text())(_timed(check_parse))),
        "toml": cfg(given(toml_text())(_timed(check_toml))),
        "pool": cfg(given(pool_call())(_timed(check_pool))),
        "files": cfg(given(data=damaged_file(), pipe_index=st.integers(0, len(_PIPES) - 1))(
            _timed(check_file))),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="total time (default 10)")
    ap.add_argument("--target", action="append", help="parse, toml, pool or files "
                    "(default: all, in turns)")
    ap.add_argument("--batch", type=int, default=200, help="examples per turn")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # Pillow's warnings on damaged files are expected here
    signal.signal(signal.SIGALRM, _alarm)
    end = time.monotonic() + 60 * args.minutes
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tests = targets(Path(tmp), args.batch)
        names = args.target or list(tests)
        turn = 0
        while time.monotonic() < end:
            name = names[turn % len(names)]
            print(f"turn {turn}: {name}", flush=True)
            tests[name]()  # raises (and prints the shrunk example) on a finding
            counts[name] = counts.get(name, 0) + args.batch
            turn += 1
    print("no findings;", ", ".join(f"{n}: {c} examples" for n, c in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
