"""Issue 10: an option that does nothing for the chosen kind or output format is a usage
error naming the option and what it applies to, decided from the kind registry."""

from __future__ import annotations

import numpy as np
import pytest
from clitools import one_error_line, rgb

from poolcli import Pipeline, PoolError
from poolcli.core.kinds import KIND_OPTIONS, KINDS, check_option


@pytest.fixture
def photo(tmp_path):
    rgb(tmp_path / "a.png")
    return tmp_path / "a.png"


@pytest.mark.parametrize("args, words", [
    (["avg", "--norm", "3"], ["--norm", "lp", "not to avg"]),
    (["max", "--count-include-pad"], ["--count-include-pad", "avg, l2", "not to max"]),
    (["max", "--no-count-include-pad"], ["--count-include-pad", "not to max"]),
    (["max", "--divisor", "4"], ["--divisor", "kind avg", "not to max"]),
    (["median", "--premultiply"], ["--premultiply", "kind avg", "not to median"]),
    (["mode", "--no-premultiply"], ["--premultiply", "not to mode"]),
    (["sum", "--norm", "2"], ["--norm", "not to sum"]),
])
def test_options_a_kind_ignores_are_refused(exe, photo, args, words):
    kind, *opts = args
    p = exe(kind, photo, *opts, "-o", photo.parent / "out.png")
    line = one_error_line(p)
    assert p.returncode == 2
    for w in words:
        assert w in line
    assert not (photo.parent / "out.png").exists()


@pytest.mark.parametrize("args", [["avg", "--divisor", "4"], ["l2", "--count-include-pad"],
                                  ["lp", "--norm", "3"], ["avg", "--no-premultiply"]])
def test_options_a_kind_takes_still_work(cli, photo, args):
    kind, *opts = args
    p = cli(kind, photo, *opts, "-o", photo.parent / "out.png")
    assert p.returncode == 0, p.stderr
    assert (photo.parent / "out.png").is_file()


@pytest.mark.parametrize("opt, out, formats", [
    (["--quality", "50"], "q.png", "jpeg and webp"),
    (["--compress-level", "3"], "c.jpg", "png"),
    (["--quality", "50"], "q.npy", "jpeg and webp"),
])
def test_encoder_settings_the_format_ignores_are_refused(exe, photo, opt, out, formats):
    p = exe("max", photo, *opt, "-o", photo.parent / out)
    line = one_error_line(p)
    assert p.returncode == 2
    assert opt[0] in line and f"applies to {formats} outputs" in line
    assert not (photo.parent / out).exists()


def test_quality_for_jpeg_still_works(cli, photo):
    p = cli("max", photo, "--quality", "50", "-o", photo.parent / "q.jpg")
    assert p.returncode == 0, p.stderr


def test_a_pipeline_stage_is_checked_the_same_way():
    with pytest.raises(PoolError, match="`norm` applies to kind lp; not to max"):
        Pipeline.parse("max:k=2,norm=3")
    with pytest.raises(PoolError, match="`count_include_pad` applies to kinds avg, l2"):
        Pipeline.parse("avg:k=2 | median:k=3,count_pad=true")
    assert Pipeline.parse("mean:k=2,divisor=3")(np.ones((4, 4))).tolist() == [[4 / 3] * 2] * 2


def test_the_rule_comes_from_the_registry():
    for option in KIND_OPTIONS:
        takers = [k for k, kind in KINDS.items() if option in kind.options]
        others = [k for k in KINDS if k not in takers]
        assert takers and others
        for k in takers:
            check_option(option, [k])
        for k in others:
            with pytest.raises(PoolError, match=f"not to {k}"):
                check_option(option, [k])
