"""Crash safety and concurrency of training runs (docs/reliability.md, sections 3-4).

Everything runs the real CLI (`python -m ser_lab train ...`) as separate processes on the tiny
synthetic corpus (3 epochs, 2 folds):
- two trainings started at once finish into separate folders while the store is listed over
  and over; a third process asked to resume one of them meanwhile is refused by the lock;
- a training killed with SIGKILL four times (at random moments and in the middle of two file
  writes) leaves every run folder readable, shows as interrupted, resumes to exactly the
  results of the uninterrupted run with the same seed, and touches no other run folder.
The two slow tests share one module fixture (the concurrent pair is also the reference run of
the kill test). test_trainer.py has the single-kill version this extends.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ser_lab.errors import RunError
from ser_lab.paths import PROJECT_ROOT
from ser_lab.runs import Run, RunStore

TRAIN = ["train", "--corpus", "synthetic", "--size", "tiny", "--epochs", "3", "--folds", "2",
         "--workers", "1"]
REFERENCE = [*TRAIN, "--seed", "5", "--lam", "0.3", "--name", "reference"]
OTHER = [*TRAIN, "--seed", "6", "--fold", "0", "--name", "other"]
LIVE_STATES = {"queued", "running", "done"}
TIMEOUT_S = 600

# Runs `python -m ser_lab`, optionally stopping half-way through one atomic file write: with
# SER_LAB_TEST_PAUSE_WRITE="<file name>:<n>:<marker>" the n-th write of a file of that name
# writes half its bytes to the temporary file, fsyncs, creates <marker> and sleeps, so the test
# can SIGKILL the process in the middle of that write. Without the variable: the plain CLI.
HOOK = '''
import os, runpy, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the project root, as `python -m ser_lab` would have it

spec = os.environ.get("SER_LAB_TEST_PAUSE_WRITE")
if spec:
    import ser_lab.fileio as fileio

    name, nth, marker = spec.split(":", 2)
    original = fileio.atomic_write_bytes
    seen = {"n": 0}

    def paused(path, data):
        path = Path(path)
        if path.name == name:
            seen["n"] += 1
            if seen["n"] == int(nth):
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                    Path(marker).write_text(tmp)
                    time.sleep(3600)
        return original(path, data)

    fileio.atomic_write_bytes = paused
sys.argv = ["ser_lab", *sys.argv[1:]]
runpy.run_module("ser_lab", run_name="__main__", alter_sys=True)
'''


def digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in a run folder."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


class Cli:
    """Starts `python -m ser_lab --store STORE ...` processes and cleans up after them."""

    def __init__(self, base: Path, store: Path, cache: Path) -> None:
        self.hook = base / "hooked_cli.py"
        self.hook.write_text(HOOK)
        self.store = store
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SER_LAB_")}
        # One torch thread each: the same arithmetic whether a run trains alone or beside
        # another (and less fighting over the 2 cores of a small CI machine).
        self.env.update(SER_LAB_CACHE=str(cache), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.logs = base / "logs"
        self.logs.mkdir()
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, pause: str | None = None) -> subprocess.Popen:
        """Start a process; its stdout and stderr go to files (a pipe nobody reads would fill
        up with progress bars and block it), read back with `output`."""
        env = dict(self.env)
        if pause:
            env["SER_LAB_TEST_PAUSE_WRITE"] = pause
        n = len(self.procs)
        with open(self.logs / f"{n}.out", "wb") as out, open(self.logs / f"{n}.err", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(self.hook), "--store", str(self.store), *args],
                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=err,
            )
        proc.log_index = n  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen) -> tuple[str, str]:
        n = proc.log_index  # type: ignore[attr-defined]
        return (self.logs / f"{n}.out").read_text(), (self.logs / f"{n}.err").read_text()

    def run(self, *args: str) -> subprocess.CompletedProcess:
        proc = self.start(*args)
        proc.wait(timeout=TIMEOUT_S)
        return subprocess.CompletedProcess(proc.args, proc.returncode, *self.output(proc))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def wait_for(predicate, what: str, timeout: float = TIMEOUT_S, every: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def run_id_of(store: Path, name: str) -> str | None:
    for row in RunStore(store).list():
        if row.name == name:
            return row.run_id
    return None


def status_of(store: Path, run_id: str) -> dict:
    try:
        return Run(store / run_id).read_status()
    except RunError:
        return {}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two trainings started at the same moment on a cold cache (both generate the corpus and
    its features at once), the store listed every 0.1 s meanwhile; while the reference run
    trains, a third process tries `train --resume` on it."""
    base = tmp_path_factory.mktemp("crash")
    store = base / "runs"
    cli = Cli(base, store, base / "cache")
    try:
        a, b = cli.start(*REFERENCE), cli.start(*OTHER)
        seen: dict[str, set[str]] = {}
        errors: list[str] = []
        polls = 0
        intruder = None
        while a.poll() is None or b.poll() is None:
            try:
                rows = RunStore(store).list()
            except Exception as exc:  # noqa: BLE001 - what the test checks
                errors.append(f"{type(exc).__name__}: {exc}")
                rows = []
            polls += 1
            for row in rows:
                seen.setdefault(row.name, set()).add(row.state)
            ref = next((r for r in rows if r.name == "reference"), None)
            if intruder is None and ref is not None and ref.state == "running":
                intruder = cli.start("train", "--resume", ref.run_id)
            time.sleep(0.1)
            if polls > TIMEOUT_S * 10:
                raise AssertionError("the two trainings did not finish")
        assert a.returncode == 0 and b.returncode == 0, (cli.output(a), cli.output(b))
        assert intruder is not None, "the reference run was never seen running"
        intruder.wait(timeout=TIMEOUT_S)
        intruder_out, intruder_err = cli.output(intruder)
        yield {
            "base": base, "store": store, "cli": cli, "seen": seen, "errors": errors,
            "polls": polls, "pid_a": a.pid,
            "ids": {"reference": run_id_of(store, "reference"), "other": run_id_of(store, "other")},
            "intruder": (intruder.returncode, intruder_out, intruder_err),
        }
    finally:
        cli.close()


