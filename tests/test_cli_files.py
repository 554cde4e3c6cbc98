"""The real executable on files: where outputs may go, formats and encoders, streams, help."""

import os
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
from clitools import COFFEE, EXE, ROOT, error_lines, files_under, rgb, run_cli, run_exe
from PIL import Image

from poolcli import pool
from poolcli.core.kinds import KINDS


def cli(*args, cwd=None, input=None):
    """Run poolcli in-process (through the real executable when worker processes run)."""
    runner = run_exe if "-j" in map(str, args) else run_cli
    p = runner(*args, cwd=cwd, input=input)
    assert "Traceback" not in p.stderr, p.stderr
    return p


# --- where outputs may go ------------------------------------------------------------------


def test_o_ending_in_a_slash_is_a_folder_even_for_one_input(tmp_path):
    a = rgb(tmp_path / "a.png")
    p = cli("max", tmp_path / "a.png", "-o", f"{tmp_path}/new/")
    assert p.returncode == 0, p.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "new" / "a.png")),
                          pool(a, "max", 2, axes=(0, 1)))


def test_an_output_that_is_another_input_is_refused_even_with_overwrite(tmp_path):
    rgb(tmp_path / "a.png", 1)
    rgb(tmp_path / "a.max.png", 2)
    before = {n: (tmp_path / n).read_bytes() for n in ("a.png", "a.max.png")}
    p = cli("max", tmp_path / "a.png", tmp_path / "a.max.png", "--overwrite")
    assert p.returncode == 2
    (line,) = error_lines(p)
    assert "is the input" in line and "never writes over an input" in line
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    assert sorted(os.listdir(tmp_path)) == ["a.max.png", "a.png"]


