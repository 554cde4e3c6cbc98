"""Tidy item 5: the KIND commands and `run` hand their shared options to the batch as one
explicit object (RunChoices), each option named, none dropped on the way."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np

from poolcli.cli import commands
from poolcli.core.kinds import KINDS

STAGE = {"inputs", "kernel", "stride", "padding", "dilation", "ceil_mode",
         "count_include_pad", "divisor", "norm", "output_size", "global_", "ignore_nan",
         "nodata"}
FIELDS = {f.name for f in dataclasses.fields(commands.RunChoices)}


def test_every_shared_option_of_a_kind_command_is_a_field():
    for kind in KINDS:
        params = set(inspect.signature(commands._kind_command(kind, kind)).parameters)
        assert params - STAGE == FIELDS, kind


def test_every_option_of_run_is_a_field():
    params = set(inspect.signature(commands.run).parameters)
    assert params - {"args", "pipeline_file"} == FIELDS


def test_the_options_reach_the_batch(cli, tmp_path):
    x = np.arange(48, dtype=np.int16).reshape(2, 4, 6)
    np.save(tmp_path / "a.npy", x)
    for argv in (("max", tmp_path / "a.npy", "-k", 2),
                 ("run", "max:k=2", tmp_path / "a.npy")):
        out = tmp_path / f"{argv[0]}.npy"
        r = cli(*argv, "--axes", "1,2", "--dtype", "float32", "-o", out, "-q",
                "--report", "json", "--report-file", tmp_path / f"{argv[0]}.json")
        assert r.returncode == 0, r.stderr
        got = np.load(out)
        assert got.dtype == np.float32 and got.shape == (2, 2, 3)
        assert (tmp_path / f"{argv[0]}.json").exists()
        again = cli(*argv, "-o", out)  # no --overwrite: kept, that input fails
        assert again.returncode == 1
