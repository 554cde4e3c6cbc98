"""cli_batch.py: when a batch without -j is worth worker processes."""

from poolcli.batch.jobs import Job
from poolcli.batch.runner import PROCESS_MIN_BYTES, worth_processes


def test_worker_processes_only_for_batches_that_repay_their_start_up(tmp_path):
    small = [tmp_path / f"{i}.png" for i in range(3)]
    for p in small:
        p.write_bytes(b"x" * 1000)
    jobs = [Job(str(p), str(p) + ".out") for p in small]
    assert not worth_processes(jobs)
    assert not worth_processes([Job("-", "-"), Job(str(tmp_path / "gone.png"), "o")])
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(PROCESS_MIN_BYTES)  # sparse: its size is what counts
    assert worth_processes([*jobs, Job(str(big), "o")])
