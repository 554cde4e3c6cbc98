"""Issue 9: a Ctrl-C or SIGTERM during one long in-memory pool stops it within about one
tile (pending tiles never start), writes no output and exits 130.

The executable for the signals; the library for the mechanism (a KeyboardInterrupt in
the thread that waits for the tiles), which needs no signal handling of its own.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from clitools import EXE

from poolcli.core.threads import run_on_threads


def test_a_ctrl_c_in_the_waiting_thread_stops_every_thread_within_one_piece():
    started = []
    lock = threading.Lock()

    def piece(i):
        with lock:
            started.append(i)
        if i == 4:
            # a Ctrl-C: the main thread, waiting for the pieces, gets KeyboardInterrupt
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.02)
        return i

    with pytest.raises(KeyboardInterrupt):
        run_on_threads(piece, range(400), 2)
    # the pieces under way when it came were finished, and no others were started
    assert len(started) <= 4 + 2 * 2, started


def test_a_failed_piece_stops_the_other_threads():
    started = []

    def piece(i):
        started.append(i)
        if i == 3:
            raise ValueError("bad tile")
        time.sleep(0.01)
        return i

    with pytest.raises(ValueError, match="bad tile"):
        run_on_threads(piece, range(400), 2)
    assert len(started) < 20


def test_results_come_in_the_order_of_the_items_with_one_state_per_thread():
    states = []

    def state():
        states.append(object())
        return states[-1]

    out = run_on_threads(lambda i, s: (i * i, id(s)), range(50), 3, state=state)
    assert [v for v, _ in out] == [i * i for i in range(50)]
    assert len(states) == 3 and {s for _, s in out} == {id(s) for s in states}


@pytest.mark.slow
def test_a_signal_stops_one_long_pool_within_a_tile(tmp_path):
    np.save(tmp_path / "big.npy",
            np.random.default_rng(0).random((1500, 1500), dtype=np.float32))
    args = [*EXE, "median", "big.npy", "-k", "7", "-s", "1", "-o", "out.npy"]
    t0 = time.monotonic()
    subprocess.run(args, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    whole = time.monotonic() - t0
    (tmp_path / "out.npy").unlink()
    for signum in (signal.SIGINT, signal.SIGTERM):
        p = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(0.4 * whole)  # start-up and loading done, pooling under way
        t1 = time.monotonic()
        p.send_signal(signum)
        _, err = p.communicate(timeout=300)
        stopped = time.monotonic() - t1
        assert p.returncode == 130, err.decode()
        assert "Traceback" not in err.decode()
        assert err.decode().startswith("poolcli: interrupted"), err.decode()
        # the rest of the run would take 0.6 x whole; a tile takes milliseconds
        assert stopped < whole / 3, (signum, stopped, whole)
        assert sorted(q.name for q in tmp_path.iterdir()) == ["big.npy"]  # no .part
