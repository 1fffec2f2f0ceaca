"""Start, stop and resume training runs as their own processes (what the app's buttons do).

A run started from the app must outlive the page that started it: closing the tab, reloading
or opening a second tab must neither stop it nor start it twice. So the app never trains in
its own process. It creates the run folder first (`ser_lab.learn.trainer.new_run`), then starts

    python -m ser_lab --store STORE train --resume RUN_ID

detached (a new session, stdin closed, stdout and stderr to RUN_DIR/train.log) and records the
child's pid in status.json. From then on the pages only read the run folder. Who trains a run
is decided by the run's lock (`Run.lock`), so a second launch of the same run fails in the
child with a clear message instead of training it twice.

Stopping sends SIGTERM to the process that holds the run's lock (never to a pid that merely
appears in status.json and might have been reused by an unrelated process); the trainer
finishes its current batch and marks the run "interrupted". Resuming starts the same command
again; the trainer continues from the last completed epoch.

CPU threads: two or more trainings side by side on a small machine are much slower when each
uses every core (they fight over the same cores), so a launch can pin the child's torch
threads (`threads=`, through OMP_NUM_THREADS / MKL_NUM_THREADS).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ser_lab import fileio, procs
from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, RunError
from ser_lab.learn.trainer import new_run
from ser_lab.paths import PROJECT_ROOT
from ser_lab.runs import ACTIVE_STATES, Run, RunStore

LOG_NAME = "train.log"

# The one-click preset of the home page, chosen by measurement (bench/quick_start.py, seeds
# 0-9: see README "The quick start"): the built-in corpus at its default size (576 utterances,
# 12 speakers), one speaker-independent fold of 4 (3 speakers held out for test, 144
# utterances), 8 epochs, batch 16 and lr 1e-3, no augmentation. The paper's batch 32 and
# 3e-4 make too few updates to learn much in 8 epochs; SpecAugment slows early training, and
# with it the center-loss arm's test classes were not reliably tighter within this budget (2 of
# 3 seeds, against 3 of 3 without). Both arms get exactly this preset; only λ differs.
QUICK_START = dict(
    corpus="synthetic",
    root=None,
    corpus_options={"size": "default"},
    features="mel",
    epochs=8,
    patience=0,  # all 8 epochs; the best-validation epoch is still the one kept
    n_folds=4,
    folds=[0],
    protocol="speaker",
    seed=0,
    batch_size=16,
    lr=1e-3,
    augment=False,
    normalise="corpus",  # the preset measured over seeds 0-9 (bench/results/quick_start.json),
    channels_last=False,  # in the layout it was measured in (re-measure before changing either)
    snapshot_every=1,
    snapshot_size=96,  # z of 64 training + 32 test utterances per epoch, for the animation
    workers=1,
)
QUICK_START_LAMBDA = 0.3
QUICK_START_ALPHA = 0.5


# ----------------------------------------------------------------------------- starting


def train_command(run: Run, store: RunStore) -> list[str]:
    """The command line that trains (or resumes) `run` of `store`."""
    return [
        sys.executable,
        "-m",
        "ser_lab",
        "--store",
        str(Path(store.root).resolve()),
        "train",
        "--resume",
        run.run_id,
    ]


def _child_env(store: RunStore, threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["SER_LAB_CHECKPOINTS"] = str(Path(store.root).resolve())
    # The child must import this very ser_lab, whatever the caller's working directory.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an int >= 1, got {threads!r}")
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def _reap(proc: subprocess.Popen) -> None:
    """Wait for the child in a daemon thread, so a finished trainer does not stay a zombie
    of the (long-lived) app process."""
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def start_process(run: Run, store: RunStore, *, threads: int | None = None) -> int:
    """Start the detached training process of an existing run folder; returns its pid."""
    env = _child_env(store, threads)
    with open(run.dir / LOG_NAME, "ab") as log:
        log.write(f"\n--- started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            train_command(run, store),
            cwd=str(PROJECT_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the app, not by Ctrl-C in its terminal
            close_fds=True,
        )
    _reap(proc)
    run.update_status(pid=proc.pid, pid_started=procs.start_time(proc.pid))
    return proc.pid


def launch_training(
    cfg: TrainConfig,
    store: RunStore | None = None,
    name: str | None = None,
    *,
    threads: int | None = None,
) -> Run:
    """Create a run folder for `cfg` and start training it in its own process."""
    store = store or RunStore()
    run = new_run(cfg.validate(), store, name=name)
    start_process(run, store, threads=threads)
    return run


def quick_start(store: RunStore | None = None, *, seed: int = 0) -> list[Run]:
    """Start the quick-start pair: a baseline and a center-loss run (λ=0.3, α=0.5) on the
    built-in corpus with the fast preset and `seed`, trained side by side (one core each on a
    two-core machine). Returns [baseline, center loss] at once; `ser_lab.experiments.quickstart` waits."""
    store = store or RunStore()
    threads = max(1, (os.cpu_count() or 2) // 2)
    base = TrainConfig(**{**QUICK_START, "seed": seed}).validate()
    runs = [
        launch_training(replace(base, lam=0.0), store, "quick baseline", threads=threads),
        launch_training(
            replace(base, lam=QUICK_START_LAMBDA, alpha=QUICK_START_ALPHA),
            store,
            "quick center loss",
            threads=threads,
        ),
    ]
    return runs


# ----------------------------------------------------------------------------- sweeps

# TrainConfig fields a sweep sets per point or itself; every other field is shared (--set).
_SWEEP_OWN = ("lam", "alpha", "seed", "sweep_id", "corpus", "classes", "root")


def _cli_value(value: object) -> str:
    """A TrainConfig value as `python -m ser_lab sweep --set FIELD=VALUE` reads it back."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def sweep_spec(
    base: TrainConfig,
    lams: Sequence[float],
    alphas: Sequence[float],
    seeds: Sequence[int],
    sweep_id: str | None = None,
):
    """The `ser_lab.experiments.sweep.SweepSpec` of a λ × α grid (`ser_lab.experiments.sweep.lam_alpha_points`: the
    baseline λ = 0 once per seed), every run of it checked by `expand`: a bad value fails
    here, before any process starts."""
    from ser_lab.experiments.sweep import SweepSpec, expand, lam_alpha_points, new_sweep_id

    shared = {k: v for k, v in base.validate().to_dict().items() if k not in _SWEEP_OWN}
    shared.update(corpus=base.corpus, classes=base.classes)
    if base.root:
        shared["root"] = base.root
    spec = SweepSpec(
        base=shared,
        points=lam_alpha_points(lams, alphas),
        seeds=list(seeds),
        sweep_id=sweep_id or new_sweep_id(),
    ).validate()
    expand(spec)
    return spec