def test_a_symlink_in_the_output_folder_cannot_lead_outside_it(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    rgb(tmp_path / "in" / "sub" / "x.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "sub")
    p = cli("avg", tmp_path / "in", "-r", "-o", tmp_path / "out")
    assert p.returncode == 2 and "outside the output folder" in error_lines(p)[0]
    assert os.listdir(tmp_path / "elsewhere") == []


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_option_that_cannot_apply_stops_a_batch_with_one_line(tmp_path, jobs):
    (tmp_path / "in").mkdir()
    for i in range(6):
        rgb(tmp_path / "in" / f"{i}.png", i)
    p = cli("max", tmp_path / "in", "-o", tmp_path / "out", "--dtype", "float32", "-j", jobs)
    assert p.returncode == 2
    (line,) = error_lines(p)
    assert "--dtype applies to array outputs" in line
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []
    p = cli("max", tmp_path / "in", "-o", tmp_path / "out", "--axes", "0,2", "-j", jobs)
    assert p.returncode == 2 and len(error_lines(p)) == 1 and "--axes applies" in p.stderr


def test_an_array_cannot_become_an_image(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    p = cli("max", tmp_path / "a.npy", "-o", tmp_path / "a.png")
    assert p.returncode == 2 and "cannot be written as png" in error_lines(p)[0]
    assert not (tmp_path / "a.png").exists()


def test_glob_and_recursive_choose_the_files(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png", "sub/d.tif", ".hidden.png"):
        shutil.copy(COFFEE, d / name) if name.endswith(".png") else \
            Image.open(COFFEE).save(d / name)
    cli("max", d, "-o", tmp_path / "o1", "--glob", "*.png")
    assert files_under(tmp_path / "o1") == ["a.png"]
    cli("max", d, "-r", "-o", tmp_path / "o2", "--glob", "*.png")
    assert files_under(tmp_path / "o2") == ["a.png", "sub/c.png"]
    cli("max", d, "-r", "-o", tmp_path / "o3", "--format", "npy")
    assert files_under(tmp_path / "o3") == ["a.npy", "b.npy", "sub/c.npy", "sub/d.npy"]


# --- formats and encoders -------------------------------------------------------------------


@pytest.mark.parametrize("suffix,mode", [(".bmp", "L"), (".tif", "L"), (".gif", "L"),
                                         (".bmp", "RGB"), (".tif", "RGB"), (".webp", "RGB")])
def test_lossless_formats_hold_the_exact_pooled_pixels(tmp_path, suffix, mode):
    shape = (24, 32) if mode == "L" else (24, 32, 3)
    a = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "in.png")
    p = cli("median", tmp_path / "in.png", "-k", "3", "-s", "2", "-o", tmp_path / f"o{suffix}")
    assert p.returncode == 0, p.stderr
    got = np.asarray(Image.open(tmp_path / f"o{suffix}").convert(mode))
    assert np.array_equal(got, pool(a, "median", 3, stride=2, axes=(0, 1)))


def test_a_format_that_would_change_the_image_is_a_failed_input(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "grey.png")
    p = cli("max", tmp_path / "grey.png", "-o", tmp_path / "grey.webp")
    assert p.returncode == 1 and "webp cannot hold" in error_lines(p)[0]
    assert not (tmp_path / "grey.webp").exists()


def test_jpeg_quality_and_png_compression_level(tmp_path):
    cli("avg", COFFEE, "-o", tmp_path / "q20.jpg", "--quality", "20")
    cli("avg", COFFEE, "-o", tmp_path / "q95.jpg", "--quality", "95")
    assert (tmp_path / "q20.jpg").stat().st_size < 0.6 * (tmp_path / "q95.jpg").stat().st_size
    cli("avg", COFFEE, "-o", tmp_path / "c0.png", "--compress-level", "0")
    cli("avg", COFFEE, "-o", tmp_path / "c9.png", "--compress-level", "9")
    assert (tmp_path / "c9.png").stat().st_size < 0.8 * (tmp_path / "c0.png").stat().st_size
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c0.png")),
                          np.asarray(Image.open(tmp_path / "c9.png")))


def test_exif_orientation_is_applied_before_pooling(tmp_path):
    a = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned 90 degrees clockwise
    Image.fromarray(a).save(tmp_path / "turned.png", exif=exif)
    cli("max", tmp_path / "turned.png", "-o", tmp_path / "o.png")
    got = np.asarray(Image.open(tmp_path / "o.png"))
    assert got.shape == (15, 10, 3)
    assert np.array_equal(got, pool(np.rot90(a, -1), "max", 2, axes=(0, 1)))


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_one_error_line_and_the_batch_goes_on(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    shutil.copy(COFFEE, d / "fine.png")
    p = cli("max", d, "-o", tmp_path / "out")
    assert p.returncode == 1
    (line,) = error_lines(p)
    assert "bomb.png" in line
    assert files_under(tmp_path / "out") == ["fine.png"]


# --- streams -------------------------------------------------------------------------------


def test_an_npy_through_a_pipe_and_stdout_only_with_o_dash(tmp_path):
    x = np.random.default_rng(5).standard_normal((3, 10, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    first = cli("l2", "-", "-k", "2", "-o", "-", input=(tmp_path / "x.npy").read_bytes())
    assert first.returncode == 0 and first.stderr == ""
    second = cli("lp", "-", "--norm", "3", "-k", "1x2", "-o", "-", "--report", "json",
                 input=first.stdout)
    (tmp_path / "y.npy").write_bytes(second.stdout)
    want = pool(pool(x, "l2", 2), "lp", (1, 2), norm=3)
    assert np.allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-6)
    assert '"input": "<stdin>"' in second.stderr and '"output": "<stdout>"' in second.stderr
    # a file output: nothing at all on standard output
    p = cli("max", "x.npy", "-o", "z.npy", "--report", "table", cwd=tmp_path)
    assert p.stdout == b"" and "x.npy" in p.stderr and "1 ok, 0 failed" in p.stderr
    # issue 10's table at 80 columns: shapes on one line, no dtype column when it is
    # unchanged, no stages column for one stage
    assert "x.npy  3x10x12 -> 3x5x6" in p.stderr


def test_quiet_still_reports_failures(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY nonsense")
    p = cli("max", tmp_path / "bad.npy", "-o", tmp_path / "o.npy", "-q")
    assert p.returncode == 1 and len(error_lines(p)) == 1 and "bad.npy" in p.stderr


# --- options and help ----------------------------------------------------------------------


@pytest.mark.parametrize("args,needle", [
    (["--output-size", "2x2", "-k", "3"], "drop -k"),
    (["--global", "-s", "2"], "drop -s"),
    (["--global", "--output-size", "3"], "give one"),
    (["--quality", "0"], "--quality 0"),
    (["--compress-level", "10"], "--compress-level 10"),
    (["-j", "0"], "--jobs 0"),
    (["-k", "2.5"], "--kernel '2.5'"),
    (["--axes", "0,x"], "--axes '0,x'"),
])
def test_more_usage_errors(tmp_path, args, needle):
    np.save(tmp_path / "a.npy", np.zeros((6, 6)))
    p = cli("avg", "a.npy", *args, cwd=tmp_path)
    assert p.returncode == 2
    (line,) = p.stderr.splitlines()
    assert needle in line
    assert os.listdir(tmp_path) == ["a.npy"]


def test_help_lists_every_kind_with_examples_and_exit_statuses():
    p = cli("--help")
    text = p.stdout.decode()
    for kind in KINDS:
        assert f"  {kind} " in text
    for command in ("run", "plan", "info", "bench"):
        assert f"  {command} " in text
    assert "poolcli max photo.png -k 2 -s 2" in text
    assert "130 interrupted" in text
    sub = cli("avg", "--help").stdout.decode()
    assert "-k, --kernel K" in sub and "--memory-limit SIZE" in sub and "--no-premultiply" in sub


def test_plan_of_an_image_input_pools_height_and_width():
    p = cli("plan", "avg:k=2", COFFEE)
    text = p.stdout.decode()
    assert "400x600x3 -> 200x300x3 (pooled axes 0, 1)" in text
    q = cli("plan", "avg:k=2", "--shape", "3x224x224")  # channels first: the last two axes
    assert "3x224x224 -> 3x112x112 (pooled axes 1, 2)" in q.stdout.decode()
    r = cli("plan", "avg:k=2", "--shape", "224x224x3", "--axes", "1,2")
    assert "224x224x3 -> 224x112x1 (pooled axes 1, 2)" in r.stdout.decode()


@pytest.mark.slow
def test_examples_pipes_sh_runs_with_the_installed_script(tmp_path):
    if shutil.which("poolcli") is None:
        pytest.skip("the poolcli script is not installed on PATH")
    p = subprocess.run(["bash", "examples/pipes.sh"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "-: png, mode RGB, 150x100 pixels, shape 100x150x3, uint8" in p.stdout
    assert "[872, 1000] -> [218, 250]" in p.stdout
    shutil.rmtree(p.stdout.split("outputs in ")[-1].strip(), ignore_errors=True)


def test_report_file_in_a_missing_folder_is_refused_before_any_work(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    p = cli("max", "a.npy", "-o", "b.npy", "--report-file", "no/such/r.json", cwd=tmp_path)
    assert p.returncode == 2 and "the folder no/such does not exist" in error_lines(p)[0]
    assert os.listdir(tmp_path) == ["a.npy"]
    (tmp_path / "taken").mkdir()
    p = cli("max", "a.npy", "-o", "b.npy", "--report-file", "taken", cwd=tmp_path)
    # a folder is no place for a report: refused up front, like any output (issue 9)
    assert p.returncode == 2 and "--report-file taken is a folder" in error_lines(p)[0]
    assert not (tmp_path / "b.npy").exists()


def test_info_lists_a_folders_files(tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copy(COFFEE, tmp_path / "a.png")
    np.save(tmp_path / "sub" / "b.npy", np.zeros((3, 5), np.int16))
    p = cli("info", tmp_path, "-r")
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{tmp_path / 'a.png'}: png, mode RGB")
    assert lines[1] == f"{tmp_path / 'sub' / 'b.npy'}: npy, shape 3x5, int16, 158 bytes"


def test_a_terminal_is_neither_read_as_data_nor_written_with_it(tmp_path):
    import pty

    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    leader, follower = pty.openpty()
    try:
        p = subprocess.run([*EXE, "max", "-", "-o", "o.npy"], stdin=follower, cwd=tmp_path,
                           capture_output=True, timeout=60)
        assert p.returncode == 2 and b"standard input (-) is a terminal" in p.stderr
        p = subprocess.run([*EXE, "max", "a.npy", "-o", "-"], stdout=follower, cwd=tmp_path,
                           stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 2 and b"binary data to the terminal" in p.stderr
    finally:
        os.close(leader)
        os.close(follower)
    assert os.listdir(tmp_path) == ["a.npy"]


def test_a_pipeline_too_big_for_many_inputs_is_said_once_with_a_count(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(4):
        np.save(tmp_path / "in" / f"{i}.npy", np.zeros((5, 5)))
    np.save(tmp_path / "in" / "9_big.npy", np.zeros((12, 12)))
    p = cli("max", tmp_path / "in", "-k", "6", "-o", tmp_path / "out", "-j", "1")
    assert p.returncode == 2
    first, more = error_lines(p)
    assert "0.npy: kernel 6 on axis 0 is longer than the padded input (5 + 0 + 0)" in first
    assert more.startswith("poolcli: error: 3 more inputs failed the same way: kernel 6")
    assert files_under(tmp_path / "out") == ["9_big.npy"]  # the input it fits is pooled


@pytest.mark.slow
def test_ctrl_c_with_worker_processes_exits_130_and_leaves_only_whole_files(tmp_path):
    import signal
    import time

    d = tmp_path / "in"
    d.mkdir()
    big = np.random.default_rng(7).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    for i in range(30):
        Image.fromarray(big).save(d / f"{i:02}.png", compress_level=0)
    # a terminal's Ctrl-C reaches the whole process group: the parent and its workers
    proc = subprocess.Popen([*EXE, "avg", str(d), "-o", str(tmp_path / "out"), "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # interrupt mid-batch
        if (tmp_path / "out").exists() and len(os.listdir(tmp_path / "out")) >= 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr and b"interrupted" in stderr
    written = os.listdir(tmp_path / "out") if (tmp_path / "out").exists() else []
    assert len(written) < 30 and not [n for n in written if n.startswith(".")]
    for name in written:
        assert Image.open(tmp_path / "out" / name).size == (500, 500)


def test_mean_is_avg_and_names_its_outputs_mean(tmp_path):
    x = np.arange(36.0).reshape(6, 6)
    np.save(tmp_path / "x.npy", x)
    p = cli("mean", "x.npy", "-k", "3", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert np.array_equal(np.load(tmp_path / "x.mean.npy"), pool(x, "avg", 3))
    assert "  mean " not in cli("--help").stdout.decode()  # listed under avg, not twice


def test_a_batch_run_again_names_three_existing_outputs_then_counts(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(6):
        np.save(tmp_path / "in" / f"{i}.npy", np.full((4, 4), i))
    assert cli("max", "in", "-o", "out", cwd=tmp_path).returncode == 0
    np.save(tmp_path / "in" / "6.npy", np.full((4, 4), 6))  # one new input
    p = cli("max", "in", "-o", "out", "-j", "1", cwd=tmp_path)
    assert p.returncode == 1
    lines = error_lines(p)
    assert lines[:3] == [f"poolcli: error: in/{i}.npy: out/{i}.npy exists; pass --overwrite to "
                         "replace it" for i in range(3)]
    assert lines[3:] == ["poolcli: error: 3 more outputs exist already; pass --overwrite to "
                         "replace them"]
    assert np.load(tmp_path / "out" / "6.npy")[0, 0] == 6  # the new one was written


@pytest.mark.parametrize("args,needle", [
    (["--dtype", "complex64"], "--dtype 'complex64' is not a bool, integer or float dtype"),
    (["--kind", "foo"], "unknown kind 'foo'"),
    (["--shape", "0x5"], "axis 0 is empty"),
    (["--threads", "0"], "threads 0"),
    (["--repeat", "0"], "--repeat 0 must be >= 1"),
])
def test_bench_usage_errors(args, needle):
    p = cli("bench", "--shape", "32x32", *args)
    assert p.returncode == 2 and p.stdout == b""
    (line,) = p.stderr.splitlines()
    assert line.startswith("poolcli: error:") and needle in line


# issue 10: a missing input is a usage error (exit 2) for plan as for every command; see
# tests/test_issue10_messages.py
@pytest.mark.parametrize("name,needle", [("broken.png", "broken.png: not a PNG"),
                                         ("folder", "folder: is a folder")])
def test_plan_of_an_unreadable_input_is_a_failed_input(tmp_path, name, needle):
    (tmp_path / "broken.png").write_bytes(b"hello")
    (tmp_path / "folder").mkdir()
    p = cli("plan", "max:k=2", name, cwd=tmp_path)
    assert p.returncode == 1 and p.stdout == b""
    (line,) = p.stderr.splitlines()
    assert line.startswith("poolcli: error:") and needle in line


def test_plan_of_a_pipeline_file_needs_no_positional_argument():
    p = cli("plan", "--pipeline-file", ROOT / "examples" / "pipeline.toml", "--shape", "64x64")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().splitlines()[-1] == "output shape 16x16"
    q = cli("plan", "--shape", "64x64")
    assert q.returncode == 2 and "give a PIPELINE" in q.stderr
