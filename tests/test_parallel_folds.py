"""Folds trained in parallel processes (ser_lab.learn.parallel) and maps cached when a fold ends."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ser_lab.analysis import maps, projection
from ser_lab.app.run_tables import progress_text
from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError
from ser_lab.learn.parallel import resolve_parallel_folds, threads_per_fold
from ser_lab.learn.trainer import new_run, train_run
from ser_lab.runs import Run, RunStore

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"time", "train_time_s", "utt_per_s"}  # wall-clock fields of a metrics line


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "runs"))
    return RunStore(tmp_path / "runs")


def tiny(**kw) -> TrainConfig:
    base = dict(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=3, patience=1,
                n_folds=2, workers=1, seed=4, lam=0.3, precompute_maps=False)
    return TrainConfig(**{**base, **kw})


def _train(store, cfg, progress=None):
    run = new_run(cfg, store)
    with run.lock():
        train_run(run, progress=progress)
    return run


def _without_timing(records: list[dict]) -> list[dict]:
    out = [{k: v for k, v in m.items() if k not in TIMING} for m in records]
    return sorted(out, key=lambda m: (m["fold"], m["epoch"]))


def test_parallel_folds_are_bit_identical_to_sequential(env, monkeypatch):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # sequential with the threads each of the 2 workers gets
    try:
        seq = _train(env, tiny(parallel_folds=1))
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the run's budget: 2 threads
    events = []
    par = _train(env, tiny(parallel_folds=2), progress=events.append)
    for k in (0, 1):
        a, b = seq.load_embeddings(k), par.load_embeddings(k)
        for key in ("z", "probs", "preds", "labels", "utt_ids", "split", "centers"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"fold {k} {key}")
    assert _without_timing(seq.read_metrics()) == _without_timing(par.read_metrics())
    assert seq.read_results() == par.read_results()
    assert par.read_status()["state"] == "done" and par.read_status()["progress"] == 1.0
    # progress events of both folds reach the caller, with each fold's end and its stop reason
    assert {e["fold"] for e in events if e.get("epoch_done")} == {0, 1}
    done = [e for e in events if e.get("fold_done")]
    assert sorted(e["fold"] for e in done) == [0, 1] and all(e["stop_reason"] for e in done)
    counts = [e["done_epochs"] for e in events if "done_epochs" in e]
    assert counts == sorted(counts) and 0 < counts[-1] <= 2 * 3  # across folds, never backwards


def test_resolving_how_many_folds_train_at_once():
    assert resolve_parallel_folds(None, 5, 2, "cpu") == 1  # the default until measured
    assert resolve_parallel_folds("auto", 5, 2, "cpu") == 2
    assert resolve_parallel_folds("auto", 1, 16, "cpu") == 1  # never more than folds left
    assert resolve_parallel_folds("auto", 5, 4, "cuda") == 1
    assert resolve_parallel_folds(3, 2, 1, "cpu") == 2
    assert threads_per_fold(2, 2) == 1 and threads_per_fold(2, 8) == 4 and threads_per_fold(4, 2) == 1
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(ConfigError, match="parallel_folds"):
            tiny(parallel_folds=bad).validate()
    tiny(parallel_folds="auto").validate()


def test_the_train_page_shows_every_fold_in_training():
    status = {"state": "running", "fold": 1, "epoch": 2, "n_folds": 5, "n_epochs": 8,
              "progress": 0.25, "eta_s": 90, "folds_active": [{"fold": 0, "epoch": 3}, {"fold": 1, "epoch": 2}]}
    text = progress_text(status)
    assert "folds 0 (epoch 3/8), 1 (epoch 2/8) in parallel (5 to train)" in text
    assert "25 %" in text and "ETA" in text
    assert progress_text({**status, "folds_active": None}).startswith("fold 1 (5 to train) · epoch 2/8")


def _append_many(path: str, tag: int, n: int) -> None:
    run = Run(path)
    for i in range(n):
        run.append_metrics({"fold": tag, "epoch": i})


def test_metrics_appends_from_several_processes_lose_nothing(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"train": {}}, name="metrics")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(run.dir), tag, 60)) for tag in range(3)]
    for p in procs:
        p.start()
    while any(p.is_alive() for p in procs):  # a resumed fold rewriting the file meanwhile
        run.append_metrics({"fold": 99, "epoch": 1})
        run.rewrite_metrics(lambda r: r["fold"] != 99)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    records = run.read_metrics()
    kept = sorted((r["fold"], r["epoch"]) for r in records if r["fold"] != 99)
    assert kept == [(t, i) for t in range(3) for i in range(60)]
    assert len(run.metrics_path.read_text().splitlines()) == len(records)  # no glued lines


def test_maps_are_cached_when_a_fold_ends_and_equal_the_pages(env):
    run = _train(env, tiny(epochs=1, folds=[0], precompute_maps=True))
    assert run.read_status().get("problem") is None
    for method in projection.METHODS:
        cached = maps.project_fold(str(run.dir), 0, method)  # the Compare page's call
        assert cached.from_cache, method
        fresh = maps.project_fold(str(run.dir), 0, method, use_cache=False)
        np.testing.assert_array_equal(cached.xy, fresh.xy)
        np.testing.assert_array_equal(cached.centers_xy, fresh.centers_xy)
        for s in ("train", "val", "test"):
            np.testing.assert_array_equal(cached.class_means_xy[s], fresh.class_means_xy[s])


def test_a_failing_map_does_not_fail_the_run(env, monkeypatch):
    def broken(run, fold):
        raise MemoryError("no room for a map")

    monkeypatch.setattr(maps, "precompute_maps", broken)
    run = _train(env, tiny(epochs=1, precompute_maps=True))
    status = run.read_status()
    assert status["state"] == "done" and run.read_results() is not None
    assert "fold 0: maps not precomputed (MemoryError: no room for a map)" in status["problem"]
    assert "fold 1" in status["problem"]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_9_of_the_parent_ends_its_workers_and_the_run_resumes(tmp_path):
    store = tmp_path / "runs"
    env = {**os.environ, "SER_LAB_CACHE": str(tmp_path / "cache")}
    cli = [sys.executable, "-m", "ser_lab", "--store", str(store), "train", "--corpus", "synthetic",
           "--size", "tiny", "--epochs", "3", "--folds", "2", "--workers", "1", "--parallel-folds", "2"]
    proc = subprocess.Popen(cli, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 300, []
    while time.time() < deadline and proc.poll() is None:
        runs = list(store.glob("*/metrics.jsonl")) if store.exists() else []
        workers = [p for p in _children(proc.pid) if _alive(p)]
        if runs and runs[0].read_text().strip() and len(workers) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None and len(workers) >= 2, "the workers did not start training"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "workers trained on after their parent died"
    (summary,) = RunStore(store).list()
    assert summary.state == "interrupted"
    done = subprocess.run(cli[:6] + ["--resume", summary.run_id], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = RunStore(store).get(summary.run_id)
    assert run.read_status()["state"] == "done"
    epochs = [(m["fold"], m["epoch"]) for m in run.read_metrics()]
    assert len(epochs) == len(set(epochs))  # every epoch recorded exactly once