def sweep_command(spec, store: RunStore) -> list[str]:
    """`python -m ser_lab --store STORE sweep ...` for a spec (what a terminal user would type)."""
    cmd = [sys.executable, "-m", "ser_lab", "--store", str(Path(store.root).resolve()), "sweep"]
    for name, value in spec.base.items():
        cmd += ["--set", f"{name}={_cli_value(value)}"]
    for point in spec.points:
        cmd += ["--point", *(f"{k}={_cli_value(v)}" for k, v in point.items())]
    cmd += ["--seeds", *(str(s) for s in spec.seeds), "--sweep-id", spec.sweep_id]
    return cmd


def sweep_files(store: RunStore, sweep_id: str) -> tuple[Path, Path]:
    """(log, pid file) of a sweep launched from the app, next to its manifest."""
    from ser_lab.experiments.sweep import sweeps_dir, validate_sweep_id

    folder = sweeps_dir(store)
    validate_sweep_id(sweep_id)
    return folder / f"{sweep_id}.log", folder / f"{sweep_id}.pid"


def _start_sweep(cmd: list[str], store: RunStore, sweep_id: str) -> int:
    log_path, pid_path = sweep_files(store, sweep_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = _child_env(store, None)
    with open(log_path, "ab") as log:
        log.write(f"\n--- started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=str(PROJECT_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _reap(proc)
    # the pid and its start time, so a reused pid is never taken for the sweep
    fileio.atomic_write_text(pid_path, f"{proc.pid} {procs.start_time(proc.pid) or ''}\n")
    return proc.pid


def launch_sweep(
    base: TrainConfig,
    lams: Sequence[float],
    alphas: Sequence[float],
    seeds: Sequence[int] = (0,),
    store: RunStore | None = None,
    *,
    sweep_id: str | None = None,
) -> tuple[str, int]:
    """Start a λ × α grid as ONE detached `python -m ser_lab sweep` process (see
    `ser_lab.experiments.sweep`: one worker per core, each pinned to its share of the threads; features
    extracted once; resumable). Every point is a normal run folder tagged with the sweep id,
    created when its training starts; the sweep's manifest lists all points from the start.
    Returns (sweep id, pid)."""
    store = store or RunStore()
    spec = sweep_spec(base, lams, alphas, seeds, sweep_id)
    return spec.sweep_id, _start_sweep(sweep_command(spec, store), store, spec.sweep_id)


def sweep_process(store: RunStore, sweep_id: str) -> int | None:
    """The pid of the live sweep process launched for `sweep_id`, if any."""
    _, pid_path = sweep_files(store, sweep_id)
    try:
        fields = pid_path.read_text().split()
        pid = int(fields[0])
        started = float(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    if not procs.is_alive(pid, started):
        return None
    cmdline = " ".join(procs.cmdline(pid) or [])
    if "sweep" not in cmdline or sweep_id not in cmdline:
        return None  # not the sweep process (or its command line cannot be read)
    return pid


def stop_sweep(store: RunStore, sweep_id: str) -> bool:
    """SIGTERM the sweep process: its runs stop after their current batch (interrupted)."""
    pid = sweep_process(store, sweep_id)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    return True


def resume_sweep(store: RunStore, sweep_id: str) -> int:
    """Start `python -m ser_lab sweep --resume SWEEP_ID` (unfinished points are trained)."""
    from ser_lab.experiments.sweep import read_manifest

    if read_manifest(store, sweep_id) is None:
        raise RunError(f"no sweep {sweep_id!r} in {store.root}")
    if sweep_process(store, sweep_id) is not None:
        raise RunError(f"sweep {sweep_id} is running already")
    cmd = [
        sys.executable,
        "-m",
        "ser_lab",
        "--store",
        str(Path(store.root).resolve()),
        "sweep",
        "--resume",
        sweep_id,
    ]
    return _start_sweep(cmd, store, sweep_id)


# ----------------------------------------------------------------------------- stopping


def _is_trainer_of(pid: object, run: Run, started: float | None) -> bool:
    """Whether `pid` (started at `started`, as recorded in status.json) is a live
    `ser_lab train` process of this run, by its start time and its command line."""
    if not procs.is_alive(pid, started):
        return False
    cmdline = procs.cmdline(pid)  # type: ignore[arg-type]
    return cmdline is not None and "ser_lab" in " ".join(cmdline) and run.run_id in cmdline


def stop_run(run: Run, *, wait_s: float = 0.0) -> bool:
    """Ask the process training `run` to stop (SIGTERM). Returns False if nothing trains it.

    The trainer stops after its current batch and marks the run "interrupted". A process still
    starting up (not holding the lock yet) dies at once; the run is then marked here.
    With `wait_s` > 0, waits up to that long for the process to end.
    """
    pid = run.lock_holder()
    locked = pid is not None
    if pid is None:
        status = run.read_status()
        if status.get("state") not in ACTIVE_STATES:
            return False
        pid = status.get("pid")
        if not _is_trainer_of(pid, run, status.get("pid_started")):
            return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait_s
    while wait_s > 0 and time.monotonic() < deadline and procs.is_alive(pid):
        time.sleep(0.1)
    if not locked:
        # killed before train_run could record anything itself
        time.sleep(0.2)
        if not run.is_locked() and run.read_status().get("state") in ACTIVE_STATES:
            run.update_status(state="interrupted", finished=time.time())
    return True


def resume_run(run: Run, store: RunStore | None = None, *, threads: int | None = None) -> int:
    """Start training an interrupted (or failed, or never-started) run again; returns the pid.

    Refused while a process trains it, or when it is already done.
    """
    store = store or RunStore(run.dir.parent)
    if run.is_locked():
        raise RunError(f"run {run.run_id} is already being trained by process {run.lock_holder()}")
    state = run.live_status().get("state")
    if state == "done":
        raise RunError(f"run {run.run_id} is finished; there is nothing to resume")
    status = run.read_status()
    if state in ACTIVE_STATES and _is_trainer_of(status.get("pid"), run, status.get("pid_started")):
        raise RunError(f"run {run.run_id} is starting up already")
    run.update_status(state="queued", pid=None, pid_started=None, error=None, finished=None)
    return start_process(run, store, threads=threads)


def wait_for(
    run: Run, states: Sequence[str] = ("done", "failed", "interrupted"), timeout: float = 600.0
) -> str:
    """Poll the run's live state until it is one of `states`; returns it (RunError on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        state = run.live_status().get("state")
        if state in states:
            return state
        if time.monotonic() > deadline:
            raise RunError(f"run {run.run_id} still {state!r} after {timeout:.0f} s")
        time.sleep(0.25)


def log_tail(run: Run, lines: int = 20) -> str:
    """The last lines of the run's train.log (progress bars redraw with '\\r': last state kept)."""
    path = run.dir / LOG_NAME
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    out = [line.split("\r")[-1].rstrip() for line in text.split("\n")]
    return "\n".join([line for line in out if line][-lines:])
