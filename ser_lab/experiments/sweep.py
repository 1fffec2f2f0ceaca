"""Sweeps: many training runs over a grid of settings, sharing one sweep id.

A sweep is a `SweepSpec`: fields shared by every run (`base`, the CLI's `--set`), axes crossed
with each other (`grid`, `--grid lam=0,0.1,0.3`), optional explicit points (`points`,
`--point lam=0.3 alpha=0.5`; each is crossed with the grid) and seeds (`--seeds 0 1`).
`expand(spec)` turns it into one validated `TrainConfig` per (point, seed), each with
`sweep_id` set. Every point is a NORMAL run folder in the run store, named
"<sweep_id>-lam0.3-alpha0.5-mel-s0", so every page and command can open it.

    python -m ser_lab sweep --set epochs=3 --grid lam=0,0.1,0.3 --grid alpha=0.5 --seeds 0 1
    python -m ser_lab sweep --resume SWEEP_ID              # re-launch an interrupted sweep
    python -m ser_lab --store /shared/runs sweep --backend ray --address auto ...
    python -m ser_lab report SWEEP_ID

Re-launching (same spec and --sweep-id, or --resume) is safe at any time: a point whose run
is done is skipped, an interrupted / failed / queued run is resumed in its own folder
(`train_run` continues from fold_k/last.pt), and only points with no run get a new folder.
A point is found by sweep id + its full TrainConfig, not by name, so renaming nothing and
guessing nothing is needed. A second launcher of the same sweep is refused while the first
one runs (a lock file next to the manifest).

The manifest <store>/sweeps/<sweep_id>.json (written atomically by the launcher only, after
every finished run) holds the spec and, per point, its key, run name, run id and last
known state. The run folders themselves are the live progress (status.json, results.json).

Design of the parallel work (why one task = one run)
----------------------------------------------------
A task trains ONE run folder, all of its folds, holding the run's lock. The alternative,
(run, fold) tasks, would need per-fold locks on a shared folder and a final step pooling
fold results into results.json that itself must survive crashes; since a sweep has far more
points than workers, that extra parallelism buys little. With one task per run, the run lock
already makes concurrent training of one folder impossible, `train_run`'s per-epoch resume
makes every task crash-safe, and results.json is written once by the one process that
trained the folds.

Backends
--------
- "local" (default): `workers` processes (default: one per GPU when CUDA is present, else
  one per CPU core, at most one per point); each pins its torch threads to
  cores // workers (and its GPU via CUDA_VISIBLE_DEVICES) so the processes do not
  oversubscribe the machine. workers=1 trains in this process. Features are extracted once
  by the launcher before the workers start (they then read the feature cache).
- "ray": the same tasks as Ray remote tasks, each asking for `cpus_per_task` CPUs and
  `gpus_per_task` GPUs, at most `workers` in flight (default: as many as the cluster takes).
  The run store must be a folder every node sees at the same path (`--store /shared/...`);
  the ser_lab package is shipped to the workers with the task (Ray runtime_env py_modules),
  the rest of the environment (torch, librosa, ...) must be installed on every node.
  $SER_LAB_CACHE, when set for the launcher, is passed on to the tasks; point it to a shared
  folder to extract features only once. Ray is optional: `pip install -r
  requirements-cluster.txt`.

Stopping: Ctrl-C or SIGTERM stops the launcher; runs in training are marked "interrupted"
after their current batch and the sweep can be re-launched to finish.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ser_lab import fileio
from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, RunError, SerLabError

MANIFEST_VERSION = 1
BACKENDS = ("local", "ray")
SWEEPS_DIR = "sweeps"
MAX_SWEEP_ID_LEN = 60
# TrainConfig fields a sweep sets itself: a spec may not.
RESERVED = ("sweep_id", "seed")
# Always in a point's key (the paper's axes); any other swept field is added after them.
KEY_FIELDS = ("lam", "alpha", "features")
RAY_MISSING = (
    "the ray backend needs Ray, which is not installed: pip install -r requirements-cluster.txt"
)

_SWEEP_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# ----------------------------------------------------------------------------- values


def field_types() -> dict[str, str]:
    return {f.name: str(f.type).replace(" ", "") for f in fields(TrainConfig)}


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def coerce_field(name: str, value: Any) -> Any:
    """`value` (a CLI string or a Python value) as the type of TrainConfig field `name`.

    ConfigError names the field and what was expected, e.g. "lam: expected a number, got 'x'".
    """
    types = field_types()
    if name not in types:
        known = ", ".join(sorted(set(types) - set(RESERVED)))
        raise ConfigError(f"unknown training setting {name!r}; known settings: {known}")
    if name in RESERVED:
        hint = "use --seeds" if name == "seed" else "use --sweep-id"
        raise ConfigError(f"{name} is set by the sweep itself ({hint})")
    kind = types[name]
    text = value.strip() if isinstance(value, str) else None
    try:
        if kind.endswith("|None") and (
            value is None or (text is not None and text.lower() in ("none", ""))
        ):
            return None
        base = kind.removesuffix("|None")
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(text if text is not None else value)
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(text if text is not None else value)
        if base == "bool":
            return _parse_bool(text) if text is not None else bool(value)
        if base == "str":
            if text is None and not isinstance(value, str):
                raise ValueError
            return text
        if base == "list[int]":
            items = text.split(",") if text is not None else list(value)
            return [coerce_int(i) for i in items]
        if base == "dict":
            obj = json.loads(text) if text is not None else value
            if not isinstance(obj, dict):
                raise ValueError
            return dict(obj)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ConfigError(f"{name}: expected {_describe_kind(kind)}, got {value!r}") from None
    raise ConfigError(f"{name} cannot be set by a sweep (type {kind})")


def coerce_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        return int(value.strip())
    if isinstance(value, float) and not value.is_integer():
        raise ValueError
    return int(value)


def _describe_kind(kind: str) -> str:
    names = {
        "float": "a number",
        "int": "an integer",
        "bool": "true or false",
        "str": "a text",
        "list[int]": "comma-separated integers",
        "dict": "a JSON object",
    }
    base = kind.removesuffix("|None")
    return names.get(base, base) + (" or none" if kind.endswith("|None") else "")


def format_value(value: Any) -> str:
    """A value as it appears in a point's key: 0.3 -> "0.3", 1.0 -> "1", [0, 1] -> "0+1"."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (list, tuple)):
        return "+".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}={format_value(v)}" for k, v in sorted(value.items()))
    return str(value)


