"""report.py: the JSON document has exactly SPEC's keys; the table shows what happened."""

import json
import os
import sys

import pytest
from rich.console import Console

from poolcli.batch.report import FileRecord, Summary, json_document, peak_rss_bytes
from poolcli.cli.table import table
from poolcli.pipeline import StageTiming

FILE_KEYS = {"input", "output", "status", "error", "input_shape", "input_dtype", "output_shape",
             "output_dtype", "axes", "stages", "load_seconds", "pool_seconds", "save_seconds",
             "seconds"}
STAGE_KEYS = {"stage", "input_shape", "output_shape", "seconds"}
SUMMARY_KEYS = {"files", "ok", "failed", "seconds", "peak_rss_bytes"}


def ok_record() -> FileRecord:
    return FileRecord(
        input="in/a.npy", output="out/a.npy", input_shape=(2, 17, 23), input_dtype="float32",
        output_shape=(2, 4, 6), output_dtype="float32", axes=(1, 2),
        stages=[StageTiming("max:k=3,s=2,p=1", (2, 17, 23), (2, 9, 12), 0.0125),
                StageTiming("avg:k=2", (2, 9, 12), (2, 4, 6), 0.0031)],
        load_seconds=0.002, pool_seconds=0.0156, save_seconds=0.001, seconds=0.0186,
        input_bytes=3256)


def bad_record() -> FileRecord:
    return FileRecord(input="in/bad.png", output="out/bad.png", status="error",
                      error="cannot read: not a PNG", seconds=0.0004, input_bytes=10)


def test_json_document_has_exactly_the_spec_keys_and_plain_values():
    summary = Summary.of((1, 1), 0.5, 3266)
    doc = json.loads(json_document([ok_record().as_json(), bad_record().as_json()], summary))
    assert set(doc) == {"files", "summary"}
    ok, bad = doc["files"]
    assert set(ok) == FILE_KEYS and set(bad) == FILE_KEYS
    assert all(set(s) == STAGE_KEYS for s in ok["stages"])
    assert set(doc["summary"]) == SUMMARY_KEYS
    assert ok["input_shape"] == [2, 17, 23] and ok["output_shape"] == [2, 4, 6]
    assert ok["axes"] == [1, 2] and ok["status"] == "ok" and ok["error"] is None
    assert ok["stages"][0] == {"stage": "max:k=3,s=2,p=1", "input_shape": [2, 17, 23],
                               "output_shape": [2, 9, 12], "seconds": 0.0125}
    assert (ok["load_seconds"], ok["pool_seconds"], ok["save_seconds"]) == (0.002, 0.0156, 0.001)
    assert bad["status"] == "error" and bad["error"] == "cannot read: not a PNG"
    assert bad["input_shape"] is None and bad["axes"] is None and bad["stages"] == []
    assert {k: doc["summary"][k] for k in ("files", "ok", "failed", "seconds")} == \
        {"files": 2, "ok": 1, "failed": 1, "seconds": 0.5}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_peak_rss_is_in_bytes():
    def status(key: str) -> int:
        with open(f"/proc/{os.getpid()}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    hwm = status("VmHWM")
    assert 0.5 * hwm <= peak_rss_bytes() <= 2 * hwm  # not kilobytes, nor bytes * 1024
    rss = status("VmRSS")
    block = bytearray(64 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    assert peak_rss_bytes() >= rss + 60 * 2**20
    del block


def test_summary_throughput_counts_files_and_input_bytes():
    s = Summary(files=10, ok=9, failed=1, seconds=2.0, peak_rss_bytes=1, input_bytes=50_000_000)
    assert s.throughput() == "5.0 files/s, 25.0 MB/s in"
    assert Summary(1, 1, 0, 0.0, 1, 0).throughput() == ""


def test_table_shows_shapes_stages_times_and_failures():
    # issue 10 redesigned the table: one line per file, stages folded into one cell on
    # wide terminals, failures listed again under it
    console = Console(width=200, record=True, color_system=None)
    console.print(table([ok_record(), bad_record()], Summary(2, 1, 1, 0.5, 90 * 2**20, 3266)))
    text = console.export_text()
    assert "in/a.npy -> out/a.npy" in text
    assert "2x17x23 -> 2x4x6" in text and "float32" in text
    assert "max:k=3,s=2,p=1 12.5 ms; avg:k=2 3.1 ms" in text
    assert "15.6 ms" in text  # pool time
    assert "failed: in/bad.png: cannot read: not a PNG" in text
    assert "1 ok, 1 failed in 0.50 s; 4.0 files/s" in text and "peak RSS 90 MiB" in text


def test_file_names_are_text_not_markup():
    rec = ok_record()
    rec.input, rec.output = "in/z.npz[image]", "out/[bold]z.npz"
    console = Console(width=200, record=True, color_system=None)
    console.print(table([rec], Summary(1, 1, 0, 0.1, 2**20, 10)))
    text = console.export_text()
    assert "in/z.npz[image] -> out/[bold]z.npz" in text


def test_a_long_table_keeps_its_failures_and_says_how_many_rows_it_left_out():
    records = [ok_record() for _ in range(30)]
    for i, r in enumerate(records):
        r.input = f"in/{i:02}.npy"
    records[25] = bad_record()
    console = Console(width=200, record=True, color_system=None)
    console.print(table(records, Summary(30, 29, 1, 1.0, 2**20, 10), max_rows=5))
    text = console.export_text()
    assert [f"in/{i:02}.npy" in text for i in range(5)] == [True, True, True, False, False]
    assert text.index("in/02.npy") < text.index("in/bad.png")  # in the batch's order
    assert "... 26 more files" in text and "29 ok, 1 failed" in text
    everything = Console(width=200, record=True, color_system=None)
    everything.print(table(records, Summary(30, 29, 1, 1.0, 2**20, 10)))
    assert "in/29.npy" in everything.export_text()


def test_summary_counts_worker_processes_in_the_peak():
    alone = Summary.of((3, 0), 1.0, 100)
    with_workers = Summary.of((3, 0), 1.0, 100, worker_peak=50 * 2**20, workers=2)
    assert with_workers.peak_rss_bytes - alone.peak_rss_bytes >= 100 * 2**20
