"""SPEC 5: `poolcli pyramid INPUT... [KIND]`: a kind after the inputs, as --kind."""

from __future__ import annotations

import numpy as np
import pytest
from clitools import one_error_line

from poolcli.pyramid import pyramid


@pytest.mark.parametrize("kind", ["max", "MEDIAN", "mean", "mode"])
def test_a_kind_after_the_inputs_is_the_kind(cli, tmp_path, kind):
    x = np.random.default_rng(0).integers(0, 9, (13, 10)).astype(np.int16)
    np.save(tmp_path / "a.npy", x)
    p = cli("pyramid", tmp_path / "a.npy", kind, "-o", tmp_path / "lv.npy", "-q")
    assert p.returncode == 0, p.stderr
    for i, want in enumerate(pyramid(x, kind=kind)):
        np.testing.assert_array_equal(np.load(tmp_path / f"lv_{i}.npy"), want)
    assert not (tmp_path / kind).exists()


def test_several_inputs_then_a_kind(cli, tmp_path):
    for n in "ab":
        np.save(tmp_path / f"{n}.npy", np.arange(16.0).reshape(4, 4))
    p = cli("pyramid", tmp_path / "a.npy", tmp_path / "b.npy", "min", "-o",
            str(tmp_path / "out") + "/", "-q")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "out" / "b_2.npy").item() == 0.0  # min, not the mean 7.5


def test_a_file_named_like_a_kind_is_ambiguous(cli, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    (tmp_path / "max").write_bytes(b"")
    p = cli("pyramid", "a.npy", "max", "-o", "o.zarr", cwd=tmp_path)
    assert p.returncode == 2
    assert "max is both a file here and a kind; write ./max" in one_error_line(p)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.npy", "max"]


@pytest.mark.parametrize("extra, said", [(["--kind", "max"], "the kind is given twice"),
                                         (["--labels"], "--labels chooses mode pooling")])
def test_a_kind_given_twice_is_refused(cli, tmp_path, extra, said):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    p = cli("pyramid", tmp_path / "a.npy", "min", *extra, "-o", tmp_path / "o.zarr")
    assert p.returncode == 2 and said in one_error_line(p)


def test_a_lone_kind_name_is_still_an_input(cli, tmp_path):
    p = cli("pyramid", "max", "-o", "o.zarr", cwd=tmp_path)
    assert p.returncode != 0 and "max" in p.stderr and "Traceback" not in p.stderr