# ----------------------------------------------------------------------------- spec


def new_sweep_id() -> str:
    return f"sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def validate_sweep_id(sweep_id: str) -> str:
    """A sweep id becomes a file name and the start of run names: one safe path component."""
    if not isinstance(sweep_id, str) or not sweep_id:
        raise ConfigError(f"a sweep id must be a non-empty string, got {sweep_id!r}")
    if len(sweep_id) > MAX_SWEEP_ID_LEN:
        raise ConfigError(
            f"sweep id is {len(sweep_id)} characters long (at most {MAX_SWEEP_ID_LEN})"
        )
    if not _SWEEP_ID_RE.fullmatch(sweep_id) or ".." in sweep_id:
        raise ConfigError(
            f"invalid sweep id {sweep_id!r}: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    return sweep_id


@dataclass
class SweepSpec:
    """What to train: base settings, a grid and/or explicit points, and seeds."""

    base: dict = field(default_factory=dict)  # TrainConfig fields shared by every run (--set)
    grid: dict = field(default_factory=dict)  # field -> list of values, crossed (--grid)
    points: list = field(default_factory=list)  # explicit {field: value} points (--point)
    seeds: list = field(default_factory=lambda: [0])  # every point is trained once per seed
    sweep_id: str | None = None  # None: a new id "sweep-YYYYmmdd-HHMMSS-xxxx"

    def __post_init__(self) -> None:
        if self.sweep_id is None:
            self.sweep_id = new_sweep_id()

    def validate(self) -> SweepSpec:
        """Check and normalise every value in place (strings from the CLI become numbers)."""
        validate_sweep_id(self.sweep_id)
        if not isinstance(self.base, dict) or not isinstance(self.grid, dict):
            raise ConfigError("base and grid must be dicts of TrainConfig fields")
        if not isinstance(self.points, list) or not all(isinstance(p, dict) for p in self.points):
            raise ConfigError("points must be a list of {field: value} dicts")
        self.base = {k: coerce_field(k, v) for k, v in self.base.items()}
        grid = {}
        for name, values in self.grid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                values = [values]
            values = [coerce_field(name, v) for v in values]
            if not values:
                raise ConfigError(f"grid axis {name!r} has no values")
            grid[name] = _unique(values)
        self.grid = grid
        self.points = [{k: coerce_field(k, v) for k, v in p.items()} for p in self.points]
        both = sorted({k for p in self.points for k in p} & set(self.grid))
        if both:
            raise ConfigError(f"{', '.join(both)} given both as a grid axis and in --point")
        try:
            seeds = [coerce_int(s) for s in self.seeds]
        except (ValueError, TypeError):
            raise ConfigError(f"seeds must be integers, got {self.seeds!r}") from None
        if not seeds:
            raise ConfigError("a sweep needs at least one seed")
        self.seeds = _unique(seeds)
        return self

    def axes(self) -> list[str]:
        """The fields that vary between points, in order (grid axes, then point fields)."""
        names = list(self.grid)
        for p in self.points:
            names += [k for k in p if k not in names]
        return names

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _unique(values: list) -> list:
    out: list = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def point_key(cfg, axes: list[str]) -> str:
    """ "lam0.3-alpha0.5-mel-s0": the paper's axes, any other swept field, then the seed."""
    parts = [f"lam{format_value(cfg.lam)}", f"alpha{format_value(cfg.alpha)}", cfg.features]
    parts += [
        f"{name}{format_value(getattr(cfg, name))}" for name in axes if name not in KEY_FIELDS
    ]
    parts.append(f"s{cfg.seed}")
    return "-".join(parts)


def run_name(sweep_id: str, key: str) -> str:
    return f"{sweep_id}-{key}"


def expand(spec: SweepSpec) -> list:
    """One validated TrainConfig per (point, seed), in order: points x grid, seeds innermost.

    Duplicate points (e.g. the same setting reached from two --point lists) appear once.
    """
    spec.validate()
    points = spec.points or [{}]
    names = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[n] for n in names)))
    configs: list = []
    seen: set[str] = set()
    for point in points:
        for combo in combos:
            params = {**spec.base, **point, **dict(zip(names, combo))}
            for seed in spec.seeds:
                cfg = TrainConfig(**{**params, "seed": seed, "sweep_id": spec.sweep_id})
                try:
                    cfg.validate()
                except ConfigError as e:
                    raise ConfigError(f"sweep point {_describe(params, seed)}: {e}") from None
                ident = json.dumps(cfg.to_dict(), sort_keys=True)
                if ident not in seen:
                    seen.add(ident)
                    configs.append(cfg)
    return configs