# ----------------------------------------------------------------------------- concurrency


@pytest.mark.slow
def test_two_trainings_at_once_finish_into_separate_folders(pair: dict) -> None:
    store, ids = pair["store"], pair["ids"]
    assert ids["reference"] and ids["other"] and ids["reference"] != ids["other"]
    rows = {row.run_id: row for row in RunStore(store).list()}
    assert set(rows) == set(ids.values())
    for name, run_id in ids.items():
        run = Run(store / run_id)
        assert rows[run_id].state == "done" and rows[run_id].problem is None
        assert run.config["name"] == name
        assert run.read_results()["pooled"]["UA"] is not None
    assert Run(store / ids["reference"]).config["train"]["seed"] == 5
    assert Run(store / ids["other"]).config["train"]["seed"] == 6
    assert len(Run(store / ids["reference"]).read_results()["folds"]) == 2
    assert len(Run(store / ids["other"]).read_results()["folds"]) == 1


@pytest.mark.slow
def test_listing_while_two_runs_write_never_fails(pair: dict) -> None:
    assert pair["errors"] == []
    assert pair["polls"] > 20
    assert set(pair["seen"]) == {"reference", "other"}
    for name, states in pair["seen"].items():
        assert states <= LIVE_STATES, (name, states)  # never broken, interrupted or failed
        assert {"running", "done"} <= states, (name, states)


@pytest.mark.slow
def test_a_second_resume_of_a_training_run_is_refused(pair: dict) -> None:
    code, out, err = pair["intruder"]
    run_id = pair["ids"]["reference"]
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: run {run_id} is already being trained by process {pair['pid_a']}"
    )
    assert "Traceback" not in err
    run = Run(pair["store"] / run_id)
    epochs = [(m["fold"], m["epoch"]) for m in run.read_metrics()]
    assert sorted(epochs) == [(f, e) for f in (0, 1) for e in (1, 2, 3)]  # each exactly once
    assert run.read_status()["pid"] == pair["pid_a"]


