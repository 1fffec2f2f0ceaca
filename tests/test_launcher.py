"""Training runs started as their own processes: launch, log, stop, resume, grids."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, RunError
from ser_lab.experiments import launcher
from ser_lab.learn.trainer import new_run
from ser_lab.runs import RunStore
from tests.app_fixtures import TINY


@pytest.fixture
def store(app_store, tmp_path, monkeypatch) -> RunStore:
    # the tiny corpus and its features are already in the session cache
    monkeypatch.setenv("SER_LAB_CACHE", str(app_store.cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "runs"))
    return RunStore(tmp_path / "runs")


def test_launch_trains_detached_and_logs(store):
    run = launcher.launch_training(replace(TINY, epochs=1), store, "detached", threads=1)
    pid = run.read_status()["pid"]
    assert isinstance(pid, int) and pid != os.getpid()
    try:
        assert os.getsid(pid) != os.getsid(0)  # its own session: the app's Ctrl-C does not reach it
    except ProcessLookupError:
        pass  # already finished
    assert launcher.wait_for(run, timeout=600) == "done"
    results = run.read_results()
    assert results is not None and 0 <= results["mean"]["UA"] <= 1
    log = launcher.log_tail(run, lines=200)
    assert f"run {run.run_id}" in log
    assert run.config["train"]["epochs"] == 1
    assert launcher.stop_run(run) is False  # nothing trains a finished run
    with pytest.raises(RunError, match="finished"):
        launcher.resume_run(run, store)


def test_stop_marks_interrupted_and_resume_finishes_without_duplicate_epochs(store):
    run = launcher.launch_training(
        replace(TINY, epochs=3, snapshot_every=0), store, "stop me", threads=1
    )
    deadline = time.monotonic() + 600
    while not run.read_metrics():  # stop after the first completed epoch
        assert run.live_status()["state"] in ("queued", "running"), launcher.log_tail(run)
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert launcher.stop_run(run, wait_s=120) is True
    assert launcher.wait_for(run, timeout=120) == "interrupted"
    assert run.read_results() is None

    launcher.resume_run(run, store, threads=1)
    assert launcher.wait_for(run, timeout=600) == "done"
    epochs = [m["epoch"] for m in run.read_metrics()]
    assert sorted(epochs) == [1, 2, 3]  # each epoch exactly once
    assert "--- started" in (run.dir / launcher.LOG_NAME).read_text()


def test_stopping_a_process_that_is_still_starting(store):
    run = launcher.launch_training(TINY, store, "early stop", threads=1)
    assert launcher.stop_run(run, wait_s=60) is True
    assert run.live_status()["state"] == "interrupted"


def test_resume_refuses_a_run_being_trained(store):
    run = new_run(TINY, store, name="locked")
    with run.lock():
        with pytest.raises(RunError, match="already being trained"):
            launcher.resume_run(run, store)


def test_stop_ignores_an_unrelated_pid(store):
    run = new_run(TINY, store, name="not mine")
    run.update_status(state="running", pid=os.getpid())  # a live pid that is not its trainer
    assert launcher.stop_run(run) is False


def test_grid_trains_the_baseline_once_per_seed():
    from ser_lab.experiments.sweep import expand, point_key, run_name

    base = TrainConfig(epochs=2)
    spec = launcher.sweep_spec(base, [0, 0.3, 1.0], [0.1, 0.5], [0, 1], "sweep-x")
    grid = expand(spec)  # the one grid expansion, with the one run-name format
    keys = [(c.lam, c.alpha, c.seed) for c in grid]
    assert len(keys) == len(set(keys)) == 2 * (1 + 2 * 2)
    assert sum(c.lam == 0 for c in grid) == 2
    assert all(c.sweep_id == "sweep-x" and c.epochs == 2 for c in grid)
    assert run_name(spec.sweep_id, point_key(grid[0], spec.axes())) == "sweep-x-lam0-alpha0.1-mel-s0"
    with pytest.raises(ConfigError, match="at least one"):
        launcher.sweep_spec(base, [], [0.5], [0], "s")
    with pytest.raises(ConfigError, match="lambda"):
        launcher.sweep_spec(base, [-1], [0.5], [0], "s")


def test_sweep_command_reads_back_as_the_same_spec(store):
    from ser_lab.cli import build_parser, spec_from_args

    base = replace(TINY, epochs=2, root=None)
    spec = launcher.sweep_spec(base, [0, 0.3, 1], [0.1, 0.5], [0, 1], "sweep-roundtrip")
    assert spec.points[0] == {"lam": 0.0, "alpha": 0.1}  # the baseline once
    assert len(spec.points) == 1 + 2 * 2 and spec.seeds == [0, 1]
    cmd = launcher.sweep_command(spec, store)
    assert cmd[1:3] == ["-m", "ser_lab"]
    again = spec_from_args(build_parser().parse_args(cmd[3:]))
    assert again.base == spec.base and again.points == spec.points and again.seeds == spec.seeds
    assert again.sweep_id == "sweep-roundtrip"
    assert again.base["corpus_options"] == {"size": "tiny"} and again.base["folds"] == [0]
    with pytest.raises(ConfigError):
        launcher.sweep_spec(base, [0.3], [1.5], [0])  # α out of range: refused before launching


def test_sweep_runs_every_point_in_one_process(store):
    from ser_lab.experiments.sweep import read_manifest

    sweep_id, pid = launcher.launch_sweep(
        replace(TINY, epochs=1, snapshot_every=0), [0, 0.3], [0.5], [0], store
    )
    assert launcher.sweep_process(store, sweep_id) == pid
    deadline = time.monotonic() + 600
    while launcher.sweep_process(store, sweep_id) is not None:
        assert time.monotonic() < deadline, launcher.sweep_files(store, sweep_id)[0].read_text()
        time.sleep(0.5)
    manifest = read_manifest(store, sweep_id)
    assert [p["state"] for p in manifest["points"]] == ["done", "done"]
    runs = [s for s in store.list() if s.sweep_id == sweep_id]
    assert sorted(s.lam for s in runs) == [0.0, 0.3] and all(s.state == "done" for s in runs)
    assert launcher.stop_sweep(store, sweep_id) is False
    with pytest.raises(RunError, match="no sweep"):
        launcher.resume_sweep(store, "sweep-never-launched")
    with pytest.raises(ConfigError, match="invalid sweep id"):
        launcher.sweep_files(store, "../escape")


def test_threads_must_be_positive(store):
    run = new_run(TINY, store)
    with pytest.raises(ConfigError, match="threads"):
        launcher.start_process(run, store, threads=0)


def test_log_tail_keeps_the_last_state_of_progress_bars(store):
    run = new_run(TINY, store)
    (run.dir / launcher.LOG_NAME).write_text(
        "run x\nfeatures [--] 10%\rfeatures [##] 100%\nline 3\n"
    )
    assert launcher.log_tail(run) == "run x\nfeatures [##] 100%\nline 3"
    assert launcher.log_tail(run, lines=1) == "line 3"


def test_quick_start_preset_is_a_valid_pair():
    cfg = TrainConfig(**launcher.QUICK_START).validate()
    assert cfg.corpus == "synthetic" and cfg.folds == [0] and cfg.snapshot_every == 1
    assert launcher.QUICK_START_LAMBDA == 0.3 and launcher.QUICK_START_ALPHA == 0.5
