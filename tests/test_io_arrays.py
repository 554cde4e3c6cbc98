""".npy/.npz: exact round trips, headers, memory maps, and no unpickling ever."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from poolcli.io.arrays import (
    ArrayReadError,
    npy_header,
    open_npy_memmap,
    read_arrays,
    write_npy,
    write_npz,
)

ARRAYS = {
    "bool": np.array([[True, False], [False, True]]),
    "uint8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "int64": np.array([-(2**63), 2**63 - 1, 0]),
    "uint64": np.array([2**64 - 1, 0], np.uint64),
    "float16": np.array([np.inf, -0.0, 65504], np.float16),
    "float32_nan": np.array([[np.nan, 1.5], [-np.inf, 3.25]], np.float32),
    "float64_fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
    "empty": np.zeros((0, 5), np.float32),
}


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)  # NaN equals NaN here


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_npy_round_trip_through_a_path(tmp_path, name):
    write_npy(ARRAYS[name], tmp_path / "a.npy")
    got = read_arrays(tmp_path / "a.npy")
    assert list(got) == [""]
    _same(got[""], ARRAYS[name])


def test_npz_round_trip_through_a_file_object_keeps_names_and_order(tmp_path):
    arrays = {"zeta": ARRAYS["uint8"], "file": ARRAYS["float32_nan"], "a b": ARRAYS["bool"]}
    buf = io.BytesIO()
    write_npz(arrays, buf)
    got = read_arrays(buf.getvalue())
    assert list(got) == ["zeta", "file", "a b"]
    for key, arr in arrays.items():
        _same(got[key], arr)
    # NumPy reads it too
    with np.load(io.BytesIO(buf.getvalue())) as z:
        _same(z["file"], arrays["file"])


def test_write_npz_uses_the_path_as_given(tmp_path):
    dest = tmp_path / "out.part"  # np.savez would have written out.part.npz
    write_npz({"x": np.arange(3)}, dest)
    assert dest.exists() and not (tmp_path / "out.part.npz").exists()
    _same(read_arrays(dest)["x"], np.arange(3))


def test_write_npz_to_an_unseekable_stream(tmp_path):
    class Pipe(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            self.data += b
            return len(b)

    pipe = Pipe()
    write_npz({"x": ARRAYS["int64"]}, pipe)
    _same(read_arrays(bytes(pipe.data))["x"], ARRAYS["int64"])


def test_format_comes_from_the_bytes_not_the_suffix(tmp_path):
    write_npy(ARRAYS["uint8"], tmp_path / "really_npy.png")
    _same(read_arrays(tmp_path / "really_npy.png")[""], ARRAYS["uint8"])
    with open(tmp_path / "really_npz.npy", "wb") as f:
        np.savez(f, m=ARRAYS["bool"])
    assert list(read_arrays(tmp_path / "really_npz.npy")) == ["m"]
    (tmp_path / "text.npy").write_text("just text, which np.load would try to unpickle")
    with pytest.raises(ArrayReadError, match=r"not a \.npy or \.npz file"):
        read_arrays(tmp_path / "text.npy")


def test_pickled_object_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ArrayReadError, match="pickled"):
        read_arrays(tmp_path / "obj.npy")
    with pytest.raises(ArrayReadError, match="pickled"):
        read_arrays((tmp_path / "obj.npy").read_bytes())
    with pytest.raises(ArrayReadError, match="pickled"):
        open_npy_memmap(tmp_path / "obj.npy")
    # the header alone is still readable, for `poolcli info`
    assert npy_header(tmp_path / "obj.npy") == ((2,), np.dtype(object))


def test_pickled_object_npz_member_is_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", ok=np.arange(2), bad=np.array([None], dtype=object))
    with pytest.raises(ArrayReadError, match="member 'bad' holds pickled"):
        read_arrays(tmp_path / "obj.npz")


def test_writing_an_object_array_is_refused(tmp_path):
    obj = np.array([1, "a"], dtype=object)
    with pytest.raises(ValueError, match=r"[Oo]bject"):
        write_npy(obj, io.BytesIO())
    with pytest.raises(ValueError, match="dtype object"):
        write_npz({"o": obj}, tmp_path / "o.npz")
    assert not (tmp_path / "o.npz").exists()  # refused before the file is made
    with pytest.raises(ValueError, match="non-empty name"):
        write_npz({"": np.zeros(1)}, io.BytesIO())


def test_truncated_npy_is_a_read_error(tmp_path):
    buf = io.BytesIO()
    write_npy(np.arange(1000, dtype=np.float64), buf)
    data = buf.getvalue()
    (tmp_path / "cut.npy").write_bytes(data[:-100])
    for src in (tmp_path / "cut.npy", data[:-100]):
        with pytest.raises(ArrayReadError, match=r"cut short .* shape \(1000,\)"):
            read_arrays(src)
    with pytest.raises(ArrayReadError, match="cannot memory-map"):
        open_npy_memmap(tmp_path / "cut.npy")
    with pytest.raises(ArrayReadError, match=r"not a valid \.npy"):
        read_arrays(data[:20])  # cut inside the header


def test_damaged_npz_is_a_read_error(tmp_path):
    buf = io.BytesIO()
    write_npz({"x": np.arange(100)}, buf)
    with pytest.raises(ArrayReadError, match=r"not a readable \.npz"):
        read_arrays(buf.getvalue()[:60])
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(ArrayReadError, match=r"member 'notes\.txt' is not a \.npy array"):
        read_arrays(tmp_path / "odd.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ArrayReadError, match="holds no arrays"):
        read_arrays(tmp_path / "empty.npz")


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_arrays(tmp_path / "nope.npy")


def test_npy_header_reads_only_the_header(tmp_path):
    arr = np.zeros((3, 4, 5), dtype=">f4")
    np.save(tmp_path / "a.npy", arr)
    assert npy_header(tmp_path / "a.npy") == ((3, 4, 5), np.dtype(">f4"))
    # the header is checked against the file's size, never against its data: a header
    # that promises more than the file holds is refused (issue 9: headers that lie)
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "head.npy").write_bytes(data[:128])
    with pytest.raises(ArrayReadError, match="cut short"):
        npy_header(tmp_path / "head.npy")
    (tmp_path / "junk.npy").write_bytes(b"PK\x03\x04 not npy")
    with pytest.raises(ArrayReadError, match=r"not a valid \.npy"):
        npy_header(tmp_path / "junk.npy")


def test_npy_header_version_2(tmp_path):
    dtype = np.dtype([("x", "<f4"), ("y", ">i2")])
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, np.zeros(2, dtype), version=(2, 0))
    assert (tmp_path / "v2.npy").read_bytes()[6:8] == b"\x02\x00"
    assert npy_header(tmp_path / "v2.npy") == ((2,), dtype)
    assert read_arrays(tmp_path / "v2.npy")[""].dtype == dtype


def test_a_huge_header_is_refused_like_numpy_does(tmp_path):
    # NumPy will not parse a header this size without trusting the file (literal_eval cost)
    dtype = np.dtype([(f"field_{i:05d}", "<f4") for i in range(4000)])
    with open(tmp_path / "big.npy", "wb") as f:
        np.lib.format.write_array(f, np.zeros(2, dtype), version=(2, 0))
    with pytest.raises(ArrayReadError, match="large"):
        npy_header(tmp_path / "big.npy")


def test_memmap_is_read_only_and_matches(tmp_path):
    arr = np.arange(60, dtype=np.int16).reshape(6, 10)
    write_npy(arr, tmp_path / "m.npy")
    mm = open_npy_memmap(tmp_path / "m.npy")
    assert isinstance(mm, np.memmap)
    _same(np.asarray(mm), arr)
    with pytest.raises(ValueError, match="read-only"):
        mm[0, 0] = 1
    (tmp_path / "z.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ArrayReadError):
        open_npy_memmap(tmp_path / "z.npz")


def test_memmap_of_a_fortran_order_array(tmp_path):
    write_npy(ARRAYS["float64_fortran"], tmp_path / "f.npy")
    _same(np.asarray(open_npy_memmap(tmp_path / "f.npy")), ARRAYS["float64_fortran"])
