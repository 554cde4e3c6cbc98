"""The restructure's promises: one engine seam, one mode table, the library's words vs
the command line's, and a bug never passed off as a user's mistake."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

from poolcli import Pipeline, PoolError, pool
from poolcli.cli.messages import FLAGS, flag_words
from poolcli.core.plan import make_plan
from poolcli.io.headers import describe_input
from poolcli.io.image_read import read_image
from poolcli.pipeline import STAGE_KEYS

# poolcli.pool is also the name of the function the package exports
pool_module = importlib.import_module("poolcli.pool")


class Tagged(np.ndarray):
    """An array type a test engine claims."""


def test_engine_seam_dispatches_on_the_input_type(monkeypatch):
    calls = []

    def prepare(x):
        calls.append("prepare")
        return np.asarray(x)

    def execute(plan, x, *, dtype=None, threads=None):
        calls.append(plan.kind)
        return np.full(plan.out_shape, 7.0)

    engine = pool_module.Engine("test", prepare, execute)
    fake = type("M", (), {"ENGINE": engine})
    monkeypatch.setattr(pool_module, "ENGINES", ((lambda t: issubclass(t, Tagged), "x"),))
    monkeypatch.setattr(pool_module.importlib, "import_module", lambda *a: fake)
    x = np.arange(16.0).reshape(4, 4)
    assert (pool(x.view(Tagged), "max", 2) == 7).all()
    assert (Pipeline.parse("avg:k=2")(x.view(Tagged)) == 7).all()
    assert calls == ["prepare", "max", "prepare", "avg"]
    # a plain array still goes to NumPy, with real values
    assert pool(x, "max", 2).tolist() == [[5.0, 7.0], [13.0, 15.0]]


def test_library_messages_name_options_as_python_does():
    note = make_plan((5, 4), "max", 2).notes()[0]
    assert "ceil_mode=True" in note and "--" not in note
    assert flag_words(note).endswith("--ceil-mode keeps it")


@pytest.mark.parametrize("text,flags", [
    ("pass overwrite=True to replace it", "pass --overwrite to replace it"),
    ("output=- (standard output) takes one input", "-o - (standard output) takes one input"),
    ("write .npy (format=npy) to choose", "write .npy (--format npy) to choose"),
    ("`axes` applies to arrays", "--axes applies to arrays"),
    ("kernel 9 on axis 0 is longer", "kernel 9 on axis 0 is longer"),  # prose stays
    ("`unknown_name` stays a name", "unknown_name stays a name"),
])
def test_flag_words(text, flags):
    assert flag_words(text) == flags


def test_every_stage_key_has_a_flag():
    assert {k.param for k in STAGE_KEYS} <= set(FLAGS)


def test_cmyk_jpeg_info_and_run_agree(tmp_path, cli):
    """info and plan read the shape a run reads: CMYK is pooled as RGB (3 channels)."""
    path = tmp_path / "c.jpg"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), "CMYK").save(path)
    info = describe_input(str(path))
    assert info.shape == read_image(str(path)).array.shape == (20, 30, 3)
    p = cli("max", path, "-o", tmp_path / "o.npy")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "o.npy").shape == (10, 15, 3)
    assert "shape 20x30x3" in cli("info", path).stdout.decode()
    assert "20x30x3 -> 10x15x3" in cli("plan", "max:k=2", path).stdout.decode()


def test_palette_with_transparency_reads_as_rgba_in_info_and_run(tmp_path):
    path = tmp_path / "p.png"
    im = Image.new("P", (6, 4))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.info["transparency"] = 0
    im.save(path, transparency=0)
    assert describe_input(str(path)).shape == read_image(str(path)).array.shape == (4, 6, 4)


def test_a_bug_is_an_internal_error_not_a_usage_error(monkeypatch, cli, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))

    def broken(*a, **k):
        raise TypeError("a bug")

    monkeypatch.setattr("poolcli.cli.batch.run_batch", broken)
    monkeypatch.setattr("poolcli.cli.commands.run_batch", broken)
    p = cli("max", tmp_path / "a.npy")
    assert p.returncode == 1
    assert "internal error" in p.stderr and "TypeError: a bug" in p.stderr
    assert "Traceback" not in p.stderr


def test_pool_errors_are_usage_errors(cli):
    p = cli("plan", "max:k=0", "--shape", "8x8")
    assert p.returncode == 2 and "kernel 0 on axis 0 must be >= 1" in p.stderr
    with pytest.raises(PoolError):
        pool(np.zeros((4, 4)), "max", 0)
