"""Shared fixtures: poolcli in-process and as the real executable, sample images and arrays."""

from __future__ import annotations

import numpy as np
import pytest
from clitools import COFFEE, rgb, run_cli, run_exe


@pytest.fixture
def cli():
    """Run poolcli in this process: ``cli("max", path, "-k", 2)`` -> Result."""
    return run_cli


@pytest.fixture
def exe():
    """Run the real executable in a subprocess -> Result."""
    return run_exe


@pytest.fixture
def arr(tmp_path):
    """A float32 (2, 17, 23) array saved as ``tmp_path / "a.npy"``."""
    x = np.random.default_rng(0).standard_normal((2, 17, 23)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    return x


@pytest.fixture
def rgb_png(tmp_path):
    """A random 30x40 RGB PNG at ``tmp_path / "a.png"``; returns (path, pixels)."""
    path = tmp_path / "a.png"
    return path, rgb(path)


@pytest.fixture
def coffee():
    """The shipped photograph examples/coffee.png."""
    return COFFEE


@pytest.fixture(scope="module")
def cluster():
    """A real dask LocalCluster for a test module: 2 single-threaded worker processes on
    loopback, started and closed here (tests that kill a worker get it back from its
    nanny)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c