@pytest.mark.slow
def test_resume_refused_while_locked_touches_nothing(pair: dict) -> None:
    run = Run(pair["store"] / pair["ids"]["other"])
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom ser_lab.runs import Run\n"
         "with Run(sys.argv[1]).lock():\n    print('locked', flush=True)\n    time.sleep(600)\n",
         str(run.dir)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = digest(run.dir)
        done = pair["cli"].run("train", "--resume", run.run_id)
        assert done.returncode == 2
        assert f"error: run {run.run_id} is already being trained by process {holder.pid}" in done.stderr
        assert digest(run.dir) == before
    finally:
        holder.kill()
        holder.communicate()


def test_listing_probes_never_block_a_trainer_taking_the_lock(tmp_path: Path) -> None:
    """`is_locked` probes by taking the lock for an instant; a trainer starting at that instant
    must not be told the run is being trained (the app lists runs every second)."""
    store = RunStore(tmp_path / "runs")
    run = store.create({"epochs": 1})
    run.update_status(state="running")
    stop = threading.Event()
    probes = {"n": 0, "locked": 0}

    def probe() -> None:
        while not stop.is_set():
            probes["locked"] += Run(run.dir).is_locked()
            store.list()
            probes["n"] += 1

    thread = threading.Thread(target=probe)
    thread.start()
    failures, attempts = 0, 0
    try:
        deadline = time.time() + 2.0
        while time.time() < deadline:
            attempts += 1
            try:
                with run.lock():
                    pass
            except RunError:
                failures += 1
    finally:
        stop.set()
        thread.join()
    assert attempts > 50 and probes["n"] > 50
    assert failures == 0


def test_listing_never_calls_a_run_that_just_finished_interrupted(tmp_path: Path) -> None:
    """The listing reads status.json, then checks the lock: a trainer that writes "done" and
    releases the lock in between must not be shown as killed. Here short "trainings" follow
    each other as fast as they can (lock, running, done, release, queued again)."""
    store = RunStore(tmp_path / "runs")
    run = store.create({})
    stop = threading.Event()
    cycles = {"n": 0}

    def trainer() -> None:
        while not stop.is_set():
            with Run(run.dir).lock():
                run.update_status(state="running")
                time.sleep(0.002)
                run.update_status(state="done")
            run.update_status(state="queued", pid=None)
            cycles["n"] += 1

    thread = threading.Thread(target=trainer)
    thread.start()
    wrong = []
    try:
        deadline = time.time() + 2.0
        while time.time() < deadline:
            row = store.list()[0]
            if row.state not in LIVE_STATES:
                wrong.append((row.state, row.problem))
    finally:
        stop.set()
        thread.join()
    assert cycles["n"] > 20
    assert wrong == []


