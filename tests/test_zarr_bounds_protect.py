"""Zarr outputs go through the one input-protection check (atomic.check_store_output):
a store written by pooling, a pyramid or the dask engine never replaces an input, sits
inside one or holds one, whatever name reaches it; one line, exit status 2."""

from __future__ import annotations

import os

import numpy as np
import pytest
from clitools import files_under, one_error_line, run_exe

from poolcli import Pipeline
from poolcli.io.atomic import OutputRefused
from poolcli.stores import pool_store

zarr = pytest.importorskip("zarr")

X = np.arange(48 * 40, dtype=np.uint16).reshape(48, 40)


@pytest.fixture
def store(tmp_path):
    """An input store ``a.zarr`` in tmp_path (a plain array at its root)."""
    a = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=X.shape, chunks=(16, 16),
                          dtype=X.dtype)
    a[...] = X
    return tmp_path / "a.zarr"


@pytest.fixture
def group(tmp_path):
    """A store ``g.zarr`` whose array ``g.zarr/arr`` is the input."""
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("arr", shape=X.shape, chunks=(16, 16), dtype=X.dtype)[...] = X
    return tmp_path / "g.zarr"


def _intact(path, inner=""):
    """The input still holds X, and nothing was added to the store's folder."""
    np.testing.assert_array_equal(zarr.open_array(str(path / inner), mode="r")[...], X)
    assert not [f for f in files_under(path) if "in.zarr" in f or "p.zarr" in f]


def _refused(r, *words):
    assert r.returncode == 2, r.stderr
    line = one_error_line(r)
    for w in words:
        assert w in line, line
    return line


CASES = {
    # argv after the program name, given tmp_path as folder: what must be refused
    "same store": ("max", "a.zarr", "-o", "a.zarr", "--overwrite"),
    "same store by another name": ("run", "max:k=2", "a.zarr", "-o", "./a.zarr",
                                   "--overwrite"),
    "inside the input": ("max", "a.zarr", "-o", "a.zarr/in.zarr"),
    "inside the input, replacing": ("max", "a.zarr", "-o", "a.zarr/in.zarr", "--overwrite"),
    "pyramid over the input": ("pyramid", "a.zarr", "-o", "a.zarr", "--overwrite"),
    "pyramid inside the input": ("pyramid", "a.zarr", "-o", "a.zarr/p.zarr"),
    "streamed pyramid over the input": ("pyramid", "a.zarr", "-o", "a.zarr", "--overwrite",
                                        "--memory-limit", "1MiB"),
    "streamed pyramid inside the input": ("pyramid", "a.zarr", "-o", "a.zarr/p.zarr",
                                          "--memory-limit", "1MiB"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_store_output_never_replaces_or_enters_its_input(cli, tmp_path, store, case):
    r = cli(*CASES[case], cwd=tmp_path)
    _refused(r, "a.zarr", "input")
    _intact(store)


@pytest.mark.parametrize("command", [("max",), ("run", "max:k=2"), ("pyramid",)])
def test_a_store_that_holds_the_input_is_never_replaced(cli, tmp_path, group, command):
    r = cli(*command, "g.zarr/arr", "-o", "g.zarr", "--overwrite", cwd=tmp_path)
    _refused(r, "g.zarr holds g.zarr/arr", "would delete the input")
    _intact(group, "arr")


def test_a_symlink_to_the_input_store_is_refused(cli, tmp_path, store):
    os.symlink("a.zarr", tmp_path / "link.zarr")
    for out in ("link.zarr", "link.zarr/in.zarr"):
        r = cli("max", "a.zarr", "-o", out, "--overwrite", cwd=tmp_path)
        _refused(r, out)
    assert os.readlink(tmp_path / "link.zarr") == "a.zarr"
    _intact(store)
    # and the input named through the link: the store it reaches is still the input
    r = cli("max", "link.zarr", "-o", "a.zarr/in.zarr", cwd=tmp_path)
    _refused(r, "inside")
    _intact(store)


def test_a_symlinked_folder_does_not_hide_the_input(tmp_path, store):
    os.symlink(".", tmp_path / "here")
    pipe = Pipeline.parse("max:k=2")
    for out in (tmp_path / "here" / "a.zarr", tmp_path / "here" / "a.zarr" / "in.zarr"):
        with pytest.raises(OutputRefused, match="input"):
            pool_store(store, out, pipe, overwrite=True)
    _intact(store)


def test_the_library_protects_every_input_it_is_given(tmp_path, store, group):
    # pooling a.zarr into g.zarr would delete g.zarr/arr, another input of the batch
    from poolcli.tiled import input_ids

    with pytest.raises(OutputRefused, match="holds"):
        pool_store(store, group, Pipeline.parse("max:k=2"), overwrite=True,
                   protect=input_ids(group / "arr"))
    _intact(group, "arr")


def test_an_npy_input_inside_the_output_store_is_kept(cli, tmp_path):
    # a store being replaced that holds a .npy input of the run
    old = tmp_path / "old.zarr"
    zarr.create_array(store=str(old), shape=(4, 4), dtype=np.uint8)
    np.save(old / "x.npy", X)
    os.link(old / "x.npy", tmp_path / "x.npy")  # the input, reached by a hard link
    r = cli("max", "x.npy", "-o", "old.zarr", "--overwrite", cwd=tmp_path)
    _refused(r, "old.zarr holds")
    np.testing.assert_array_equal(np.load(old / "x.npy"), X)


def test_replacing_a_store_that_is_no_input_still_works(cli, tmp_path, store):
    zarr.create_array(store=str(tmp_path / "b.zarr"), shape=(3, 3), dtype=np.uint8)
    r = cli("max", "a.zarr", "-o", "b.zarr", cwd=tmp_path)
    assert r.returncode == 1 and "exists" in r.stderr  # kept without --overwrite
    r = cli("max", "a.zarr", "-o", "b.zarr", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "b.zarr"))[...],
                                  X.reshape(24, 2, 20, 2).max(axis=(1, 3)))
    r = cli("pyramid", "a.zarr", "-o", "b.zarr", "--overwrite", "--levels", "1",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_engine_dask_protects_the_input_too(tmp_path, store, group):
    # starts a LocalCluster per run
    for args, words in ((("a.zarr", "-o", "a.zarr/in.zarr"), "inside"),
                        (("g.zarr/arr", "-o", "g.zarr", "--overwrite"), "holds")):
        r = run_exe("max", *args, "--engine", "dask", "-q", cwd=tmp_path, timeout=300)
        _refused(r, words)
    _intact(store)
    _intact(group, "arr")
