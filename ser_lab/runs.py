"""The run store: one folder per training run under `checkpoints/`.

The trainer, the CLI, the analysis library and the Streamlit app all go through this module.
Training started from the app runs in its own process and talks to the pages only through
the run folder, so a page reload or a second tab never loses or duplicates a run:

    <root>/<run_id>/
        config.json        everything needed to repeat the run (+ format_version, run_id,
                           name, created, versions)
        status.json        {state, fold, n_folds, epoch, n_epochs, progress, heartbeat, pid,
                           started, finished, error, eta_s, folds_active (folds training
                           in parallel, with their epochs), refit (fold, epoch, epochs of a
                           refit in progress, else null), problem (e.g. a map not cached)}
        metrics.jsonl      append-only, one JSON line per epoch per fold (changed only under
                           the folder's flock: folds may train in parallel processes)
        fold_{k}/refit.jsonl  a refit run's second pass (train + validation), a line an epoch
        fold_{k}/last.pt, refit.pt  resume states while the fold trains (deleted when it is done)
        fold_{k}/model.pt  tensors and plain Python types only, loaded with weights_only=True
        fold_{k}/svm.npz   instead of model.pt in an eGeMAPS + SVM run (plain arrays, no pickle)
        fold_{k}/embeddings.npz
        fold_{k}/snapshots/epoch_{e:03d}.npz
        fold_{k}/projections/  the maps' cache (ser_lab.analysis.maps), filled when the fold ends
        results.json       per-fold, pooled and mean UA / WA (fractions in [0, 1])
        .lock              held (fcntl.flock) by the process that trains the run
    <root>/.creating-*, .deleting-*   transient hidden folders of create() / delete()

Every file is written atomically (`ser_lab.fileio`), so a reader may read any file at any
time. Who is training a run is decided by the lock alone: a status that says "running"
while nobody holds the lock belongs to a process that died, and is reported "interrupted".
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import pickle
import re
import secrets
import shutil
import sys
import time
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import ser_lab
from ser_lab import fileio, paths, procs
from ser_lab.errors import RunError

STATES = ("queued", "running", "done", "failed", "interrupted")
ACTIVE_STATES = ("queued", "running")
SPLITS = ("train", "val", "test")
IDENTITY_KEYS = ("format_version", "run_id", "created")

MAX_RUN_ID_LEN = 100
MAX_SLUG_LEN = 64  # room for a sweep id and "lam0.3-alpha0.5-mel-s0"
# A queued run has no training process yet (the launcher is still starting it), so it is not
# called stale before this many seconds without a heartbeat, unless its recorded pid is gone.
QUEUED_GRACE_S = 120.0
# How long `Run.lock` / `Run.is_locked` retry a lock that looks held, to tell a listing's
# momentary probe (microseconds) from a training process (see `_flock_patiently`).
LOCK_PATIENCE_S = 0.25
PROBE_PATIENCE_S = 0.01

EMBEDDING_KEYS = ("z", "labels", "preds", "probs", "utt_ids", "split", "centers", "label_names")
# What the trainer writes into every fold's model.pt, and every reader of a model needs.
MODEL_KEYS = ("state_dict", "centers", "norm", "label_names", "feature_config", "model_config")
SNAPSHOT_KEYS = ("z", "labels", "utt_ids", "split", "centers")
# A fold's model: the CNN's weights, or the eGeMAPS + SVM baseline's arrays (ser_lab.learn.classical).
MODEL_FILES = ("model.pt", "svm.npz")

_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SNAPSHOT_RE = re.compile(r"epoch_(\d{3,})\.npz")
_FOLD_RE = re.compile(r"fold_(\d+)")


# ----------------------------------------------------------------------------- ids


def safe_run_id(name: str | None = None) -> str:
    """A new, unique-in-practice id: "YYYYmmdd-HHMMSS-<slug>-<4 hex>".

    The slug keeps only [a-z0-9.-] of the name (at most MAX_SLUG_LEN characters), so the id
    is always a single safe path component whatever the user typed; dots between digits stay
    ("lam0.3-alpha0.5", not "lam0-3-alpha0-5"), other dots become dashes.
    """
    slug = re.sub(r"[^a-z0-9.]+", "-", (name or "").lower())
    slug = re.sub(r"(?<![0-9])\.|\.(?![0-9])", "-", slug)  # a dot only inside a number
    slug = re.sub(r"-{2,}", "-", slug).strip("-")[:MAX_SLUG_LEN].strip("-.")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slug or 'run'}-{secrets.token_hex(2)}"


# Folders of the store that are not runs (sweep manifests live in <store>/sweeps/).
RESERVED_NAMES = frozenset({"sweeps"})


def validate_run_id(run_id: str) -> str:
    """Return `run_id` if it names one folder inside the store, else raise RunError.

    Refuses anything that could escape the store or confuse a shell or a file system:
    separators, "..", a leading "." or "-", control characters, empty or over-long ids.
    """
    if not isinstance(run_id, str):
        raise RunError(f"a run id must be a string, got {type(run_id).__name__}")
    if not run_id:
        raise RunError("a run id must not be empty")
    if run_id in RESERVED_NAMES:
        raise RunError(f"{run_id!r} is a reserved folder of the run store, not a run")
    if len(run_id) > MAX_RUN_ID_LEN:
        raise RunError(f"run id is {len(run_id)} characters long (at most {MAX_RUN_ID_LEN})")
    if not _RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
        raise RunError(
            f"invalid run id {run_id!r}: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit, without '..'"
        )
    return run_id


# ----------------------------------------------------------------------------- config


def package_versions() -> dict[str, str | None]:
    """Versions of the packages a result depends on, recorded in every config.json.

    Read from the installed metadata rather than by importing, so listing or creating a run
    stays fast (importing scipy or torch takes seconds).
    """
    versions: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "ser_lab": ser_lab.__version__,
    }
    for key, dist in (
        ("torch", "torch"),
        ("numpy", "numpy"),
        ("scipy", "scipy"),
        ("sklearn", "scikit-learn"),
    ):
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def _read_json_dict(path: Path, what: str) -> dict:
    """A JSON object from `path`, or RunError saying why it cannot be had."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunError(f"{what} missing") from None
    except OSError as e:
        raise RunError(f"{what} unreadable: {e.strerror or e}") from None
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{what} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RunError(f"{what} holds a {type(obj).__name__}, expected a JSON object")
    return obj


