"""Issue 10: `poolcli --version` starts without building the Typer app, and the default
-j never puts a small batch into worker processes (speed itself is measured only in
benchmarks/bench_cli.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from poolcli import Pipeline, __version__
from poolcli.batch.jobs import Job
from poolcli.batch.runner import (
    PROCESS_MIN_BYTES,
    PROCESS_MIN_FILES_PER_WORKER,
    BatchOptions,
    worker_count,
)


def test_version_imports_neither_typer_nor_rich(exe):
    probe = ("import sys; from poolcli.cli import main; code = main(['--version']); "
             "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules)); "
             "sys.exit(code)")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0
    assert p.stdout.splitlines() == [f"poolcli {__version__}", "[]"]
    real = exe("--version")
    assert real.returncode == 0 and real.stdout.decode().strip() == f"poolcli {__version__}"


def test_version_among_other_words_still_goes_through_the_app(cli):
    p = cli("--version", "max")
    assert p.returncode == 0 and __version__ in p.stdout.decode()


def _jobs(tmp_path, n, size):
    jobs = []
    for i in range(n):
        f = tmp_path / f"f{i}.png"
        with open(f, "wb") as fh:
            fh.truncate(size)  # sparse: only the size counts
        jobs.append(Job(str(f), str(tmp_path / f"o{i}.png")))
    return jobs


@pytest.mark.parametrize("n", [2, 3, 2 * PROCESS_MIN_FILES_PER_WORKER - 1])
def test_a_few_big_files_stay_in_this_process_by_default(tmp_path, monkeypatch, n):
    monkeypatch.setattr("poolcli.batch.runner.resolve_threads", lambda jobs: jobs or 2)
    jobs = _jobs(tmp_path, n, PROCESS_MIN_BYTES)
    opts = BatchOptions(Pipeline.parse("avg:k=2"), tuple(j.src for j in jobs))
    assert worker_count(opts, jobs) == 1
    # asked for explicitly, -j still gets its workers
    assert worker_count(BatchOptions(opts.pipeline, opts.inputs, jobs=2), jobs) == 2


def test_a_big_batch_uses_every_core_by_default(tmp_path, monkeypatch):
    monkeypatch.setattr("poolcli.batch.runner.resolve_threads", lambda jobs: jobs or 2)
    jobs = _jobs(tmp_path, 2 * PROCESS_MIN_FILES_PER_WORKER, PROCESS_MIN_BYTES // 4)
    opts = BatchOptions(Pipeline.parse("avg:k=2"), tuple(j.src for j in jobs))
    assert worker_count(opts, jobs) == 2
    small = _jobs(tmp_path / "s" if (tmp_path / "s").mkdir() is None else tmp_path, 200, 10)
    assert worker_count(opts, small) == 1  # 2 kB in all: not worth a process
