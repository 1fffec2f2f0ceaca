"""The folds of one run trained side by side: one worker process per fold slot.

Why: on a CPU one fold's convolutions scale worse over two cores than two folds on one core
each (the quick start already runs two single-thread processes for this reason). `train_run`
calls `train_folds_parallel` when `TrainConfig.parallel_folds` resolves to more than one
(`resolve_parallel_folds`); otherwise it trains the folds one after another itself.

What stays as in a sequential run:
- results: each worker trains its folds with `ser_lab.learn.trainer.train_fold`, unchanged, on the
  same data; a fold's seed, batch order and masks depend only on (seed, fold, epoch), so
  each fold's z, predictions and metrics are bit-identical to sequential training with the
  same threads per fold (tests/test_parallel_folds.py);
- resuming: each fold keeps its own fold_k/last.pt; the run's lock stays with the parent
  (the process `train --resume` started), which alone writes status.json;
- stopping: SIGTERM / Ctrl-C of the parent sets a shared event that every worker checks at
  each batch, so the folds in training end "interrupted" within a batch. Workers ignore
  SIGINT themselves and exit when their parent dies (a kill -9 of the parent must not leave
  folds training on, unlocked): each watches os.getppid().

Workers are started with the 'spawn' context (never fork a process that holds torch threads),
read the corpus from the feature cache the parent filled, and take fold indices from a queue
until it is empty, so a 5-fold run on two cores starts two processes, not five.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ser_lab.errors import ConfigError, RunError

# `parallel_folds=None` means "auto" (one fold per thread of the run) only once a measurement
# on the development machine shows it pays (bench/parallel_folds.py, target >= 1.3x); until
# then None trains the folds one after another, as before.
PARALLEL_BY_DEFAULT = False
PARENT_POLL_S = 0.5  # how often a worker checks that its parent is alive
JOIN_TIMEOUT_S = 120.0  # how long the parent waits for stopped workers to finish their batch


def resolve_parallel_folds(setting: int | str | None, n_to_train: int, budget: int, device: str) -> int:
    """How many folds train at once: `setting` (an int, "auto" or None = the default), never
    more than the folds left to train. "auto" is one fold per thread of `budget` (the torch
    threads this training process was given) on a CPU, and one fold on a GPU (folds would
    share its memory)."""
    if setting is None:
        setting = "auto" if PARALLEL_BY_DEFAULT else 1
    if setting == "auto":
        setting = max(1, budget) if device == "cpu" else 1
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(f"parallel_folds must be an int >= 1 or 'auto', got {setting!r}")
    return max(1, min(setting, n_to_train))


def threads_per_fold(n_parallel: int, budget: int) -> int:
    """The torch threads of each worker: the run's threads divided between its workers."""
    return max(1, budget // max(1, n_parallel))


def train_folds_parallel(
    run: Any,
    todo: list[int],
    n_parallel: int,
    threads: int,
    *,
    should_stop: Callable[[], bool],
    on_event: Callable[[dict], None],
    on_fold_done: Callable[[int, dict, str | None], None],
    worker_main: Callable[..., None],
) -> dict[int, dict]:
    """Train the folds `todo` of `run` in `n_parallel` worker processes of `threads` threads.

    `worker_main` is the body of each worker process (`ser_lab.learn.trainer.fold_worker_main`, passed
    in so that this module never imports the trainer). `on_event(event)` gets every progress event of `train_fold` (from whichever worker);
    `on_fold_done(k, result, map_problem)` each finished fold. `should_stop()` is polled:
    True stops every worker within a batch and raises `Interrupted`. A fold that fails stops
    the others and its error is raised here; a worker that dies without a word (killed, out
    of memory) is a RunError naming its fold. Returns {fold: test scores} of the folds done.
    """
    import multiprocessing as mp

    from ser_lab.errors import Interrupted

    ctx = mp.get_context("spawn")
    tasks, events, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    for k in todo:
        tasks.put(k)
    n_parallel = max(1, min(n_parallel, len(todo)))
    for _ in range(n_parallel):
        tasks.put(None)
    workers = [
        ctx.Process(
            target=worker_main,
            args=(str(run.dir), threads, os.getpid(), tasks, events, stop),
            name=f"ser-lab-fold-worker-{i}",
        )
        for i in range(n_parallel)
    ]
    for w in workers:
        w.start()
    results: dict[int, dict] = {}
    active: dict[int, int] = {}  # worker pid -> fold it trains
    failure: BaseException | None = None
    interrupted = False
    all_dead_seen = False  # messages written before a worker ended are read after it ended
    try:
        while True:
            if not stop.is_set() and (failure is not None or should_stop()):
                stop.set()
            try:
                msg = events.get(timeout=0.2)
            except queue.Empty:
                if not any(w.is_alive() for w in workers):
                    if all_dead_seen:
                        break
                    all_dead_seen = True
                continue
            kind = msg[0]
            if kind == "start":
                active[msg[1]] = msg[2]
            elif kind == "event":
                if not stop.is_set():
                    on_event(msg[1])
            elif kind == "done":
                _, pid, k, result, problem = msg
                active.pop(pid, None)
                results[k] = result
                on_fold_done(k, result, problem)
            elif kind == "interrupted":
                active.pop(msg[1], None)
                interrupted = True
            elif kind == "failed":
                active.pop(msg[1], None)
                failure = failure or msg[2]
    except BaseException:
        stop.set()
        raise
    finally:
        _join(workers)
    if failure is not None:
        raise failure
    if interrupted or should_stop():
        raise Interrupted()
    missing = [k for k in todo if k not in results]
    if missing:
        codes = ", ".join(str(w.exitcode) for w in workers)
        raise RunError(
            f"run {run.run_id}: fold(s) {', '.join(map(str, missing))} were not trained: a "
            f"training process died (killed, or out of memory?; exit codes {codes}); resume "
            f"with: python -m ser_lab train --resume {run.run_id}"
        )
    return results


def _join(workers: list) -> None:
    """Wait for the workers (they stop within a batch once asked); kill any that hang."""
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.is_alive():
            w.kill()
            w.join(5)


# ----------------------------------------------------------------------------- the worker


def _watch_parent(parent_pid: int) -> None:
    """End this worker as soon as its parent is gone (then it is re-parented: getppid changes)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(PARENT_POLL_S)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _picklable(exc: BaseException) -> BaseException:
    """`exc` if it survives the trip to the parent, else a RunError with its message. (A deep
    copy rebuilds the exception the way unpickling it in the parent would, through its
    __reduce_ex__, without this module ever unpickling anything.)"""
    import copy
    import pickle

    try:
        pickle.dumps(exc)
        copy.deepcopy(exc)
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception becomes a plain one
        return RunError(f"{type(exc).__name__}: {exc}")