def lam_alpha_points(lams: Iterable[float], alphas: Iterable[float]) -> list[dict]:
    """The points of a λ × α grid, sorted, with the baseline λ = 0 once (at the smallest α):
    without the center loss α has no effect, so training it once per α would only repeat it.
    What the app's Sensitivity page launches (`ser_lab.experiments.launcher.sweep_spec`)."""
    lams = sorted({float(v) for v in lams})
    alphas = sorted({float(v) for v in alphas})
    if not lams or not alphas:
        raise ConfigError("a sweep needs at least one λ and one α")
    return [
        {"lam": lam, "alpha": alpha}
        for lam in lams
        for alpha in (alphas[:1] if lam == 0 else alphas)
    ]


def _describe(params: dict, seed: int) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in params.items()) + f" seed={seed}"


# ----------------------------------------------------------------------------- manifest


def sweeps_dir(store) -> Path:
    return Path(store.root) / SWEEPS_DIR


def manifest_path(store, sweep_id: str) -> Path:
    return sweeps_dir(store) / f"{validate_sweep_id(sweep_id)}.json"


def read_manifest(store, sweep_id: str) -> dict | None:
    """The sweep's manifest, or None if this store has never seen the sweep."""
    path = manifest_path(store, sweep_id)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunError(f"sweep manifest {path} unreadable: {e.strerror or e}") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunError(f"sweep manifest {path} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != MANIFEST_VERSION:
        raise RunError(f"sweep manifest {path} has an unknown format")
    return manifest


def list_sweeps(store) -> list[str]:
    """Ids of the sweeps with a manifest in this store, sorted."""
    folder = sweeps_dir(store)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if _SWEEP_ID_RE.fullmatch(p.stem))


