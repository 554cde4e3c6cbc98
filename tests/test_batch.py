"""batch.py: which files a run finds, where each output goes, and what one job does."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli import Pipeline, pool
from poolcli.batch.job import run_job
from poolcli.batch.jobs import STDIO, Job, Options, default_name, plan_jobs, walk
from poolcli.errors import UsageError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PIPE = Pipeline.parse("max:k=2")


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path):
    """in/{b.png, a.npy, notes.txt, .hidden.png, sub/c.jpg, sub/deeper/d.tif}"""
    root = tmp_path / "in"
    for name in ("b.png", "a.npy", "notes.txt", ".hidden.png", "sub/c.jpg", "sub/deeper/d.tif"):
        touch(root / name)
    return root


def names(paths, root):
    return [str(p.relative_to(root)) for p in paths]


def test_walk_lists_supported_files_in_order_and_skips_hidden_ones(tree):
    assert names(walk(tree, False, None), tree) == ["a.npy", "b.png"]
    assert names(walk(tree, True, None), tree) == ["a.npy", "b.png", "sub/c.jpg",
                                                   "sub/deeper/d.tif"]
    assert names(walk(tree, True, "*.png"), tree) == ["b.png"]
    assert names(walk(tree, True, "[cd].*"), tree) == ["sub/c.jpg", "sub/deeper/d.tif"]


def test_walk_ends_on_a_symlink_loop_and_visits_a_folder_once(tree):
    os.symlink("..", tree / "sub" / "up")  # a loop back to in/
    os.symlink(tree / "sub", tree / "again")  # a second way into sub/
    found = names(walk(tree, True, None), tree)
    assert sorted(found) == sorted(set(found))
    # found under their real names, though "again" sorts before "sub"
    assert found == ["a.npy", "b.png", "sub/c.jpg", "sub/deeper/d.tif"]
    touch(tree.parent / "elsewhere" / "e.png")
    os.symlink(tree.parent / "elsewhere", tree / "linked")  # only reachable by a link
    assert names(walk(tree, True, None), tree)[-1] == "linked/e.png"
    assert names(walk(tree, False, None), tree) == ["a.npy", "b.png"]


def test_default_name_sits_beside_the_input():
    assert default_name(Path("x/photo.png"), "max", None) == Path("x/photo.max.png")
    assert default_name(Path("scan.tiff"), "pooled", None) == Path("scan.pooled.tiff")
    assert default_name(Path("photo.png"), "avg", "npy") == Path("photo.avg.npy")
    assert default_name(Path("photo.png"), "avg", "jpeg") == Path("photo.avg.jpg")


def test_one_input_goes_to_its_default_name_or_to_o(tmp_path):
    a = touch(tmp_path / "a.png")
    assert plan_jobs([str(a)], None, "max") == [Job(str(a), str(tmp_path / "a.max.png"))]
    assert plan_jobs([str(a)], str(tmp_path / "b.jpg"), "max")[0].dest == str(tmp_path / "b.jpg")
    assert plan_jobs([str(a)], STDIO, "max") == [Job(str(a), STDIO)]
    # an existing folder, or a name ending in a slash, is a folder for the output
    (tmp_path / "out").mkdir()
    assert plan_jobs([str(a)], str(tmp_path / "out"), "max")[0].dest == \
        str(tmp_path / "out" / "a.png")
    assert plan_jobs([str(a)], f"{tmp_path}/new/", "max")[0].dest == \
        str(tmp_path / "new" / "a.png")
    assert plan_jobs([STDIO], str(tmp_path / "s.png"), "max") == \
        [Job(STDIO, str(tmp_path / "s.png"))]


def test_a_folder_is_mirrored_under_the_output_folder(tree, tmp_path):
    out = tmp_path / "out"
    jobs = plan_jobs([str(tree)], str(out), "avg", recursive=True, fmt="npy")
    assert [(Path(j.src).relative_to(tree).as_posix(), Path(j.dest).relative_to(out).as_posix())
            for j in jobs] == [("a.npy", "a.npy"), ("b.png", "b.npy"), ("sub/c.jpg", "sub/c.npy"),
                               ("sub/deeper/d.tif", "sub/deeper/d.npy")]
    # loose files land directly in the folder, by name
    loose = touch(tmp_path / "e.png")
    jobs = plan_jobs([str(loose), str(tree / "b.png")], str(out), "avg")
    assert [j.dest for j in jobs] == [str(out / "e.png"), str(out / "b.png")]


@pytest.mark.parametrize("inputs,output,needle", [
    ([], None, "no input given"),
    (["missing.png"], None, "input missing.png does not exist"),
    (["-", "-"], "o.png", "only once"),
    (["-"], None, "standard input needs `output`"),
    (["-", "in/b.png"], "out", "must be the only input"),
    (["in"], "-", "output=- (standard output) takes one input file"),
    (["in/b.png", "in/a.npy"], "file.txt", "is a file, but 2 inputs need a folder"),
    (["in/b.png", "in/sub/deeper/../../b.png"], "out", "both be written to"),
    (["empty"], None, "holds no supported files"),
    (["in/b.png"], "in/b.png", "is the input itself"),
    (["in/b.png", "in/b.max.png"], None, "is the input in/b.max.png"),
])
def test_naming_mistakes_are_usage_errors(tree, tmp_path, monkeypatch, inputs, output, needle):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "file.txt")
    touch(tree / "b.max.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError) as e:
        plan_jobs(inputs, output, "max")
    assert needle in str(e.value)


def test_a_symlink_inside_the_output_folder_cannot_carry_outputs_out(tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path / "elsewhere", out / "sub")
    with pytest.raises(UsageError, match="outside the output folder"):
        plan_jobs([str(tree)], str(out), "max", recursive=True)
    # the output folder may itself be a link: everything stays inside what it points to
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "linked")
    jobs = plan_jobs([str(tree)], str(tmp_path / "linked"), "max", recursive=True)
    assert len(jobs) == 4


def test_an_empty_folder_suggests_r_when_files_are_deeper(tmp_path):
    touch(tmp_path / "top" / "sub" / "x.png")
    with pytest.raises(UsageError, match="1 sub-folder not searched; recursive=True descends"):
        plan_jobs([str(tmp_path / "top")], None, "max")
    assert len(plan_jobs([str(tmp_path / "top")], None, "max", recursive=True)) == 1


# --- one job -------------------------------------------------------------------------------


def test_run_job_pools_an_npy_over_its_last_two_axes_and_records_it(tmp_path):
    x = np.arange(2 * 6 * 8, dtype=np.int16).reshape(2, 6, 8)
    np.save(tmp_path / "x.npy", x)
    (rec,) = run_job(Job(str(tmp_path / "x.npy"), str(tmp_path / "y.npy")), PIPE, Options())
    assert rec.status == "ok" and rec.error is None
    assert np.array_equal(np.load(tmp_path / "y.npy"), pool(x, "max", 2))
    assert (rec.input_shape, rec.output_shape, rec.axes) == ((2, 6, 8), (2, 3, 4), (1, 2))
    assert (rec.input_dtype, rec.output_dtype) == ("int16", "int16")
    assert [s.stage for s in rec.stages] == ["max:k=2"]
    assert rec.seconds >= rec.pool_seconds > 0
    (rec,) = run_job(Job(str(tmp_path / "x.npy"), str(tmp_path / "z.npy")), PIPE,
                     Options(axes=(0, 2), dtype="float32"))
    assert rec.axes == (0, 2) and rec.output_shape == (1, 6, 4)
    assert np.load(tmp_path / "z.npy").dtype == np.float32


def test_run_job_pools_an_image_over_height_and_width_in_its_own_dtype(tmp_path):
    shutil.copy(EXAMPLES / "coffee.png", tmp_path / "c.png")
    (rec,) = run_job(Job(str(tmp_path / "c.png"), str(tmp_path / "d.png")),
                     Pipeline.parse("avg:k=3"), Options())
    src = np.asarray(Image.open(tmp_path / "c.png"))
    want = np.clip(np.rint(pool(src, "avg", 3, axes=(0, 1))), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.png")), want)
    assert (rec.axes, rec.output_shape, rec.output_dtype) == ((0, 1), (133, 200, 3), "uint8")


def test_run_job_turns_failures_into_records(tmp_path):
    touch(tmp_path / "bad.png", b"\x89PNG\r\n\x1a\ntruncated")
    (rec,) = run_job(Job(str(tmp_path / "bad.png"), str(tmp_path / "o.png")), PIPE, Options())
    assert rec.status == "error" and rec.error.startswith("cannot read")
    assert not rec.usage_error and not (tmp_path / "o.png").exists()

    np.save(tmp_path / "x.npy", np.zeros((4, 4)))
    touch(tmp_path / "taken.npy", b"mine")
    (rec,) = run_job(Job(str(tmp_path / "x.npy"), str(tmp_path / "taken.npy")), PIPE, Options())
    assert rec.status == "error" and "exists; pass overwrite=True" in rec.error
    assert (tmp_path / "taken.npy").read_bytes() == b"mine"
    (rec,) = run_job(Job(str(tmp_path / "x.npy"), str(tmp_path / "taken.npy")), PIPE,
                     Options(overwrite=True))
    assert rec.status == "ok" and np.load(tmp_path / "taken.npy").shape == (2, 2)

    # a pipeline too big for this input: a usage error, but other inputs may still fit
    (rec,) = run_job(Job(str(tmp_path / "x.npy"), str(tmp_path / "big.npy")),
                     Pipeline.parse("max:k=9"), Options())
    assert rec.usage_error and not rec.stop and "kernel 9" in rec.error
    # an option that cannot apply to this kind of input stops the whole batch
    (rec,) = run_job(Job(str(tmp_path / "x.npy"), str(tmp_path / "x.png")), PIPE, Options())
    assert rec.usage_error and rec.stop and "cannot be written as png" in rec.error
    shutil.copy(EXAMPLES / "coffee.png", tmp_path / "c.png")
    (rec,) = run_job(Job(str(tmp_path / "c.png"), str(tmp_path / "d.png")), PIPE,
                     Options(dtype="uint16"))
    assert rec.stop and "`dtype` applies to array outputs" in rec.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "c.png", "taken.npy",
                                                          "x.npy"]


def test_run_job_writes_each_array_of_an_npz(tmp_path):
    a, b = np.arange(36.0).reshape(6, 6), np.ones((3, 4, 4), np.uint8)
    np.savez(tmp_path / "z.npz", a=a, b=b)
    recs = run_job(Job(str(tmp_path / "z.npz"), str(tmp_path / "o.npz")), PIPE, Options())
    assert [r.input for r in recs] == [f"{tmp_path / 'z.npz'}[a]", f"{tmp_path / 'z.npz'}[b]"]
    assert [r.output_shape for r in recs] == [(3, 3), (3, 2, 2)]
    with np.load(tmp_path / "o.npz") as z:
        assert np.array_equal(z["a"], pool(a, "max", 2))
        assert np.array_equal(z["b"], pool(b, "max", 2))


def test_an_output_folder_inside_the_input_folder_is_not_searched(tree, tmp_path):
    touch(tree / "small" / "b.png")  # last run's output
    jobs = plan_jobs([str(tree)], str(tree / "small"), "max", recursive=True)
    assert [Path(j.src).relative_to(tree).as_posix() for j in jobs] == \
        ["a.npy", "b.png", "sub/c.jpg", "sub/deeper/d.tif"]
    with pytest.raises(UsageError, match="is the input itself"):
        plan_jobs([str(tree)], str(tree), "max", recursive=True)