def test_two_probes_never_see_a_lock_nobody_holds(tmp_path: Path) -> None:
    run = RunStore(tmp_path / "runs").create({})
    seen = []

    def probe() -> None:
        seen.append(sum(run.is_locked() for _ in range(2000)))

    threads = [threading.Thread(target=probe) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [0, 0]


# ----------------------------------------------------------------------------- kill -9


def check_store(store: Path, killed: str, untouched: dict[str, dict[str, str]]) -> Run:
    """Every run folder readable; the killed run interrupted; the others byte-identical."""
    rows = {row.run_id: row for row in RunStore(store).list()}
    assert set(rows) == {killed, *untouched}
    for run_id, row in rows.items():
        run = Run(store / run_id)
        assert run.config["format_version"] == 1 and run.read_status()["state"] in LIVE_STATES | {"interrupted"}
        metrics = run.read_metrics()
        keys = [(m["fold"], m["epoch"]) for m in metrics]
        assert len(keys) == len(set(keys)), f"duplicate metric lines in {run_id}"
        assert all(np.isfinite(m["total_loss"]) for m in metrics)
        if run_id != killed:
            assert row.state == "done"
            assert digest(run.dir) == untouched[run_id], f"{run_id} was touched"
    row = rows[killed]
    assert row.state == "interrupted", (row.state, row.problem)
    assert "killed or crashed" in row.problem and row.UA is None
    return Run(store / killed)


@pytest.mark.slow
def test_kill_9_four_times_then_resume_gives_the_uninterrupted_result(pair: dict) -> None:
    store, cli, base = pair["store"], pair["cli"], pair["base"]
    ref = Run(store / pair["ids"]["reference"])
    untouched = {run_id: digest(store / run_id) for run_id in pair["ids"].values()}
    rng = random.Random()
    log = []

    def kill(proc: subprocess.Popen, moment: str) -> None:
        exited = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.append(moment + (" (had already exited)" if exited else ""))

    # 1. A new run, killed at a random moment 0.5-2.5 s after it starts training.
    proc = cli.start(*REFERENCE[:-1], "killed")
    killed = wait_for(lambda: run_id_of(store, "killed"), "the run folder")
    wait_for(lambda: status_of(store, killed).get("state") == "running", "state running")
    delay = rng.uniform(0.5, 2.5)
    time.sleep(delay)
    kill(proc, f"{delay:.2f} s after it started training")
    check_store(store, killed, untouched)

    # 2-3. Resumed, killed half-way through writing fold 0's resume state (last.pt), then
    # half-way through fold 0's embeddings.npz (its model.pt is already complete then).
    for n, file in enumerate(("last.pt", "embeddings.npz")):
        marker = base / f"paused-{n}"
        proc = cli.start("train", "--resume", killed, pause=f"{file}:1:{marker}")
        tmp = Path(wait_for(lambda m=marker: m.is_file() and m.read_text(), f"a paused {file} write"))
        assert tmp.is_file() and tmp.parent.name == "fold_0"
        kill(proc, f"in the middle of writing {tmp.parent.name}/{file}")
        run = check_store(store, killed, untouched)
        assert not (run.fold_dir(0) / "embeddings.npz").exists()
    assert (run.fold_dir(0) / "model.pt").is_file() and (run.fold_dir(0) / "last.pt").is_file()

    # 4. Resumed again, killed at a random moment after fold 1 has finished an epoch. On a fast
    # machine fold 1 can finish within the random delay, so the process is held at its last
    # file (fold 1's embeddings.npz, the second one this resume writes, after fold 0's): the
    # kill always lands in a live training, at the latest in the middle of that write.
    marker = base / "paused-fold-1"
    proc = cli.start("train", "--resume", killed, pause=f"embeddings.npz:2:{marker}")
    wait_for(lambda: any(m["fold"] == 1 for m in Run(store / killed).read_metrics()), "fold 1")
    delay = rng.uniform(0.0, 2.0)
    deadline = time.time() + delay
    while time.time() < deadline and not marker.is_file():
        time.sleep(0.01)
    assert proc.poll() is None, cli.output(proc)
    kill(proc, f"{delay:.2f} s after fold 1's first epoch" + (" (at the held write)" if marker.is_file() else ""))
    run = check_store(store, killed, untouched)

    # 5. The last resume runs to the end.
    done = cli.run("train", "--resume", killed)
    assert done.returncode == 0, (log, done.stderr)
    rows = {row.run_id: row for row in RunStore(store).list()}
    assert rows[killed].state == "done" and rows[killed].problem is None, log
    for run_id, files in untouched.items():
        assert digest(store / run_id) == files, f"{run_id} was touched"

    # Exactly the uninterrupted run: scores, every prediction, every feature.
    assert run.read_results()["pooled"] == ref.read_results()["pooled"], log
    assert run.read_results()["folds"] == ref.read_results()["folds"], log
    for k in (0, 1):
        mine, theirs = run.load_embeddings(k), ref.load_embeddings(k)
        assert np.array_equal(mine["utt_ids"], theirs["utt_ids"])
        assert np.array_equal(mine["preds"], theirs["preds"]), log
        np.testing.assert_allclose(mine["z"], theirs["z"], rtol=0, atol=1e-5)
    epochs = [(m["fold"], m["epoch"]) for m in run.read_metrics()]
    assert sorted(epochs) == [(f, e) for f in (0, 1) for e in (1, 2, 3)], log
    mine = {(m["fold"], m["epoch"]): m["val_UA"] for m in run.read_metrics()}
    theirs = {(m["fold"], m["epoch"]): m["val_UA"] for m in ref.read_metrics()}
    assert mine == theirs, log
    assert not list(run.dir.glob("fold_*/last.pt"))  # resume state removed once a fold is done
    assert json.loads((run.dir / "status.json").read_text())["state"] == "done"