@contextlib.contextmanager
def sweep_lock(store, sweep_id: str) -> Iterator[None]:
    """Held by the one process launching a sweep (fcntl.flock; released if it dies)."""
    from ser_lab.runs import exclusive_lock

    folder = sweeps_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{validate_sweep_id(sweep_id)}.lock"
    with exclusive_lock(path, f"sweep {sweep_id} is already being run", patience_s=0.0):
        yield


# ----------------------------------------------------------------------------- finding runs


def _normalised(train: dict) -> str:
    return json.dumps(TrainConfig.from_dict(train).to_dict(), sort_keys=True)


def sweep_runs(store, sweep_id: str) -> list:
    """Every run of the sweep in the store (RunSummary rows), sorted by name then creation."""
    rows = [s for s in store.list() if s.sweep_id == sweep_id]
    return sorted(rows, key=lambda s: (s.name, s.created or ""))


def _existing_runs(store, sweep_id: str) -> dict[str, list]:
    """Runs of the sweep by normalised TrainConfig: {config json: [RunSummary, ...]}."""
    from ser_lab.runs import Run

    found: dict[str, list] = {}
    for row in sweep_runs(store, sweep_id):
        if row.state == "broken":
            continue
        try:
            train = Run(Path(store.root) / row.run_id).config.get("train")
        except RunError:
            continue
        if isinstance(train, dict):
            found.setdefault(_normalised(train), []).append(row)
    return found


_PREFERENCE = {"done": 0, "running": 1, "interrupted": 2, "queued": 3, "failed": 4}


def _pick(rows: list):
    """The run to use for a point: a done one, else the one most worth resuming."""
    return min(
        rows, key=lambda r: (_PREFERENCE.get(r.state, 9), -(r.progress or 0.0), r.created or "")
    )


# ----------------------------------------------------------------------------- results


@dataclass
class PointResult:
    """One (point, seed) of a sweep and what happened to it in this launch."""

    key: str
    name: str
    config: dict
    run_id: str | None = None
    state: str = "pending"  # done, failed, interrupted, running (elsewhere), pending
    skipped: bool = False  # already done before this launch (or trained by someone else)
    error: str | None = None


@dataclass
class SweepResult:
    sweep_id: str
    points: list[PointResult]
    manifest: Path

    @property
    def n_done(self) -> int:
        return sum(p.state == "done" for p in self.points)

    @property
    def unfinished(self) -> list[PointResult]:
        """Points not done: failed, interrupted, or being trained by another process."""
        return [p for p in self.points if p.state != "done"]

    @property
    def ok(self) -> bool:
        return not self.unfinished


# ----------------------------------------------------------------------------- one task


