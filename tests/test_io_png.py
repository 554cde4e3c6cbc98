"""The threaded PNG encoder against the PNG specification and against Pillow's decoder."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from poolcli.io import png

EXAMPLES = __import__("pathlib").Path(__file__).parent.parent / "examples"


def paeth(a: int, b: int, c: int) -> int:
    """The PNG specification's Paeth predictor, written out as it is there."""
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


def unfilter_row(ftype: int, row: list[int], prior: list[int], bpp: int) -> list[int]:
    """Reconstruct one row byte by byte, as a decoder does (PNG spec, section 9)."""
    out: list[int] = []
    for i, v in enumerate(row):
        a = out[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
        out.append((v + pred) % 256)
    return out


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, data), checking the signature and every CRC."""
    assert data[:8] == png.SIGNATURE
    at, found = 8, []
    while at < len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + n]
        (crc,) = struct.unpack(">I", data[at + 8 + n:at + 12 + n])
        assert crc == zlib.crc32(kind + body), kind
        found.append((kind, body))
        at += 12 + n
    return found


def decode_by_spec(data: bytes, h: int, row_bytes: int, bpp: int) -> np.ndarray:
    """Inflate the IDAT stream (zlib checks its Adler-32) and unfilter every row."""
    stream = b"".join(body for kind, body in chunks(data) if kind == b"IDAT")
    flat = zlib.decompress(stream)
    assert len(flat) == h * (row_bytes + 1)
    rows, prior = [], [0] * row_bytes
    for r in range(h):
        line = flat[r * (row_bytes + 1):(r + 1) * (row_bytes + 1)]
        assert line[0] <= 4
        prior = unfilter_row(line[0], list(line[1:]), prior, bpp)
        rows.append(prior)
    return np.array(rows, np.uint8).reshape(h, row_bytes)


@pytest.mark.parametrize("bpp", [1, 2, 3, 4, 6, 8])
def test_every_candidate_filter_reconstructs_the_rows(bpp):
    rng = np.random.default_rng(bpp)
    # smooth rows, noisy rows and saturated rows exercise every Paeth branch and wrap-around
    base = rng.integers(0, 256, (7, 5 * bpp))
    rows = np.concatenate([base, np.cumsum(rng.integers(-3, 4, (5, 5 * bpp)), axis=1) % 256,
                           np.full((2, 5 * bpp), 255), np.zeros((2, 5 * bpp), int)])
    rows = rows.astype(np.uint8)
    above = rng.integers(0, 256, rows.shape[1]).astype(np.uint8)
    every = png.candidates(rows, above, bpp)
    for ftype in range(5):
        prior = above.tolist()
        for r in range(len(rows)):
            prior = unfilter_row(ftype, every[ftype, r].tolist(), prior, bpp)
            assert prior == rows[r].tolist(), (ftype, r)


def test_each_row_gets_the_filter_with_the_smallest_signed_sum():
    rng = np.random.default_rng(1)
    rows = (np.cumsum(rng.integers(-2, 3, (40, 60)), axis=0) % 256).astype(np.uint8)
    rows[::5] = rng.integers(0, 256, (8, 60))
    out = np.empty((40, 61), np.uint8)
    png.filter_rows(rows, np.zeros(60, np.uint8), 3, out)
    every = png.candidates(rows, np.zeros(60, np.uint8), 3)
    cost = np.abs(every.astype(np.int16) - 256 * (every >= 128)).sum(axis=2)
    assert (cost[out[:, 0], np.arange(40)] == cost.min(axis=0)).all()
    assert len(set(out[:, 0])) > 1  # the choice really varies between rows


def random_image(rng, mode, h, w):
    depth, _, channels = png.MODES[mode]
    shape = (h, w) if channels == 1 else (h, w, channels)
    # a ramp plus noise: rows that favour different filters
    ramp = np.add.outer(np.arange(h), np.arange(w))
    if channels > 1:
        ramp = ramp[..., None]
    top = 65535 if depth == 16 else 255
    x = ramp * (7 if depth == 8 else 1999) + rng.integers(0, 9, shape)
    return (x % (top + 1)).astype(np.uint16 if depth == 16 else np.uint8)


@pytest.mark.parametrize("mode", sorted(png.MODES))
@pytest.mark.parametrize("h,w", [(1, 1), (1, 17), (23, 1), (37, 29)])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_round_trip_is_exact_across_band_and_block_seams(monkeypatch, mode, h, w, level):
    # tiny bands and blocks put seams everywhere: between blocks, bands and threads
    monkeypatch.setattr(png, "BAND_BYTES", 50)
    monkeypatch.setattr(png, "BLOCK_ROWS", 3)
    monkeypatch.setattr(png, "IDAT_BYTES", 64)
    x = random_image(np.random.default_rng(h * w + level), mode, h, w)
    buf = io.BytesIO()
    png.write_png(x, buf, mode, level=level, threads=3)
    data = buf.getvalue()
    if mode in ("LA;16", "RGB;16", "RGBA;16"):
        # Pillow reads these at 8 bits; decode_by_spec below checks the bytes instead
        assert Image.open(io.BytesIO(data)).size == (w, h)
    else:
        back = Image.open(io.BytesIO(data))
        assert back.mode == mode and back.size == (w, h)
        assert np.array_equal(np.asarray(back), x)
    raw, bpp = png.scanlines(x, mode)
    assert np.array_equal(decode_by_spec(data, h, raw.shape[1], bpp), raw)


def test_output_is_the_same_bytes_for_any_thread_count(monkeypatch):
    monkeypatch.setattr(png, "BAND_BYTES", 4096)
    x = random_image(np.random.default_rng(0), "RGB", 300, 200)
    outs = set()
    for threads in (1, 2, 5):
        buf = io.BytesIO()
        png.write_png(x, buf, "RGB", level=6, threads=threads)
        outs.add(buf.getvalue())
    assert len(outs) == 1


def test_icc_dpi_and_exif_are_written_as_pillow_reads_them():
    x = random_image(np.random.default_rng(2), "RGBA", 10, 12)
    exif = Image.Exif()
    exif[0x010E] = "pooled"  # ImageDescription
    icc = b"not a real profile, but bytes all the same" * 3
    buf = io.BytesIO()
    png.write_png(x, buf, "RGBA", icc_profile=icc, dpi=(300, 150), exif=exif.tobytes())
    back = Image.open(io.BytesIO(buf.getvalue()))
    assert back.info["icc_profile"] == icc
    assert [round(d) for d in back.info["dpi"]] == [300, 150]
    assert back.getexif()[0x010E] == "pooled"
    kinds = [k for k, _ in chunks(buf.getvalue())]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT")


@pytest.mark.parametrize("level", [1, 6])
def test_a_photograph_is_no_larger_than_pillows_encoding(level):
    photo = np.asarray(Image.open(EXAMPLES / "coffee.png").convert("RGB"))
    ours, theirs = io.BytesIO(), io.BytesIO()
    png.write_png(photo, ours, "RGB", level=level, threads=2)
    Image.fromarray(photo).save(theirs, "PNG", compress_level=level)
    assert len(ours.getvalue()) <= 1.02 * len(theirs.getvalue())