def read_config(run_dir: str | Path) -> dict:
    """The run's config.json, after checking this SER Lab can read the run's format."""
    config = _read_json_dict(Path(run_dir) / "config.json", "config.json")
    version = config.get("format_version")
    if version is None:
        raise RunError("config.json has no format_version (not a SER Lab run?)")
    if version != ser_lab.RUN_FORMAT_VERSION:
        raise RunError(
            f"incompatible run format version {version} (this SER Lab reads {ser_lab.RUN_FORMAT_VERSION})"
        )
    return config


def config_columns(config: dict) -> dict[str, Any]:
    """The listing's columns of a run config, read from its "train" dict: the TrainConfig
    that `ser_lab.learn.trainer.new_run` records, the one copy of a run's settings."""
    train = config.get("train")
    train = train if isinstance(train, dict) else {}
    corpus, features, sweep_id = train.get("corpus"), train.get("features"), train.get("sweep_id")
    if features is None:  # an eGeMAPS + SVM run records its feature set beside its settings
        features = config.get("features")
    objective = train.get("objective")
    return {
        "corpus": corpus if isinstance(corpus, str) else None,
        "features": features if isinstance(features, str) else None,
        # the training objective (objectives.py); None for runs from before objectives
        # existed (and for the eGeMAPS + SVM baseline), which read as the paper's "center"
        "objective": objective if isinstance(objective, str) else None,
        "lam": train.get("lam"),
        "alpha": train.get("alpha"),
        "epochs": train.get("epochs"),
        "n_folds": train.get("n_folds"),
        "protocol": train.get("protocol"),
        "seed": train.get("seed"),
        "sweep_id": str(sweep_id) if sweep_id is not None else None,
        "demo": train.get("demo") is True,
    }


def _now_iso() -> str:
    # Microseconds: "the earliest run" (the report's reference row, a sweep's first run) must
    # be well defined for runs created within the same second.
    return datetime.now().astimezone().isoformat(timespec="microseconds")


def _iso_to_ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


# ----------------------------------------------------------------------------- summary


@dataclass
class RunSummary:
    """One row of the run list: what the app's tables and the CLI's `runs` command show."""

    run_id: str
    name: str
    state: str  # one of STATES, or "broken"
    created: str | None = None
    corpus: str | None = None
    features: str | None = None
    objective: str | None = None
    lam: float | None = None
    alpha: float | None = None
    epochs: int | None = None
    n_folds: int | None = None
    protocol: str | None = None
    seed: int | None = None
    progress: float = 0.0
    fold: int | None = None
    epoch: int | None = None
    UA: float | None = None
    WA: float | None = None
    error: str | None = None  # the trainer's own error message (state "failed")
    problem: str | None = None  # why the folder is broken, or why a run counts as interrupted
    is_demo: bool = False
    sweep_id: str | None = None


# ----------------------------------------------------------------------------- run


