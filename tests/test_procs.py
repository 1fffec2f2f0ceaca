"""One liveness check: a pid counts only with the start time recorded for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ser_lab import procs
from ser_lab.experiments import launcher
from ser_lab.runs import RunStore


def test_a_pid_is_alive_only_with_its_own_start_time():
    me = os.getpid()
    started = procs.start_time(me)
    assert started is not None and abs(started - time.time()) < 24 * 3600 * 365
    assert procs.is_alive(me) and procs.is_alive(me, started)
    # the same pid with another start time is another process (a reused pid)
    assert not procs.is_alive(me, started - 10.0)
    for bad in (None, 0, -1, True, "123", 2**31):
        assert not procs.is_alive(bad)
    assert procs.start_time(2**31) is None and procs.cmdline(2**31) is None


def test_an_exited_child_is_dead_before_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 20
    while procs.is_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procs.is_alive(child.pid)  # a zombie until wait() below
    child.wait()


def test_stop_never_signals_a_process_that_reuses_the_recorded_pid(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create({})
    # a live process whose command line even names the run, but which started at another
    # time than the one recorded: it must not be taken for the trainer
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "ser_lab", run.run_id]
    )
    try:
        started = procs.start_time(other.pid)
        run.update_status(state="queued", pid=other.pid, pid_started=started - 100.0)
        assert not launcher.stop_run(run)
        assert other.poll() is None  # not signalled
        assert run.live_status()["state"] == "interrupted"  # its recorded process is gone
        run.update_status(pid_started=started)
        assert launcher.stop_run(run, wait_s=5)
        assert other.wait(timeout=10) != 0
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
