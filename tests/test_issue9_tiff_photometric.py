"""Issue 9 (found by tests/fuzz/fuzz_inputs.py): a TIFF whose photometric tag holds a
value tifffile does not know was an AttributeError, "internal error" on the command line;
it is a failed input, one line naming the file."""

from __future__ import annotations

from clitools import run_exe

# a 7x9 RGB TIFF (Pillow's) with PhotometricInterpretation (tag 262) damaged to 0x106
DAMAGED = (
    b"II*\x00\x08\x00\x00\x00\n\x00\x00\x01\x04\x00\x01\x00\x00\x00\x07\x00\x00\x00\x01"
    b"\x01\x04\x00\x01\x00\x00\x00\t\x00\x00\x00\x02\x01\x03\x00\x01\x00\x00\x00\x00\x00"
    b"\x00\x03\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x06\x01\x03\x00\x01\x00\x00\x00"
    b"\x01\x00\x00\x00\x11\x01\x04\x00\x01\x00\x00\x00\x86\x00\x00\x00\x16\x01\x04\x00\x01"
    b"\x00\x00\x00\t\x00\x00\x00\x17\x01\x04\x00\x01\x00\x00\x00\xfc\x00\x00\x00\x1c\x01"
    b"\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00S\x01\x03\x00\x01\x00\x00\x00\x03\x00\x00\x00"
    b"\x00"
)


def test_an_unknown_photometric_value_is_a_failed_input(tmp_path):
    (tmp_path / "bad.tif").write_bytes(DAMAGED)
    p = run_exe("max", "bad.tif", "-o", "out.tif", cwd=tmp_path)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("poolcli: error:")]
    assert p.returncode == 1, p.stderr
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr
    assert len(errors) == 1 and "bad.tif" in errors[0], p.stderr
    assert not (tmp_path / "out.tif").exists()


def test_a_tiff_with_no_image_is_one_line_in_info_and_in_a_run(tmp_path):
    # the damaged TIFF above with its first directory pointed past its own end
    data = bytearray(DAMAGED)
    data[4:8] = (len(data) + 64).to_bytes(4, "little")
    (tmp_path / "none.tif").write_bytes(bytes(data))
    for args in (("info", "none.tif"), ("max", "none.tif", "-o", "out.tif")):
        p = run_exe(*args, cwd=tmp_path)
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("poolcli: error:")]
        assert p.returncode == 1, p.stderr
        assert "internal error" not in p.stderr and "Traceback" not in p.stderr
        assert len(errors) == 1 and "none.tif" in errors[0], p.stderr
