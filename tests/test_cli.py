"""The command line through the real executable, on real files, reading what it wrote."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from clitools import EXAMPLES, EXE, one_error_line, run_cli, run_exe
from PIL import Image

from poolcli import pool
from poolcli.core.kinds import KINDS


def cli(*args, cwd=None, input=None, check=None):
    """Run poolcli in-process (through the real executable when worker processes run)."""
    runner = run_exe if "-j" in map(str, args) else run_cli
    p = runner(*args, cwd=cwd, input=input)
    if check is not None:
        assert p.returncode == check, p.stderr
    return p


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_on_npy_matches_the_library(tmp_path, arr, kind):
    cli(kind, tmp_path / "a.npy", "-k", "3", "-s", "2", "-p", "1", "-o", tmp_path / "o.npy",
        check=0)
    got = np.load(tmp_path / "o.npy")
    want = pool(arr, kind, 3, stride=2, padding=1)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_all_stage_options_reach_the_library(tmp_path, arr):
    cli("avg", tmp_path / "a.npy", "-k", "3x2", "-s", "2x1", "-p", "1x0", "-d", "1x2",
        "--ceil-mode", "--no-count-include-pad", "--axes", "1,2", "-o", tmp_path / "o.npy",
        check=0)
    want = pool(arr, "avg", (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                ceil_mode=True, count_include_pad=False, axes=(1, 2))
    assert np.array_equal(np.load(tmp_path / "o.npy"), want)
    cli("lp", tmp_path / "a.npy", "--norm", "3", "--output-size", "4x5", "-o",
        tmp_path / "p.npy", check=0)
    assert np.allclose(np.load(tmp_path / "p.npy"), pool(arr, "lp", norm=3, output_size=(4, 5)))
    cli("max", tmp_path / "a.npy", "--global", "-o", tmp_path / "g.npy", check=0)
    assert np.load(tmp_path / "g.npy").shape == (2, 1, 1)


def _image(mode, rng):
    if mode == "1":
        return Image.fromarray(rng.random((21, 30)) > 0.5)
    if mode == "I;16":
        data = rng.integers(0, 65536, (21, 30), dtype=np.uint16)
        return Image.frombytes("I;16", (30, 21), data.astype("<u2").tobytes())
    if mode == "P":
        return Image.fromarray(rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)).convert(
            "P", palette=Image.Palette.ADAPTIVE, colors=16)
    bands = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    shape = (21, 30) if bands == 1 else (21, 30, bands)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "1", "I;16", "P"])
@pytest.mark.parametrize("kind", ["max", "avg", "median"])
def test_png_modes_round_trip_with_exact_pixels(tmp_path, mode, kind):
    rng = np.random.default_rng(1)
    _image(mode, rng).save(tmp_path / "in.png")
    # a palette image keeps its indices for kinds that pick a cell (issue 10), else RGB
    as_colours = mode == "P" and kind == "avg"
    src = np.asarray(Image.open(tmp_path / "in.png").convert(
        "RGB" if as_colours else Image.open(tmp_path / "in.png").mode))
    extra = ["--no-premultiply"] if mode in ("LA", "RGBA") and kind == "avg" else []
    cli(kind, tmp_path / "in.png", "-k", "3", "-s", "2", "-p", "1", *extra, "-o",
        tmp_path / "out.png", check=0)
    out = Image.open(tmp_path / "out.png")
    assert out.mode == ("RGB" if as_colours else mode)
    want = pool(src, kind, 3, stride=2, padding=1, axes=(0, 1))
    if mode == "1":
        want = want >= 0.5
    else:
        want = np.clip(np.rint(want), 0, np.iinfo(src.dtype).max).astype(src.dtype)
    assert np.array_equal(np.asarray(out), want)


@pytest.mark.parametrize("mode,dtype", [("I", np.int32), ("F", np.float32)])
def test_32_bit_tiff_round_trips(tmp_path, mode, dtype):
    data = (np.random.default_rng(2).standard_normal((20, 24)) * 1000).astype(dtype)
    Image.fromarray(data).save(tmp_path / "in.tif")
    cli("avg", tmp_path / "in.tif", "-k", "2", "-o", tmp_path / "out.tif", check=0)
    out = np.asarray(Image.open(tmp_path / "out.tif"))
    want = pool(data, "avg", 2)
    assert out.dtype == dtype
    assert np.array_equal(out, np.rint(want).astype(dtype) if mode == "I" else
                          want.astype(dtype))


def test_alpha_weighted_average_has_no_dark_fringe(tmp_path):
    px = np.zeros((2, 2, 4), np.uint8)
    px[0, 0] = (255, 255, 255, 255)  # one opaque white pixel, three transparent black
    Image.fromarray(px).save(tmp_path / "a.png")
    cli("avg", tmp_path / "a.png", "-k", "2", "-o", tmp_path / "b.png", check=0)
    assert np.asarray(Image.open(tmp_path / "b.png"))[0, 0].tolist() == [255, 255, 255, 64]
    cli("avg", tmp_path / "a.png", "-k", "2", "--no-premultiply", "-o", tmp_path / "c.png",
        check=0)
    assert np.asarray(Image.open(tmp_path / "c.png"))[0, 0].tolist() == [64, 64, 64, 64]


def test_npz_pools_each_array(tmp_path):
    a, b = np.arange(16.0).reshape(4, 4), np.ones((2, 6, 6), np.uint8)
    np.savez(tmp_path / "z.npz", first=a, second=b)
    cli("max", tmp_path / "z.npz", "-o", tmp_path / "o.npz", check=0)
    with np.load(tmp_path / "o.npz") as z:
        assert sorted(z.files) == ["first", "second"]
        assert np.array_equal(z["first"], pool(a, "max", 2))
        assert np.array_equal(z["second"], pool(b, "max", 2))


def test_pipe_between_two_processes(tmp_path):
    photo = (EXAMPLES / "coffee.png").read_bytes()
    first = subprocess.run([*EXE, "max", "-", "-k", "2", "-o", "-"], input=photo,
                           capture_output=True, check=True)
    assert first.stdout[:8] == b"\x89PNG\r\n\x1a\n" and first.stderr == b""
    second = subprocess.run([*EXE, "avg", "-", "-k", "2", "-o", "-"], input=first.stdout,
                            capture_output=True, check=True)
    (tmp_path / "p.png").write_bytes(second.stdout)
    src = np.asarray(Image.open(EXAMPLES / "coffee.png"))
    want = np.rint(pool(pool(src, "max", 2, axes=(0, 1)), "avg", 2, axes=(0, 1)))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), want.astype(np.uint8))
    npy = subprocess.run([*EXE, "max", "-", "-k", "2", "-o", "-", "--format", "npy"],
                         input=photo, capture_output=True, check=True)
    (tmp_path / "p.npy").write_bytes(npy.stdout)
    assert np.array_equal(np.load(tmp_path / "p.npy"), pool(src, "max", 2, axes=(0, 1)))


def test_folder_batch_with_a_corrupt_file(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(EXAMPLES / "coffee.png", d / "a.png")
    shutil.copy(EXAMPLES / "coffee.png", d / "sub" / "b.png")
    np.save(d / "sub" / "c.npy", np.arange(36.0).reshape(6, 6))
    (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    os.symlink("..", d / "sub" / "loop")
    p = cli("avg", d, "-r", "-o", tmp_path / "out", "-j", "2")
    assert p.returncode == 1
    line = one_error_line(p)
    assert "bad.png" in line and "cannot read" in line
    written = sorted(str(q.relative_to(tmp_path / "out")) for q in (tmp_path / "out").rglob("*")
                     if q.is_file())
    assert written == ["a.png", "sub/b.png", "sub/c.npy"]
    assert np.array_equal(np.load(tmp_path / "out" / "sub" / "c.npy"),
                          pool(np.arange(36.0).reshape(6, 6), "avg", 2))


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.png").write_bytes(b"garbage")
    for name in "bcdef":
        shutil.copy(EXAMPLES / "coffee.png", d / f"{name}.png")
    p = cli("max", d, "-o", tmp_path / "out", "-j", "1", "--fail-fast")
    assert p.returncode == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_jobs_do_not_change_results(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(d / f"{i}.png")
    cli("avg", d, "-o", tmp_path / "one", "-j", "1", check=0)
    cli("avg", d, "-o", tmp_path / "two", "-j", "2", check=0)
    for i in range(6):
        assert (tmp_path / "one" / f"{i}.png").read_bytes() == \
            (tmp_path / "two" / f"{i}.png").read_bytes()


@pytest.mark.parametrize("args,needle", [
    (["max", "IN", "-k", "0"], "kernel 0"),
    (["max", "IN", "--bogus"], "--bogus"),
    (["run", "max:k=", "IN"], "kernel"),
    (["run", "foo:k=2", "IN"], "unknown kind 'foo'"),
    (["max", "IN", "-k", "900"], "kernel 900"),
    (["max", "IN", "--format", "xyz"], "--format 'xyz'"),
    (["max", "IN", "--dtype", "complex64"], "--dtype"),
    (["max", "IN", "--report", "xml"], "--report 'xml'"),
    (["max", "IN", "--memory-limit", "lots"], "memory limit 'lots'"),
    (["max", "IN", "-p", "full"], "padding"),
    (["max", "-"], "standard input needs -o"),
    (["max", "IN", "IN2", "-o", "-"], "standard output"),
    (["max", "nope.npy"], "nope.npy does not exist"),
    (["plan", "max:k=2"], "--shape"),
])
def test_usage_errors_are_one_line_exit_2_and_write_nothing(tmp_path, args, needle):
    np.save(tmp_path / "a.npy", np.zeros((8, 8)))
    np.save(tmp_path / "b.npy", np.zeros((8, 8)))
    before = sorted(os.listdir(tmp_path))
    args = [{"IN": "a.npy", "IN2": "b.npy"}.get(a, a) for a in args]
    p = cli(*args, cwd=tmp_path, input=b"")
    assert p.returncode == 2, p.stderr
    assert needle in one_error_line(p)
    assert sorted(os.listdir(tmp_path)) == before


def test_never_writes_over_an_input_or_an_existing_output(tmp_path):
    shutil.copy(EXAMPLES / "coffee.png", tmp_path / "a.png")
    original = (tmp_path / "a.png").read_bytes()
    p = cli("max", tmp_path / "a.png", "-o", tmp_path / "a.png", "--overwrite")
    assert p.returncode == 2 and "never writes over an input" in one_error_line(p)
    assert (tmp_path / "a.png").read_bytes() == original
    (tmp_path / "b.png").write_bytes(b"precious")
    p = cli("max", tmp_path / "a.png", "-o", tmp_path / "b.png")
    assert p.returncode == 1 and "exists; pass --overwrite" in one_error_line(p)
    assert (tmp_path / "b.png").read_bytes() == b"precious"
    cli("max", tmp_path / "a.png", "-o", tmp_path / "b.png", "--overwrite", check=0)
    assert Image.open(tmp_path / "b.png").size == (300, 200)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # no temporaries left
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "b.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_default_output_name_is_beside_the_input(tmp_path):
    shutil.copy(EXAMPLES / "coffee.png", tmp_path / "photo.png")
    cli("median", tmp_path / "photo.png", "-k", "3", check=0)
    assert Image.open(tmp_path / "photo.median.png").size == (200, 133)
    cli("run", "max:k=2|avg:k=2", tmp_path / "photo.png", "--format", "npy", check=0)
    assert np.load(tmp_path / "photo.pooled.npy").shape == (100, 150, 3)


def test_json_report_has_exactly_the_spec_keys(tmp_path, arr):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY broken")
    p = cli("run", "max:k=3,s=2,p=1|avg:k=2", tmp_path / "a.npy", tmp_path / "bad.npy",
            "-o", tmp_path / "out", "--report", "json", "--report-file", tmp_path / "r.json")
    assert p.returncode == 1
    doc = json.loads((tmp_path / "r.json").read_text())
    assert set(doc) == {"files", "summary"}
    assert set(doc["summary"]) == {"files", "ok", "failed", "seconds", "peak_rss_bytes"}
    assert (doc["summary"]["files"], doc["summary"]["ok"], doc["summary"]["failed"]) == (2, 1, 1)
    ok, bad = doc["files"]
    keys = {"input", "output", "status", "error", "input_shape", "input_dtype", "output_shape",
            "output_dtype", "axes", "stages", "load_seconds", "pool_seconds", "save_seconds",
            "seconds"}
    assert set(ok) == keys and set(bad) == keys
    assert ok["status"] == "ok" and ok["error"] is None and bad["status"] == "error"
    assert ok["input_shape"] == [2, 17, 23] and ok["output_shape"] == [2, 4, 6]
    assert ok["axes"] == [1, 2]
    assert [s["stage"] for s in ok["stages"]] == ["max:k=3,s=2,p=1", "avg:k=2"]
    assert [s["output_shape"] for s in ok["stages"]] == [[2, 9, 12], [2, 4, 6]]
    assert all(s["seconds"] >= 0 for s in ok["stages"])
    assert doc["summary"]["peak_rss_bytes"] > 10 * 2**20
    assert "{" not in p.stderr  # the document went to the file instead
    q = cli("max", tmp_path / "a.npy", "-o", tmp_path / "o.npy", "--report", "json", "-q")
    assert json.loads(q.stderr)["files"][0]["output_shape"] == [2, 8, 11]


def test_plan_shows_the_arithmetic_and_the_notes(tmp_path):
    p = cli("plan", "max:k=3,s=2,p=1 | avg:k=2", "--shape", "224x224x3", check=0)
    text = p.stdout.decode()
    assert "axis 0: n=224 kernel=3 stride=2 dilation=1 padding=1+1 -> 112" in text
    assert "axis 1: n=112 kernel=2 stride=2 dilation=1 padding=0+0 -> 56" in text
    assert "output shape 56x56x3" in text
    p = cli("plan", "max:k=2", EXAMPLES / "hubble_deep_field.npy", check=0)
    assert "872x1000 -> 436x500" in p.stdout.decode()
    p = cli("plan", "max:k=2", "--shape", "5x4", check=0)
    assert "the last 1 row is never pooled; --ceil-mode keeps it" in p.stdout.decode()
    p = cli("plan", "max:k=2,s=2,p=1,ceil=true", "--shape", "5x8", check=0)
    assert "drops the last window" in p.stdout.decode()


def test_real_run_warns_about_cells_never_pooled_unless_quiet(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((5, 4)))
    p = cli("max", tmp_path / "a.npy", "-o", tmp_path / "o.npy", check=0)
    assert "warning: axis 0: the last 1 row is never pooled; --ceil-mode keeps it" in p.stderr
    p = cli("max", tmp_path / "a.npy", "-o", tmp_path / "q.npy", "-q", check=0)
    assert p.stderr == ""


def test_info_reads_headers(tmp_path):
    p = cli("info", EXAMPLES / "coffee.png", EXAMPLES / "hubble_deep_field.npy", check=0)
    lines = p.stdout.decode().splitlines()
    assert "mode RGB, 600x400 pixels, shape 400x600x3, uint8" in lines[0]
    assert "npy, shape 872x1000, float32" in lines[1]


def test_memory_limit_takes_the_tiled_path_with_the_same_result(tmp_path):
    x = np.random.default_rng(5).standard_normal((3000, 700)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    p = cli("max", tmp_path / "a.npy", "-k", "3", "-s", "2", "-p", "1", "--memory-limit",
            "2MiB", "-o", tmp_path / "o.npy", "--report", "json", check=0)
    assert np.array_equal(np.load(tmp_path / "o.npy"), pool(x, "max", 3, stride=2, padding=1))
    assert json.loads(p.stderr)["files"][0]["output_shape"] == [1500, 350]


def test_version_and_the_installed_script_agree():
    import poolcli
    p = cli("--version", check=0)
    assert p.stdout.decode().strip() == f"poolcli {poolcli.__version__}"
    exe = shutil.which("poolcli")
    if exe is None:
        pytest.skip("the poolcli script is not installed on PATH")
    q = subprocess.run([exe, "--version"], capture_output=True, check=True)
    assert q.stdout == p.stdout


def test_bench_reports_a_ratio_to_the_copy_floor():
    p = cli("bench", "--shape", "256x256", "--kind", "avg", "-k", "2", "--repeat", "3",
            check=0)
    text = p.stdout.decode()
    assert "avg:k=2 on 256x256 float32" in text and "x copy" in text


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_interrupt_exits_130_and_leaves_no_partial_file(tmp_path, jobs):
    d = tmp_path / "in"
    d.mkdir()
    big = np.random.default_rng(6).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    for i in range(40):
        Image.fromarray(big).save(d / f"{i:02}.png", compress_level=0)
    proc = subprocess.Popen([*EXE, "avg", str(d), "-o", str(tmp_path / "out"), "-j", jobs],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # interrupt mid-batch: once the first output exists, most files are still to do
    deadline = time.monotonic() + 60
    while not any((tmp_path / "out").glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode() and b"Traceback" not in stderr
    leftovers = [p.name for p in (tmp_path / "out").rglob("*")] if (tmp_path / "out").exists() \
        else []
    assert not [n for n in leftovers if n.endswith(".part") or n.startswith(".")]
    for name in leftovers:  # whatever was written is whole
        assert Image.open(tmp_path / "out" / name).size == (600, 600)