def train_point(task: dict, store_root: str, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train (or resume) one point's run in the given store; never raises for a failed run.

    task: {"index", "name", "config" (TrainConfig dict), "run_id" (None: create the run)}.
    should_stop is polled at every batch (and feature file): when it says True the run stops
    as "interrupted". Returns {"index", "run_id", "state", "error"}. Runs in the launcher, a
    pool worker or a Ray worker alike.
    """
    from ser_lab.errors import Interrupted
    from ser_lab.learn.trainer import new_run, train_run
    from ser_lab.runs import RunStore

    out = {"index": task["index"], "run_id": task.get("run_id"), "state": "failed", "error": None}

    def check(*_args) -> None:
        if should_stop is not None and should_stop():
            raise Interrupted()

    try:
        check()
        store = RunStore(store_root)
        if task.get("run_id"):
            run = store.get(task["run_id"])
        else:
            run = new_run(TrainConfig.from_dict(task["config"]), store, name=task["name"])
            out["run_id"] = run.run_id
        with run.lock():
            if run.read_status().get("state") == "done" and run.read_results() is not None:
                out["state"] = "done"  # finished by someone else since the launch looked
                return out
            train_run(run, progress=check, feature_progress=check)
        out["state"] = "done"
    except (Interrupted, KeyboardInterrupt):
        out["state"] = "interrupted"
    except SerLabError as e:
        out["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - one broken point must not stop the sweep
        out["error"] = f"{type(e).__name__}: {e}"
    return out


# ----------------------------------------------------------------------------- local backend


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cuda_device_count() -> int:
    """GPUs torch can see (0 without CUDA)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers(n_tasks: int) -> int:
    """One worker per GPU when there are GPUs, else one per CPU core; never more than tasks."""
    n = cuda_device_count() or available_cores()
    return max(1, min(n, n_tasks))


_WORKER_STOP = None  # the pool's stop event, in a pool worker


def _init_worker(threads: int, gpu_queue, stop_event) -> None:
    """Pool worker start-up: its GPU and thread count BEFORE torch is imported."""
    global _WORKER_STOP
    _WORKER_STOP = stop_event
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    # Ctrl-C reaches every process of the terminal: a run in training stops itself (train_run
    # handles SIGINT while it runs); an idle worker leaves stopping to the launcher.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_task(task: dict, store_root: str) -> dict:
    stop = _WORKER_STOP
    return train_point(task, store_root, should_stop=stop.is_set if stop is not None else None)


def _prepare_data(configs: list) -> None:
    """Fill the feature cache once per distinct corpus/feature setting, before the workers."""
    from ser_lab.learn.trainer import load_data

    seen: set[str] = set()
    for cfg in configs:
        ident = json.dumps(
            [cfg.corpus, cfg.root, cfg.corpus_options, cfg.classes, cfg.features], sort_keys=True
        )
        if ident not in seen:
            seen.add(ident)
            load_data(cfg)


def _run_local(
    tasks: list[dict], store_root: str, workers: int, on_done: Callable[[dict], None]
) -> None:
    """Train the tasks in `workers` processes (or here, for one worker).

    Stopping: Ctrl-C / SIGTERM of the launcher sets a shared event; every worker polls it at
    each batch, so runs in training end "interrupted" within a batch and queued tasks do not
    start. A task that comes back interrupted in this process (its own SIGTERM / Ctrl-C)
    stops the sweep too.
    """
    if workers == 1:
        for task in tasks:
            result = train_point(task, store_root)
            on_done(result)
            if result["state"] == "interrupted":
                raise KeyboardInterrupt
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # never fork a process that may hold torch threads
    n_gpus = cuda_device_count()
    gpu_queue = None
    if n_gpus:
        gpu_queue = ctx.Queue()
        for i in range(workers):
            gpu_queue.put(i % n_gpus)
    stop = ctx.Event()
    threads = max(1, available_cores() // workers)
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, gpu_queue, stop)
    )
    futures = {pool.submit(_pool_task, task, store_root): task for task in tasks}
    reported: set = set()
    try:
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool:
                task = futures[fut]
                result = {
                    "index": task["index"],
                    "run_id": task.get("run_id"),
                    "state": "interrupted",
                    "error": "a worker process died (killed, or out of memory?)",
                }
            reported.add(fut)
            on_done(result)
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for fut in futures:  # the runs in training record "interrupted" within a batch
            if fut in reported or fut.cancelled():
                continue
            with contextlib.suppress(BaseException):
                on_done(fut.result(timeout=120))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- ray backend


