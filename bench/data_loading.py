"""Share of a training run spent in data loading, once features are cached (EmoDB).

    nice -n 5 .venv/bin/python bench/data_loading.py [--root ../shared/datasets/emodb]
        [--folds 1] [--epochs 2] [--threads 1]

Target: a whole EmoDB 5-fold run spends < 5 % of its wall time in data loading once the
features are cached.

How: a real `train_run` (the trainer itself, EmoDB, 4 classes, speaker-independent 5-fold
split, Mel) into a temporary run store, with its features already in a (temporary) feature
cache. The cache is filled first by one cold `load_data` pass, timed and reported but not part
of the fraction. The trainer's own functions are wrapped with timers in this process only
(`ser_lab.learn.trainer.load_data`, `pad_batch`, `spec_augment`, `prepare_fold`, `train_fold`,
`finish_fold`, and inside load_data: `load_corpus`, `extract_corpus`, `make_folds`):

- data loading = load_data (manifest + cached features + folds, paid once per run)
  + pad_batch (every batch, training and prediction);
- also reported: SpecAugment masks and per-fold normalisation (prepare_fold), which are data
  preparation but not loading.

Measured: --folds folds x --epochs epochs. Extrapolated (labelled as such) to 5 folds x 20
epochs (bench/reproduce.py) and 5 x 30 (TrainConfig's default): load_data is paid once per run,
prepare_fold and finish_fold once per fold, an epoch (with its padding) once per fold and epoch,
using the measured costs. Only fold 0 is trained; EmoDB's folds differ in size by a few
utterances. Prints JSON (last stdout line) and writes bench/results/data_loading.json.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ser_lab.data.corpora  # noqa: E402
import ser_lab.data.features  # noqa: E402
import ser_lab.data.splits  # noqa: E402
from ser_lab.config import TrainConfig  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn import trainer  # noqa: E402
from ser_lab.learn.trainer import new_run, train_run  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

DEFAULT_ROOT = ROOT.parent / "shared" / "datasets" / "emodb"


class Timers:
    """Wall seconds and calls per wrapped function; `phase` says which fold stage runs now."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.phase = "setup"

    def wrap(self, name: str, fn: Callable, by_phase: bool = False) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                key = f"{name}@{self.phase}" if by_phase else name
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0
                self.calls[key] = self.calls.get(key, 0) + 1

        return timed

    def total(self, name: str) -> float:
        return sum(v for k, v in self.seconds.items() if k == name or k.startswith(name + "@"))


@contextlib.contextmanager
def instrumented(timers: Timers) -> Iterator[None]:
    """Replace the trainer's functions by timed wrappers (this process only), then restore."""
    patches = [
        (trainer, "load_data", timers.wrap("load_data", trainer.load_data)),
        (trainer, "pad_batch", timers.wrap("pad_batch", trainer.pad_batch, by_phase=True)),
        (trainer, "spec_augment", timers.wrap("spec_augment", trainer.spec_augment)),
        (trainer, "prepare_fold", timers.wrap("prepare_fold", trainer.prepare_fold)),
        (ser_lab.data.corpora, "load_corpus", timers.wrap("load_corpus", ser_lab.data.corpora.load_corpus)),
        (ser_lab.data.features, "extract_corpus",
         timers.wrap("extract_corpus", ser_lab.data.features.extract_corpus)),
        (ser_lab.data.splits, "make_folds", timers.wrap("make_folds", ser_lab.data.splits.make_folds)),
    ]
    original_train_fold, original_finish = trainer.train_fold, trainer.finish_fold

    def train_fold(*args, **kwargs):
        timers.phase = "epochs"
        try:
            return timers.wrap("train_fold", original_train_fold)(*args, **kwargs)
        finally:
            timers.phase = "setup"

    def finish_fold(*args, **kwargs):
        timers.phase = "finish"
        try:
            return timers.wrap("finish_fold", original_finish)(*args, **kwargs)
        finally:
            timers.phase = "epochs"

    patches += [(trainer, "train_fold", train_fold), (trainer, "finish_fold", finish_fold)]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    for mod, name, fn in patches:
        setattr(mod, name, fn)
    try:
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)


def measure(cfg: TrainConfig, store: RunStore) -> dict:
    """Train `cfg` with timers; returns measured seconds per part."""
    timers = Timers()
    epoch_done: list[float] = []

    def progress(event: dict) -> None:
        if event.get("epoch_done"):
            epoch_done.append(time.perf_counter())

    run = new_run(cfg, store, name="bench-data-loading")
    with instrumented(timers), run.lock():
        t0 = time.perf_counter()
        results = train_run(run, progress=progress)
        total = time.perf_counter() - t0
    epochs_run = len(epoch_done)
    fold_s = timers.total("train_fold")
    finish_s = timers.total("finish_fold")
    return {
        "total_s": total,
        "load_data_s": timers.total("load_data"),
        "load_parts_s": {k: timers.total(k) for k in ("load_corpus", "extract_corpus", "make_folds")},
        "pad_batch_s": timers.total("pad_batch"),
        "pad_batch_epochs_s": timers.seconds.get("pad_batch@epochs", 0.0),
        "pad_batch_finish_s": timers.seconds.get("pad_batch@finish", 0.0),
        "pad_batch_calls": sum(v for k, v in timers.calls.items() if k.startswith("pad_batch")),
        "spec_augment_s": timers.total("spec_augment"),
        "prepare_fold_s": timers.total("prepare_fold"),
        "train_fold_s": fold_s,
        "finish_fold_s": finish_s,
        "epochs_s": fold_s - finish_s,
        "epochs_run": epochs_run,
        "test_UA": results["mean"]["UA"],
    }