class Run:
    """One run folder. Cheap to construct; every read goes to disk, except `config`."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.run_id = self.dir.name

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    # -- config and status

    @cached_property
    def config(self) -> dict:
        """config.json (validated, read once: it never changes after `create`)."""
        return read_config(self.dir)

    def write_config(self, config: dict) -> None:
        """Replace config.json, e.g. when the trainer records the data fingerprint once the
        corpus is read. The identity fields (format_version, run_id, created) cannot change."""
        if not isinstance(config, dict):
            raise RunError(f"a run config must be a dict, got {type(config).__name__}")
        current = self.config
        full = dict(config)
        for key in IDENTITY_KEYS:
            if key in full and full[key] != current.get(key):
                raise RunError(
                    f"run {self.run_id}: config field {key!r} cannot change "
                    f"({current.get(key)!r} -> {full[key]!r})"
                )
            full[key] = current.get(key)
        _check_json(full)
        fileio.atomic_write_json(self.dir / "config.json", full)
        self.__dict__["config"] = json.loads(json.dumps(full, default=fileio._json_default))

    @property
    def status_path(self) -> Path:
        return self.dir / "status.json"

    def read_status(self) -> dict:
        """status.json as written (see `live_status` for the state corrected for dead runs)."""
        return _read_json_dict(self.status_path, "status.json")

    def update_status(self, **fields: Any) -> dict:
        """Merge `fields` into status.json and set the heartbeat; returns the new status.

        Read-merge-write happens under an flock on the run folder, so two writers (the
        trainer and, say, a page marking a run) never drop each other's fields.
        """
        state = fields.get("state")
        if state is not None and state not in STATES:
            raise RunError(f"unknown run state {state!r} (expected one of {', '.join(STATES)})")
        with self._dir_lock():
            try:
                status = self.read_status()
            except RunError:
                status = _initial_status({})
            status.update(fields)
            status["heartbeat"] = time.time()
            fileio.atomic_write_json(self.status_path, status)
        return status

    def live_status(self) -> dict:
        """status.json, with a queued/running state whose process is gone shown as interrupted.

        Adds `stale: True` and a `problem` when it corrects the state.
        """
        status = self.read_status()
        # The status is read before the lock is checked, and a trainer may write its final
        # state and release the lock (or start, take it and write "running") in between. So a
        # free lock counts only if status.json did not change meanwhile; a status that keeps
        # changing belongs to a live process.
        for _ in range(3):
            if status.get("state") not in ACTIVE_STATES or self.is_locked():
                return status
            again = self.read_status()
            if again == status:
                break
            status = again
        else:
            return status
        state = status.get("state")
        if self._looks_dead(status):
            status = dict(status, state="interrupted", stale=True)
            status["problem"] = (
                f"status says {state!r} but no process holds the run's lock "
                "(the training process was killed or crashed)"
            )
        return status

    def _looks_dead(self, status: dict) -> bool:
        if status.get("state") == "running":
            return True  # a live trainer always holds the lock while running
        pid = status.get("pid")
        if procs.is_alive(pid, status.get("pid_started")):
            return False  # launched, still starting up
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
            return True  # the launched process is gone without ever taking the lock
        heartbeat = status.get("heartbeat")
        if not isinstance(heartbeat, (int, float)):
            return True
        return time.time() - heartbeat > QUEUED_GRACE_S

    # -- metrics

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    def append_metrics(self, record: dict) -> None:
        """Append one epoch's record. A line torn by an earlier kill is closed off first,
        so the new record does not get glued to it and lost. Under the folder's lock, so
        folds training in parallel processes (ser_lab.learn.parallel) never interleave or lose a
        line, nor race `rewrite_metrics`."""
        if not isinstance(record, dict):
            raise RunError(f"a metrics record must be a dict, got {type(record).__name__}")
        with self._dir_lock():
            try:
                with open(self.metrics_path, "rb+") as f:
                    f.seek(0, os.SEEK_END)
                    if f.tell() > 0:
                        f.seek(-1, os.SEEK_END)
                        if f.read(1) != b"\n":
                            f.write(b"\n")
            except FileNotFoundError:
                pass
            fileio.append_jsonl(self.metrics_path, record)

    def rewrite_metrics(self, keep) -> None:
        """Keep only the records for which `keep(record)` is true (a resumed fold drops the
        epochs it trains again), replacing metrics.jsonl atomically under the folder's lock
        (an append by another fold's process cannot fall between the read and the write)."""
        with self._dir_lock():
            fileio.keep_jsonl(self.metrics_path, keep)

    def read_metrics(self) -> list[dict]:
        """Every complete record (a torn last line from a killed writer is skipped)."""
        return fileio.read_jsonl(self.metrics_path)

    # -- folds: model, embeddings, snapshots

    def fold_dir(self, k: int) -> Path:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise RunError(f"a fold index must be a non-negative int, got {k!r}")
        return self.dir / f"fold_{int(k)}"

    def save_model(self, k: int, payload: dict) -> None:
        """Save fold k's model: a dict of tensors and plain Python types only, so that
        `load_model` can read it with torch's safe (weights_only) loader."""
        if not isinstance(payload, dict):
            raise RunError(f"a model payload must be a dict, got {type(payload).__name__}")
        clean = _plain(payload, "payload")
        fileio.atomic_torch_save(self.fold_dir(k) / "model.pt", clean)

    def load_model(self, k: int) -> dict:
        """Fold k's model payload, read with weights_only=True: a file that tries to run code
        or build arbitrary objects on load is refused with RunError, never executed."""
        import torch

        path = self.fold_dir(k) / "model.pt"
        if not path.is_file():
            if (self.fold_dir(k) / "svm.npz").is_file():
                raise RunError(
                    f"run {self.run_id} is an eGeMAPS + SVM baseline run: it has no network "
                    "(model.pt) to load; this needs a CNN run"
                )
            raise RunError(f"run {self.run_id}: fold {k} has no model.pt (not trained yet?)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "unexpected pickle protocol"
                payload = torch.load(path, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            raise RunError(
                f"run {self.run_id}: refused fold {k} model.pt: it is corrupt or holds objects "
                f"other than tensors and plain values ({_unpickling_reason(e)})"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
            raise RunError(
                f"run {self.run_id}: fold {k} model.pt is corrupt or unreadable ({type(e).__name__}: {e})"
            ) from None
        if not isinstance(payload, dict):
            raise RunError(
                f"run {self.run_id}: fold {k} model.pt holds a {type(payload).__name__}, expected a dict"
            )
        return payload

    def save_embeddings(self, k: int, **arrays: Any) -> None:
        """Save fold k's learned features z and predictions for every utterance (see
        EMBEDDING_KEYS); checked so that `load_embeddings` can read them without pickle."""
        clean = _check_arrays(arrays, EMBEDDING_KEYS, "embeddings")
        fileio.atomic_save_npz(self.fold_dir(k) / "embeddings.npz", **clean)

    def test_positions(self, k: int, position: dict[str, int]) -> np.ndarray:
        """Fold k's test utterances as indices into a corpus (`position`: utt_id -> index),
        in the order of its embeddings; RunError when some are no longer in the corpus."""
        emb = self.load_embeddings(k)
        test_ids = emb["utt_ids"][emb["split"] == "test"]
        missing = [u for u in test_ids if u not in position]
        if missing:
            raise RunError(
                f"{len(missing)} test utterances of fold {k} are not in the corpus any more "
                f"(e.g. {missing[0]}): the data changed since the run was trained"
            )
        return np.array([position[u] for u in test_ids])

    def load_embeddings(self, k: int) -> dict[str, np.ndarray]:
        path = self.fold_dir(k) / "embeddings.npz"
        if not path.is_file():
            raise RunError(f"run {self.run_id}: fold {k} has no embeddings.npz (not trained yet?)")
        return _load_npz(path, EMBEDDING_KEYS, f"run {self.run_id}: fold {k} embeddings.npz")

    def _snapshot_path(self, k: int, epoch: int) -> Path:
        if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or epoch < 0:
            raise RunError(f"an epoch must be a non-negative int, got {epoch!r}")
        return self.fold_dir(k) / "snapshots" / f"epoch_{int(epoch):03d}.npz"

    def save_snapshot(self, k: int, epoch: int, **arrays: Any) -> None:
        """Save z of a fixed subset after one epoch (for the app's training animation)."""
        clean = _check_arrays(arrays, SNAPSHOT_KEYS, "snapshot")
        fileio.atomic_save_npz(self._snapshot_path(k, epoch), **clean)

    def list_snapshots(self, k: int) -> list[int]:
        folder = self.fold_dir(k) / "snapshots"
        if not folder.is_dir():
            return []
        epochs = (_SNAPSHOT_RE.fullmatch(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in epochs if m)

    def load_snapshot(self, k: int, epoch: int) -> dict[str, np.ndarray]:
        path = self._snapshot_path(k, epoch)
        if not path.is_file():
            have = self.list_snapshots(k)
            raise RunError(
                f"run {self.run_id}: fold {k} has no snapshot of epoch {epoch} "
                f"(have: {', '.join(map(str, have)) or 'none'})"
            )
        return _load_npz(path, SNAPSHOT_KEYS, f"run {self.run_id}: fold {k} snapshot {epoch}")

    def folds_done(self) -> list[int]:
        """Folds whose model file (model.pt, or svm.npz for the eGeMAPS + SVM baseline) and
        embeddings.npz both exist (what a resume can skip)."""
        if not self.dir.is_dir():
            return []
        done = []
        for path in self.dir.iterdir():
            m = _FOLD_RE.fullmatch(path.name)
            has_model = any((path / name).is_file() for name in MODEL_FILES)
            if m and has_model and (path / "embeddings.npz").is_file():
                done.append(int(m.group(1)))
        return sorted(done)

    # -- results

    @property
    def results_path(self) -> Path:
        return self.dir / "results.json"

    def write_results(self, results: dict) -> None:
        if not isinstance(results, dict):
            raise RunError(f"results must be a dict, got {type(results).__name__}")
        _check_fractions(results)
        fileio.atomic_write_json(self.results_path, results)

    def read_results(self) -> dict | None:
        """results.json, or None while the run has not finished."""
        if not self.results_path.exists():
            return None
        return _read_json_dict(self.results_path, "results.json")

    # -- locking

    @property
    def lock_path(self) -> Path:
        return self.dir / ".lock"

    @contextlib.contextmanager
    def lock(self) -> Iterator[Run]:
        """Hold the run's exclusive lock: only the holder may train the run.

        Non-blocking: if another process (or another `lock()` in this one) holds it, raises
        RunError naming that process (see `exclusive_lock`).
        """
        if not self.dir.is_dir():
            raise RunError(f"run {self.run_id} does not exist at {self.dir}")
        with exclusive_lock(self.lock_path, f"run {self.run_id} is already being trained"):
            yield self

    def is_locked(self) -> bool:
        """Whether some process (this one included) holds the lock right now."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            return not _flock_patiently(fd, PROBE_PATIENCE_S)
        finally:
            os.close(fd)  # closing also releases a lock we just took

    def lock_holder(self) -> int | None:
        """The pid written by the current lock holder, or None if the run is not locked."""
        if not self.is_locked():
            return None
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return _read_pid(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _dir_lock(self) -> Iterator[None]:
        """A short blocking lock on the folder itself, around status read-merge-write and every
        change of metrics.jsonl."""
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- summary

    def summary(self) -> RunSummary:
        """The list row of this run; never raises (a bad folder becomes state "broken")."""
        return _summarize(self)


def _initial_status(config: dict) -> dict:
    columns = config_columns(config)
    return {
        "state": "queued",
        "fold": None,
        "n_folds": columns["n_folds"],
        "epoch": None,
        "n_epochs": columns["epochs"],
        "progress": 0.0,
        "heartbeat": time.time(),
        "pid": None,
        "pid_started": None,  # the process start time of `pid` (ser_lab.procs)
        "started": None,
        "finished": None,
        "error": None,
        "eta_s": None,
    }


def _unpickling_reason(error: Exception) -> str:
    """The one informative line of torch's long weights_only error (e.g. "Trying to load
    unsupported GLOBAL posix.system ...")."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(error).splitlines()]
    useful = [line for line in lines if line and not line.startswith(boilerplate)]
    return useful[0] if useful else type(error).__name__


@contextlib.contextmanager
def exclusive_lock(
    path: str | Path, busy: str, patience_s: float = LOCK_PATIENCE_S
) -> Iterator[None]:
    """Hold an exclusive flock on the file `path` (created if needed), with this process's
    pid written in it; RunError "<busy> by process N" if another holder has it. The one lock
    of SER Lab: a run's (`Run.lock`) and a sweep launcher's (`ser_lab.experiments.sweep.sweep_lock`).

    The lock dies with the process, so a killed holder never leaves it held. The file itself
    is never replaced or deleted (that would let two processes lock two different files);
    only its pid text changes.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _flock_patiently(fd, patience_s):
            holder = _read_pid(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunError(f"{busy} by {who}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock_patiently(fd: int, patience_s: float) -> bool:
    """Take an exclusive flock on `fd` without blocking for long; False if still held after
    `patience_s` seconds.

    `is_locked` can only ask "is it held?" by taking the lock itself for a few microseconds,
    so a listing that polls (the app does, every second) could make a trainer starting at that
    instant, or another probe, see a lock held by nobody. Retrying for a short while tells
    such a probe from a real holder, which holds the lock for the whole training.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# ----------------------------------------------------------------------------- checks


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _plain(obj: Any, where: str) -> Any:
    """`obj` with numpy scalars turned into Python ones; RunError for anything that torch's
    weights_only loader would refuse (numpy arrays, custom classes, ...).

    Containers are copied only when something inside them changed, so a state dict keeps
    its OrderedDict type and `_metadata`.
    """
    import torch

    if isinstance(obj, (torch.Tensor, torch.Size, torch.dtype, *_PLAIN_SCALARS)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if type(obj) not in (dict, OrderedDict):
            raise RunError(f"{where} is a {type(obj).__name__}; use a plain dict")
        changed = {}
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise RunError(f"{where} has a key of type {type(key).__name__}; use str or int")
            new = _plain(value, f"{where}[{key!r}]")
            if new is not value:
                changed[key] = new
        return {**obj, **changed} if changed else obj
    if isinstance(obj, (list, tuple)):
        if type(obj) not in (list, tuple):
            raise RunError(f"{where} is a {type(obj).__name__}; use a plain list or tuple")
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, np.ndarray):
        raise RunError(f"{where} is a numpy array; convert it with torch.from_numpy first")
    raise RunError(
        f"{where} is a {type(obj).__name__}; a model file may hold only tensors and plain "
        "Python values (dict, list, tuple, str, int, float, bool, None)"
    )


def _check_arrays(arrays: dict[str, Any], required: tuple[str, ...], what: str) -> dict:
    """Arrays ready for a pickle-free .npz: required keys present, known dtypes, and the
    content checks of `check_arrays` (what every reader relies on)."""
    missing = [key for key in required if key not in arrays]
    if missing:
        raise RunError(f"{what} is missing arrays: {', '.join(missing)}")
    clean: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key in ("utt_ids", "split", "label_names"):
            arr = np.asarray(value, dtype=str)
        elif key in ("z", "probs", "centers"):
            arr = np.asarray(value, dtype=np.float32)
        elif key in ("labels", "preds"):
            arr = np.asarray(value)
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise RunError(f"{what}: {key} must hold integer class ids, got {arr.dtype}")
            arr = arr.astype(np.int64)
        else:
            arr = np.asarray(value)
        if arr.dtype == object:
            raise RunError(f"{what}: {key} has dtype object; it cannot be saved without pickle")
        clean[key] = arr
    check_arrays(clean, what)
    return clean


def check_arrays(arrays: dict[str, np.ndarray], what: str) -> None:
    """RunError unless embeddings or a snapshot are consistent: z a non-empty (N, dim) array;
    labels (and preds) N non-negative integer class ids below the number of centers; utt_ids
    N unique names; split N names from SPLITS; centers (C, dim); one label name per center;
    probs (N, C). Checked on every save and every load, so no reader needs checks of its own."""
    z = np.asarray(arrays["z"])
    if z.ndim != 2 or z.shape[0] == 0:
        raise RunError(f"{what}: z must be a non-empty 2-D (N, dim) array, got shape {z.shape}")
    n = z.shape[0]
    centers = np.asarray(arrays["centers"])
    if centers.ndim != 2 or centers.shape[1] != z.shape[1]:
        raise RunError(f"{what}: centers has shape {centers.shape}, expected (n_classes, {z.shape[1]})")
    n_classes = centers.shape[0]
    for key in ("labels", "preds"):
        if key not in arrays:
            continue
        arr = np.asarray(arrays[key])
        if arr.shape != (n,):
            raise RunError(f"{what}: {key} has shape {arr.shape}, expected {n} rows like z")
        if not np.issubdtype(arr.dtype, np.integer):
            raise RunError(f"{what}: {key} must hold integer class ids, got {arr.dtype}")
        if (arr < 0).any():
            raise RunError(f"{what}: {key} must hold non-negative class ids")
        if arr.size and int(arr.max()) >= n_classes:
            raise RunError(f"{what}: {key} has class id {int(arr.max())} but only {n_classes} classes")
    for key in ("utt_ids", "split"):
        if key in arrays and np.asarray(arrays[key]).shape != (n,):
            shape = np.asarray(arrays[key]).shape
            raise RunError(f"{what}: {key} has shape {shape}, expected {n} rows like z")
    if "split" in arrays:
        bad = sorted(set(np.asarray(arrays["split"]).astype(str).tolist()) - set(SPLITS))
        if bad:
            raise RunError(f"{what}: unknown split names {bad} (expected {', '.join(SPLITS)})")
    if "utt_ids" in arrays and len(np.unique(np.asarray(arrays["utt_ids"]))) != n:
        raise RunError(f"{what}: utt_ids are not unique")
    if "label_names" in arrays and len(np.asarray(arrays["label_names"])) != n_classes:
        names = len(np.asarray(arrays["label_names"]))
        raise RunError(f"{what}: {names} label names for {n_classes} centers")
    if "probs" in arrays and np.asarray(arrays["probs"]).shape != (n, n_classes):
        shape = np.asarray(arrays["probs"]).shape
        raise RunError(f"{what}: probs has shape {shape}, expected ({n}, {n_classes})")


def read_npz(path: Path, required: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """The arrays of a run's .npz file, read without pickle; RunError naming `what` if the file
    is corrupt or lacks one of the `required` arrays. The one reader of every .npz of a run."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RunError(f"{what} is corrupt or unreadable ({type(e).__name__}: {e})") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise RunError(f"{what} is missing arrays: {', '.join(missing)}")
    return arrays


def _load_npz(path: Path, required: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    arrays = read_npz(path, required, what)
    check_arrays(arrays, what)
    return arrays


def _check_json(config: dict) -> None:
    try:
        json.dumps(config, default=fileio._json_default)
    except (TypeError, ValueError) as e:
        raise RunError(f"the run config cannot be saved as JSON: {e}") from None


def _check_fractions(results: dict) -> None:
    """UA / WA are fractions: catch a percentage slipping into results.json."""
    entries = [("mean", results.get("mean")), ("pooled", results.get("pooled"))]
    entries += [(f"fold {f.get('fold')}", f) for f in results.get("folds") or [] if isinstance(f, dict)]
    for where, entry in entries:
        if not isinstance(entry, dict):
            continue
        for key in ("UA", "WA"):
            value = entry.get(key)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise RunError(f"results {where}: {key} = {value!r} is not a fraction in [0, 1]")


# ----------------------------------------------------------------------------- store


def _summarize(run: Run) -> RunSummary:
    """Build a run's list row; any problem becomes state "broken" with the reason."""
    row = RunSummary(run_id=run.run_id, name=run.run_id, state="broken")
    row.is_demo = run.run_id.startswith("demo-")
    try:
        raw = _read_json_dict(run.dir / "config.json", "config.json")
    except RunError as e:
        row.problem = str(e)
        return row
    _fill_from_config(row, raw)
    try:
        read_config(run.dir)
        status = run.live_status()
    except RunError as e:
        row.problem = str(e)
        return row
    wrong = _config_type_problems(raw)
    if wrong:
        row.problem = "config.json: " + "; ".join(wrong)
        return row
    state = status.get("state")
    if state not in STATES:
        row.problem = f"status.json has an unknown state {state!r}"
        return row
    wrong = _status_type_problems(status)
    if wrong:
        row.problem = "status.json: " + "; ".join(wrong)
        return row
    row.state = state
    row.problem = status.get("problem")
    row.error = status.get("error")
    row.fold = status.get("fold")
    row.epoch = status.get("epoch")
    progress = status.get("progress")
    row.progress = float(progress) if isinstance(progress, (int, float)) else 0.0
    try:
        results = run.read_results()
        if results is not None:
            _check_fractions(results)
        _check_fold_files(run, results)
    except RunError as e:
        row.state, row.problem = "broken", str(e)
        return row
    mean = (results or {}).get("mean")
    if isinstance(mean, dict):
        row.UA, row.WA = mean.get("UA"), mean.get("WA")
    return row


def _check_fold_files(run: Run, results: dict | None) -> None:
    """RunError if a fold's model.pt or embeddings.npz is damaged, or missing from the folder
    of a fold that results.json reports.

    Cheap enough for every listing (the app polls it): both files are zip archives (torch.save
    and np.savez), whose directory sits at the very end, so a truncated or overwritten file
    fails `zipfile.is_zipfile`, which reads only the tail. Loading them fully is left to
    `load_model` / `load_embeddings`, which check the content as well.
    """
    reported = []
    for entry in (results or {}).get("folds") or []:
        k = entry.get("fold") if isinstance(entry, dict) else None
        if isinstance(k, int) and not isinstance(k, bool) and k >= 0:
            reported.append(k)
    present = []
    for path in run.dir.iterdir():
        m = _FOLD_RE.fullmatch(path.name)
        if m and path.is_dir():
            present.append(int(m.group(1)))
    for k in sorted(set(reported) | set(present)):
        fold = run.dir / f"fold_{k}"
        model_files = [n for n in MODEL_FILES if (fold / n).is_file()] or [MODEL_FILES[0]]
        for name in (*model_files, "embeddings.npz"):
            path = run.dir / f"fold_{k}" / name
            if not path.is_file():
                if k in reported and k in present:
                    raise RunError(f"fold {k} {name} missing (results.json reports fold {k})")
                continue
            try:
                intact = zipfile.is_zipfile(path)
            except OSError as e:
                raise RunError(f"fold {k} {name} unreadable: {e.strerror or e}") from None
            if not intact:
                raise RunError(f"fold {k} {name} is truncated or corrupt (not a complete archive)")
            if name == "model.pt":
                missing = _model_keys_missing(path)
                if missing:
                    raise RunError(f"fold {k} model.pt lacks {', '.join(missing)} (not a SER Lab model)")


def _model_keys_missing(path: Path) -> list[str]:
    """The MODEL_KEYS that a model.pt's pickle never names, found without unpickling anything:
    the pickle's opcodes are only read (pickletools), so this is safe on any file and cheap
    (the pickle holds the structure; the tensors are separate entries of the archive)."""
    import pickletools

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if not names:
                return list(MODEL_KEYS)
            data = archive.read(names[0])
        found = {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RunError(f"model.pt unreadable ({type(e).__name__}: {e})") from None
    return [key for key in MODEL_KEYS if key not in found]


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The type each list column must have; anything else makes the row "broken" with the reason.
_COLUMN_CHECKS = {
    "lam": (_is_number, "a finite number"),
    "alpha": (_is_number, "a finite number"),
    "epochs": (_is_int, "an integer"),
    "n_folds": (_is_int, "an integer"),
    "seed": (_is_int, "an integer"),
    "protocol": (lambda v: isinstance(v, str), "a string"),
}


def _config_type_problems(config: dict) -> list[str]:
    """'lam is 'abc', expected a finite number' for each wrong-typed setting, flat or under
    "train" (what a hand-edited or foreign config.json may hold)."""
    problems = []
    train = config.get("train")
    for section, values in (("", config), ("train.", train if isinstance(train, dict) else {})):
        for key, (ok, expected) in _COLUMN_CHECKS.items():
            value = values.get(key)
            if value is not None and not ok(value):
                problems.append(f"{section}{key} is {value!r}, expected {expected}")
    for key in ("corpus", "features"):
        value = config.get(key)
        if value is not None and not isinstance(value, (str, dict)):
            problems.append(f"{key} is {value!r}, expected a string")
    if train is not None and not isinstance(train, dict):
        problems.append(f"train is a {type(train).__name__}, expected an object")
    return problems


def _status_type_problems(status: dict) -> list[str]:
    problems = []
    for key in ("fold", "epoch", "n_folds", "n_epochs"):
        value = status.get(key)
        if value is not None and not _is_int(value):
            problems.append(f"{key} is {value!r}, expected an integer")
    for key in ("progress", "eta_s", "heartbeat"):
        value = status.get(key)
        if value is not None and not _is_number(value):
            problems.append(f"{key} is {value!r}, expected a number")
    for key in ("error", "problem"):
        value = status.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{key} is {value!r}, expected a string")
    return problems


def _fill_from_config(row: RunSummary, config: dict) -> None:
    name = config.get("name")
    if isinstance(name, str) and name:
        row.name = name
    created = config.get("created")
    row.created = created if isinstance(created, str) else None
    columns = config_columns(config)
    row.is_demo = row.is_demo or columns.pop("demo")
    for key, value in columns.items():
        check = _COLUMN_CHECKS.get(key)
        if check is not None and value is not None and not check[0](value):
            value = None  # a wrong-typed value never reaches a table or a format string
        setattr(row, key, value)


class RunStore:
    """The folder of runs (default: `ser_lab.paths.checkpoints_dir()`)."""

    def __init__(self, root: str | Path | None = None, *, create: bool = True) -> None:
        """`create=False` (listing, reading) leaves a missing store folder missing; a store
        that is a file, or that cannot be created or written, is a RunError either way."""
        self.root = paths.checkpoints_dir(create=False) if root is None else Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise RunError(f"the run store {self.root} is a file, not a folder")
        if create:
            self.ensure()

    def ensure(self) -> None:
        """Create the store folder if needed (RunError, not a traceback, if that fails)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"cannot create the run store {self.root}: {e.strerror or e}") from None

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, run_id: str) -> Path:
        """The folder a (validated) run id names; it may not exist."""
        return self.root / validate_run_id(run_id)

    def create(self, config: dict, name: str | None = None) -> Run:
        """A new run in state "queued" with `config` (plus format_version, run_id, name,
        created, versions) saved.

        The folder is assembled under a hidden name and renamed into place, so a reader
        never sees a run folder without config.json and status.json; rename refuses to
        replace a non-empty folder, and on an id collision a new id is drawn.
        """
        if not isinstance(config, dict):
            raise RunError(f"a run config must be a dict, got {type(config).__name__}")
        if name is not None and not isinstance(name, str):
            raise RunError(f"a run name must be a string, got {type(name).__name__}")
        name = (name or "").strip() or config.get("name") or None
        self.ensure()
        for _ in range(20):
            run_id = safe_run_id(name)
            full = dict(
                config,
                format_version=ser_lab.RUN_FORMAT_VERSION,
                run_id=run_id,
                name=name,
                created=_now_iso(),
                versions=package_versions(),
            )
            _check_json(full)
            if self._place(run_id, full):
                return Run(self.root / run_id)
        raise RunError(f"could not find a free run id in {self.root}")

    def _place(self, run_id: str, config: dict) -> bool:
        final = self.root / run_id
        if final.exists():
            return False
        staging = self.root / f".creating-{run_id}-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except OSError as e:
            raise RunError(f"cannot create a run in {self.root}: {e.strerror or e}") from None
        try:
            fileio.atomic_write_json(staging / "config.json", config)
            fileio.atomic_write_json(staging / "status.json", _initial_status(config))
            try:
                os.rename(staging, final)
            except OSError:
                return False  # someone took the id: the target exists and is not empty
            return True
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def get(self, run_id: str) -> Run:
        """An existing, readable run. RunError says whether it is missing (with the ids that
        look close), broken, or from an incompatible version."""
        path = self.path(run_id)
        if not path.is_dir():
            raise RunError(self._not_found(run_id))
        run = Run(path)
        try:
            _ = run.config  # validates config.json and its format version
            run.read_status()
        except RunError as e:
            raise RunError(f"run {run_id} is broken: {e}") from None
        return run

    def _not_found(self, run_id: str) -> str:
        ids = self.ids()
        close = difflib.get_close_matches(run_id, ids, n=5, cutoff=0.5)
        close += [i for i in ids if run_id in i and i not in close][: 5 - len(close)]
        hint = f"; close matches: {', '.join(close)}" if close else ""
        return f"run {run_id!r} not found in {self.root}{hint}"

    def ids(self) -> list[str]:
        """Folder names that are valid run ids (hidden staging / deleting folders excluded)."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        out = []
        for path in entries:
            if path.name in RESERVED_NAMES:
                continue
            try:
                if path.is_dir() and validate_run_id(path.name):
                    out.append(path.name)
            except RunError:
                continue
        return sorted(out)

    def list(self) -> list[RunSummary]:
        """Every run, newest first. Never raises for one bad folder: it is listed "broken"
        with the reason in `problem`; a dead "running" run is listed "interrupted"."""
        rows = []
        for run_id in self.ids():
            run = Run(self.root / run_id)
            try:
                rows.append(_summarize(run))
            except Exception as e:  # noqa: BLE001 - one bad folder must not hide the others
                rows.append(
                    RunSummary(
                        run_id=run_id,
                        name=run_id,
                        state="broken",
                        problem=f"unreadable: {type(e).__name__}: {e}",
                    )
                )

        def newest_first(row: RunSummary) -> tuple[float, str]:
            ts = _iso_to_ts(row.created)
            if ts is None:
                try:
                    ts = (self.root / row.run_id).stat().st_mtime
                except OSError:
                    ts = 0.0
            return (-ts, row.run_id)

        return sorted(rows, key=newest_first)

    def delete(self, run_id: str) -> None:
        """Remove a run folder (broken ones included). Refused while a process trains it.

        The folder is first renamed to a hidden name while holding the run's lock, so no
        trainer can start on it and no reader ever lists a half-deleted run.
        """
        path = self.path(run_id)
        if not path.is_dir():
            raise RunError(self._not_found(run_id))
        trash = self.root / f".deleting-{run_id}-{secrets.token_hex(4)}"
        run = Run(path)
        try:
            with run.lock():
                os.rename(path, trash)
        except RunError as e:
            raise RunError(f"cannot delete: {e}") from None
        shutil.rmtree(trash, ignore_errors=True)