def import_ray():
    """Ray, or ConfigError saying how to install it (it is an optional dependency)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def ray_runtime_env() -> dict:
    """The job's runtime environment: this ser_lab package shipped to every worker (so all
    nodes run the launcher's code) and $SER_LAB_CACHE passed on when it is set.

    Used when run_sweep connects to Ray itself; a caller that calls ray.init first should
    pass it (`ray.init(..., runtime_env=ray_runtime_env())`) unless ser_lab is installed on
    every node.
    """
    env: dict = {"py_modules": [str(Path(__file__).resolve().parent)]}
    if os.environ.get("SER_LAB_CACHE"):
        env["env_vars"] = {"SER_LAB_CACHE": os.environ["SER_LAB_CACHE"]}
    return env


def _ray_task(task: dict, store_root: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(max(1, threads))
    return train_point(task, store_root)


def _run_ray(
    tasks: list[dict],
    store_root: str,
    workers: int | None,
    address: str | None,
    cpus_per_task: float,
    gpus_per_task: float,
    on_done: Callable[[dict], None],
) -> None:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, runtime_env=ray_runtime_env(), logging_level="WARNING")
    remote = ray.remote(_ray_task).options(
        num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0
    )
    threads = max(1, int(cpus_per_task))
    pending = list(tasks)
    in_flight: dict = {}
    limit = workers or len(tasks)
    try:
        while pending or in_flight:
            while pending and len(in_flight) < limit:
                task = pending.pop(0)
                in_flight[remote.remote(task, store_root, threads)] = task
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                task = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a lost node or worker
                    result = {
                        "index": task["index"],
                        "run_id": task.get("run_id"),
                        "state": "interrupted",
                        "error": f"ray task failed: {type(e).__name__}: {e}",
                    }
                on_done(result)
    except BaseException:
        for ref in in_flight:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        raise
    finally:
        if started_here:
            ray.shutdown()


# ----------------------------------------------------------------------------- the sweep


def run_sweep(
    spec: SweepSpec,
    store=None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: Callable[[dict], None] | None = None,
    *,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    retry_failed: bool = True,
) -> SweepResult:
    """Train every point of the sweep not already done; returns what happened to each.

    progress, if given, is called with {"event": "skipped"|"finished", "key", "run_id",
    "state", "error", "done", "total"} for every point (done = points finished so far,
    skipped ones included). Ctrl-C / SIGTERM stop the sweep (KeyboardInterrupt is re-raised
    after the manifest is written); failed runs do not stop it.
    """
    from ser_lab.runs import RunStore

    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if cpus_per_task <= 0 or gpus_per_task < 0:
        raise ConfigError("cpus per task must be > 0 and gpus per task >= 0")
    if backend == "ray":
        import_ray()  # fail before anything is written
    store = store if store is not None else RunStore()
    store = RunStore(Path(store.root).resolve())
    configs = expand(spec)
    axes = spec.axes()
    points = []
    for cfg in configs:
        key = point_key(cfg, axes)
        points.append(PointResult(key=key, name=run_name(spec.sweep_id, key), config=cfg.to_dict()))
    with sweep_lock(store, spec.sweep_id), _sigterm_as_interrupt():
        manifest = _start_manifest(store, spec, points, backend)
        existing = _existing_runs(store, spec.sweep_id)
        tasks = []
        done = 0
        for i, point in enumerate(points):
            rows = existing.get(_normalised(point.config), [])
            chosen = _pick(rows) if rows else None
            if chosen is not None:
                point.run_id = chosen.run_id
                point.state = chosen.state
            skip = chosen is not None and (
                chosen.state == "done"
                or chosen.state == "running"
                or (chosen.state == "failed" and not retry_failed)
            )
            if skip:
                point.skipped = True
                point.error = chosen.error
                done += 1
                _notify(progress, "skipped", point, done, len(points))
                continue
            tasks.append(
                {"index": i, "name": point.name, "config": point.config, "run_id": point.run_id}
            )
        _write_manifest(store, manifest, points)

        def on_done(result: dict) -> None:
            nonlocal done
            point = points[result["index"]]
            point.run_id = result["run_id"] or point.run_id
            point.state, point.error = result["state"], result["error"]
            done += 1
            _write_manifest(store, manifest, points)
            _notify(progress, "finished", point, done, len(points))

        if tasks:
            try:
                if backend == "local":
                    n = workers or default_workers(len(tasks))
                    n = min(n, len(tasks))
                    if n > 1:
                        _prepare_data([configs[t["index"]] for t in tasks])
                    _run_local(tasks, str(store.root), n, on_done)
                else:
                    _run_ray(
                        tasks,
                        str(store.root),
                        workers,
                        address,
                        cpus_per_task,
                        gpus_per_task,
                        on_done,
                    )
            except BaseException:
                for point in points:
                    if point.state not in ("done", "failed", "running"):
                        point.state = "interrupted"
                _write_manifest(store, manifest, points)
                raise
    return SweepResult(spec.sweep_id, points, manifest_path(store, spec.sweep_id))


def _notify(progress, event: str, point: PointResult, done: int, total: int) -> None:
    if progress:
        progress(
            {
                "event": event,
                "key": point.key,
                "name": point.name,
                "run_id": point.run_id,
                "state": point.state,
                "error": point.error,
                "done": done,
                "total": total,
            }
        )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a sweep runs, SIGTERM stops it like Ctrl-C (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_manifest(store, spec: SweepSpec, points: list[PointResult], backend: str) -> dict:
    """The manifest to keep writing: a re-launch must keep the spec's base settings (a sweep
    is one experiment) and adds any new points after the old ones."""
    old = read_manifest(store, spec.sweep_id)
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    if old is None:
        return {
            "format_version": MANIFEST_VERSION,
            "sweep_id": spec.sweep_id,
            "created": now,
            "spec": spec.to_dict(),
            "backend": backend,
            "earlier_points": [],
        }
    old_base = SweepSpec.from_dict(old["spec"]).validate().base
    if old_base != spec.base:
        raise ConfigError(
            f"sweep {spec.sweep_id} was launched with settings {old_base}, now {spec.base}; "
            "use a new --sweep-id for different settings (or --resume to repeat the old ones)"
        )
    keys = {p.key for p in points}
    earlier = [p for p in old.get("points", []) if p.get("key") not in keys]
    return {**old, "spec": spec.to_dict(), "backend": backend, "earlier_points": earlier}


def _write_manifest(store, manifest: dict, points: list[PointResult]) -> None:
    manifest = dict(manifest)
    earlier = manifest.pop("earlier_points", [])
    manifest["updated"] = datetime.now().astimezone().isoformat(timespec="seconds")
    manifest["store"] = str(Path(store.root).resolve())
    manifest["points"] = earlier + [
        {
            "key": p.key,
            "name": p.name,
            "run_id": p.run_id,
            "state": p.state,
            "error": p.error,
            "params": {k: p.config[k] for k in (*KEY_FIELDS, "seed")} | _other_axes(manifest, p),
        }
        for p in points
    ]
    fileio.atomic_write_json(manifest_path(store, manifest["sweep_id"]), manifest)


def _other_axes(manifest: dict, point: PointResult) -> dict:
    spec = SweepSpec.from_dict(manifest["spec"])
    return {k: point.config[k] for k in spec.axes() if k not in KEY_FIELDS}


# ----------------------------------------------------------------------------- CLI
