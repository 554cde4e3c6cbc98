"""Issue 10: output names that contradict the format, -o NAME.EXT with many inputs,
case-insensitive globs, the sub-folder note, and the hint for a missing "input" that
was meant as the output."""

from __future__ import annotations

import numpy as np
import pytest
from clitools import files_under, one_error_line, rgb


@pytest.fixture
def photo(tmp_path):
    rgb(tmp_path / "a.jpg")
    return tmp_path / "a.jpg"


@pytest.mark.parametrize("out, extra, words", [
    ("out.jp2", [], ["out.jp2", ".jp2", "names no supported format"]),
    ("x.png", ["--format", "npy"], ["x.png", "png", "--format npy", "x.npy"]),
    ("x.npy", ["--format", "jpg"], ["x.npy", "npy", "--format jpeg"]),
])
def test_a_suffix_that_contradicts_the_format_is_refused(exe, photo, out, extra, words):
    p = exe("max", photo, "-o", photo.parent / out, *extra)
    line = one_error_line(p)
    assert p.returncode == 2
    for w in words:
        assert w in line
    assert not (photo.parent / out).exists()


@pytest.mark.parametrize("out, extra", [("b.JPEG", []), ("b.tif", ["--format", "tiff"]),
                                        ("noext", [])])
def test_a_suffix_that_agrees_is_written(cli, photo, out, extra):
    p = cli("max", photo, "-o", photo.parent / out, *extra)
    assert p.returncode == 0, p.stderr
    assert (photo.parent / out).is_file()


def test_many_inputs_with_a_file_name_is_refused(exe, photo, tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((4, 4)))
    p = exe("max", photo, tmp_path / "b.npy", "-o", tmp_path / "single.png")
    line = one_error_line(p)
    assert p.returncode == 2
    assert "single.png names a file but 2 inputs were given" in line
    assert "use a folder, e.g. -o out/" in line
    assert not (tmp_path / "single.png").exists()


def test_a_folder_with_a_dot_is_fine_with_a_slash(cli, photo, tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((4, 4)))
    p = cli("max", photo, tmp_path / "b.npy", "-o", f"{tmp_path / 'out.d'}/")
    assert p.returncode == 0, p.stderr
    assert files_under(tmp_path / "out.d") == ["a.jpg", "b.npy"]


def test_globs_ignore_case(exe, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    rgb(d / "PHOTO.JPG")
    rgb(d / "b.png")
    p = exe("max", d, "--glob", "*.jpg", "-o", tmp_path / "o")
    assert p.returncode == 0, p.stderr
    assert files_under(tmp_path / "o") == ["PHOTO.JPG"]


def test_a_glob_matching_nothing_is_named(exe, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    rgb(d / "b.png")
    p = exe("max", d, "--glob", "*.gif", "-o", tmp_path / "o")
    line = one_error_line(p)
    assert p.returncode == 2
    assert "--glob '*.gif'" in line and "ignoring case" in line
    assert "holds no supported files" not in line


def test_sub_folders_not_searched_are_said_once(cli, exe, tmp_path):
    d = tmp_path / "d"
    for sub in ("s1", "s2", "s3", ".hidden"):
        (d / sub).mkdir(parents=True)
        rgb(d / sub / "x.png")
    rgb(d / "top.png")
    p = exe("max", d, "-o", tmp_path / "o")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("3 sub-folders not searched; -r descends") == 1
    assert files_under(tmp_path / "o") == ["top.png"]
    quiet = cli("max", d, "-o", tmp_path / "o2", "-q")
    assert "sub-folders" not in quiet.stderr
    deep = cli("max", d, "-r", "-o", tmp_path / "o3")
    assert "not searched" not in deep.stderr


def test_an_empty_top_folder_says_its_sub_folders_were_skipped(cli, tmp_path):
    (tmp_path / "d" / "s1").mkdir(parents=True)
    rgb(tmp_path / "d" / "s1" / "x.png")
    line = one_error_line(cli("max", tmp_path / "d", "-o", tmp_path / "o"))
    assert "; 1 sub-folder not searched; -r descends" in line


def test_a_missing_last_input_suggests_the_output_flag(exe, photo, tmp_path):
    p = exe("avg", photo, tmp_path / "out.jpg")
    line = one_error_line(p)
    assert p.returncode == 2
    assert f"input {tmp_path / 'out.jpg'} does not exist" in line
    assert f"to name the output use -o {tmp_path / 'out.jpg'}" in line


def test_a_missing_only_input_gets_no_output_hint(cli, tmp_path):
    line = one_error_line(cli("avg", tmp_path / "nothere.jpg"))
    assert "does not exist" in line and "to name the output" not in line