def extrapolate(m: dict, folds_measured: int, folds: int, epochs: int) -> dict:
    """Total and loading share of a folds x epochs run from the measured per-part costs."""
    n_fold_epochs = m["epochs_run"]
    per_epoch = m["epochs_s"] / n_fold_epochs
    pad_per_epoch = m["pad_batch_epochs_s"] / n_fold_epochs
    per_fold = (m["prepare_fold_s"] + m["finish_fold_s"]) / folds_measured
    pad_per_fold = m["pad_batch_finish_s"] / folds_measured
    once = m["total_s"] - m["train_fold_s"] - m["prepare_fold_s"]  # load_data + run bookkeeping
    total = once + folds * per_fold + folds * epochs * per_epoch
    pad = folds * pad_per_fold + folds * epochs * pad_per_epoch
    loading = m["load_data_s"] + pad
    return {
        "label": f"EXTRAPOLATED to {folds} folds x {epochs} epochs from the measured run",
        "total_s": round(total, 1),
        "load_data_s": round(m["load_data_s"], 3),
        "pad_batch_s": round(pad, 2),
        "loading_fraction": round(loading / total, 5),
        "load_data_fraction": round(m["load_data_s"] / total, 5),
        "pad_fraction": round(pad / total, 5),
        "meets_5_percent": loading / total < 0.05,
    }


def run(root: Path, folds: int, epochs: int, threads: int, cache: Path | None = None) -> dict:
    """The whole measurement (see the module docstring); returns the result dict."""
    torch.set_num_threads(threads)
    result: dict = {
        "benchmark": "data_loading",
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads,
                    "torch": torch.__version__, "python": platform.python_version(),
                    "loadavg_start": [round(v, 2) for v in os.getloadavg()]},
    }
    previous_cache = os.environ.get("SER_LAB_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SER_LAB_CACHE"] = str(cache or Path(tmp) / "cache")
        try:
            cfg = TrainConfig(corpus="emodb", root=str(root), epochs=epochs, n_folds=5,
                              folds=list(range(folds)), protocol="speaker", features="mel",
                              lam=0.3, seed=0, workers=1)
            t0 = time.perf_counter()
            manifest, _, split = trainer.load_data(cfg)
            result["cache_fill_s"] = round(time.perf_counter() - t0, 2)
            result["cache_fill_note"] = ("first load_data into the cache (cold unless --cache "
                                         "held the features already); not part of the fractions")
            result["corpus"] = {"name": "emodb", "root": str(root), "utterances": len(manifest),
                                "labels": list(manifest.labels),
                                "fold0_sizes": {p: len(getattr(split[0], p))
                                                for p in ("train", "val", "test")}}
            m = measure(cfg, RunStore(Path(tmp) / "runs"))
        finally:
            if previous_cache is None:
                os.environ.pop("SER_LAB_CACHE", None)
            else:
                os.environ["SER_LAB_CACHE"] = previous_cache
    loading = m["load_data_s"] + m["pad_batch_s"]
    result["measured"] = {
        "label": f"MEASURED: {folds} fold(s) x {epochs} epochs, features cached",
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()
           if k != "load_parts_s"},
        "load_parts_s": {k: round(v, 4) for k, v in m["load_parts_s"].items()},
        "loading_fraction": round(loading / m["total_s"], 5),
        "load_data_fraction": round(m["load_data_s"] / m["total_s"], 5),
        "pad_fraction": round(m["pad_batch_s"] / m["total_s"], 5),
        "spec_augment_fraction": round(m["spec_augment_s"] / m["total_s"], 5),
        "prepare_fold_fraction": round(m["prepare_fold_s"] / m["total_s"], 5),
        "per_epoch_s": round(m["epochs_s"] / m["epochs_run"], 2),
    }
    result["extrapolated_5x20"] = extrapolate(m, folds, 5, 20)
    result["extrapolated_5x30"] = extrapolate(m, folds, 5, 30)
    result["loading_fraction"] = result["extrapolated_5x20"]["loading_fraction"]
    result["meets_5_percent"] = result["extrapolated_5x20"]["meets_5_percent"]
    result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--folds", type=int, default=1, help="folds to train (0..k-1)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cache", type=Path, default=None,
                        help="feature cache to use (default: a fresh temporary one, filled by a "
                             "cold pass first)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data_loading.json")
    args = parser.parse_args()
    result = run(args.root, args.folds, args.epochs, args.threads, args.cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
