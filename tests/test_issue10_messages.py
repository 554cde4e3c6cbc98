"""Issue 10: messages that teach (unknown kinds, foreign flags, stage slips, no stand-in
lengths) and --help that shows INPUT... and whole descriptions."""

from __future__ import annotations

import re

import numpy as np
import pytest
from clitools import one_error_line, rgb

from poolcli import Pipeline, PoolError
from poolcli.core.kinds import KINDS


@pytest.fixture
def photo(tmp_path):
    rgb(tmp_path / "a.png")
    return tmp_path / "a.png"


def test_an_unknown_command_lists_the_kinds_and_guesses(exe, photo):
    p = exe("majority", photo)
    line = one_error_line(p)
    assert p.returncode == 2
    assert "no kind 'majority'" in line
    assert "kinds: " + " ".join(KINDS) in line
    assert line.endswith("for majority use mode")


def test_an_unknown_command_with_no_guess_still_lists_the_kinds(cli, photo):
    line = one_error_line(cli("blur", photo))
    assert "no kind 'blur'" in line and " ".join(KINDS) in line and "use" not in line


@pytest.mark.parametrize("flag, pointer", [
    ("--scale", "-k 2"), ("--resize", "-k 2"), ("--json", "--report json"),
    ("--dry-run", "poolcli plan"), ("--ext", "--glob"), ("--include", "--glob"),
    ("--kernel-size", "-k"),
])
def test_foreign_flags_get_a_pointer(exe, photo, flag, pointer):
    p = exe("max", photo, flag, "3")
    line = one_error_line(p)
    assert p.returncode == 2
    assert f"no option {flag}" in line and pointer in line


@pytest.mark.parametrize("stage, hint", [
    ("avg:global", "out=1"),
    ("avg:k=3,3", "k=3x3 inside a stage (commas separate keys)"),
    ("max:s=2,2,k=2", "s=2x2"),
])
def test_stage_slips_get_a_pointer(cli, photo, stage, hint):
    with pytest.raises(PoolError, match=re.escape(hint)):
        Pipeline.parse(stage)
    p = cli("run", stage, photo)
    assert p.returncode == 2 and hint in one_error_line(p)


def test_no_message_shows_the_stand_in_length(exe, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((64, 64)))
    p = exe("max", tmp_path / "a.npy", "-p", "3", "-k", "2")
    line = one_error_line(p)
    assert p.returncode == 2
    assert "1048576" not in line and "padding" in line and "kernel 2" in line


def test_info_on_a_missing_file_is_one_clean_line(exe, tmp_path):
    p = exe("info", tmp_path / "nothere.png")
    line = one_error_line(p)
    assert p.returncode == 2
    assert "nothere.png does not exist" in line and "Errno" not in line


def test_usage_lines_show_input_dots(exe):
    for cmd, usage in (("max", "Usage: poolcli max [OPTIONS] INPUT..."),
                       ("run", "Usage: poolcli run [OPTIONS] PIPELINE INPUT..."),
                       ("info", "Usage: poolcli info [OPTIONS] INPUT...")):
        p = exe(cmd, "--help")
        assert p.returncode == 0
        text = p.stdout.decode()
        assert usage in text and "{" not in text.splitlines()[0]


def test_command_descriptions_are_whole_in_help(exe):
    text = exe("--help").stdout.decode()
    listing = " ".join(text.split())  # wrapped lines joined
    assert "..." not in listing.split("Commands:")[1].split("Examples")[0]
    assert "no data is processed." in listing
    assert "the ratio to a copy." in listing


def test_jobs_help_states_the_16_mb_rule(exe):
    text = " ".join(exe("max", "--help").stdout.decode().split())
    assert "16 MB" in text and "-j, --jobs" in text


def test_plan_on_a_missing_file_says_it_as_every_command_does(exe, tmp_path):
    p = exe("plan", "max:k=2", tmp_path / "nothere.png")
    line = one_error_line(p)
    assert p.returncode == 2
    assert "input" in line and "nothere.png does not exist" in line and "Errno" not in line
