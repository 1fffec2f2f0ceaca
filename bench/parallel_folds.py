"""Wall time of one run's folds trained one after another vs in parallel processes.

    .venv/bin/python bench/parallel_folds.py                      # EmoDB, 5 folds, Mel, 5 epochs
    .venv/bin/python bench/parallel_folds.py --corpus synthetic --size tiny --epochs 1 --folds 2 --out /tmp/p.json

Both arms are the trainer a user runs (`ser_lab.learn.trainer.train_run`, patience 0 so both train
every epoch, no map precomputation): "sequential" trains the folds one after another with all
of this process's torch threads; "parallel" trains them in `ser_lab.learn.parallel` worker processes,
one per thread (TrainConfig.parallel_folds="auto", threads divided between them). The feature
cache is filled before any timing. The load average is recorded before and after each arm
(a loaded machine makes the figure meaningless; run it on a quiet one). What bounds the
speed-up: the slowest fold sets the parallel wall time (folds differ in size), each worker
pays its start (torch import, reading the corpus from the feature cache), and the two
processes share the memory bandwidth. Target: >= 1.3x; `ser_lab.learn.parallel.PARALLEL_BY_DEFAULT`
is switched on only if this measurement reaches it. Writes bench/results/parallel_folds.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import EMODB_ROOT, code_state  # noqa: E402

TARGET_SPEEDUP = 1.3


def timed_arm(cfg, store_root: Path) -> dict:
    """Train `cfg` in a fresh run store; wall time, load average and the pooled scores."""
    from ser_lab.learn.trainer import new_run, train_run
    from ser_lab.runs import RunStore

    run = new_run(cfg, RunStore(store_root))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with run.lock():
        results = train_run(run)
    wall = time.perf_counter() - t0
    per_fold = {}
    for m in run.read_metrics():
        per_fold[m["fold"]] = per_fold.get(m["fold"], 0.0) + m["train_time_s"]
    return {
        "wall_s": round(wall, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "train_time_per_fold_s": {str(k): round(v, 2) for k, v in sorted(per_fold.items())},
        "UA_mean": results["mean"]["UA"],
        "fold_UA": [f["UA"] for f in results["folds"]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="emodb")
    parser.add_argument("--root", default=str(EMODB_ROOT))
    parser.add_argument("--size", default=None, help="synthetic corpus size (e.g. tiny)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "parallel_folds.json"))
    args = parser.parse_args()

    import torch

    from ser_lab.config import TrainConfig
    from ser_lab.experiments.sweep import available_cores
    from ser_lab.fileio import atomic_write_json
    from ser_lab.learn.parallel import resolve_parallel_folds, threads_per_fold
    from ser_lab.learn.trainer import load_data

    base = TrainConfig(
        corpus=args.corpus,
        root=None if args.corpus == "synthetic" else str(Path(args.root).resolve()),
        corpus_options={"size": args.size} if args.size else {},
        features="mel", epochs=args.epochs, patience=0, n_folds=args.folds, seed=0,
        precompute_maps=False,
    ).validate()
    load_data(base)  # fill the feature cache: not what this measures
    budget = torch.get_num_threads()
    n_parallel = resolve_parallel_folds("auto", args.folds, budget, "cpu")
    arms = {}
    with tempfile.TemporaryDirectory(prefix="ser-lab-bench-parallel-") as tmp:
        for name, setting in (("sequential", 1), ("parallel", "auto")):
            cfg = TrainConfig(**{**base.to_dict(), "parallel_folds": setting})
            arms[name] = timed_arm(cfg, Path(tmp) / name)
            print(f"{name}: {arms[name]['wall_s']} s", file=sys.stderr, flush=True)
    speedup = arms["sequential"]["wall_s"] / arms["parallel"]["wall_s"]
    result = {
        "benchmark": "one run's folds: sequential vs parallel processes (train_run)",
        "corpus": args.corpus, "size": args.size, "features": "mel", "epochs": args.epochs,
        "folds": args.folds, "patience": 0,
        "sequential": {**arms["sequential"], "processes": 1, "threads": budget},
        "parallel": {**arms["parallel"], "processes": n_parallel,
                     "threads_per_process": threads_per_fold(n_parallel, budget)},
        "speedup": round(speedup, 3),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": speedup >= TARGET_SPEEDUP,
        "same_scores": arms["sequential"]["fold_UA"] == arms["parallel"]["fold_UA"],
        "machine": {
            "platform": platform.platform(), "python": platform.python_version(),
            "cores": available_cores(), "torch": torch.__version__, "torch_threads": budget,
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "code": code_state(),
    }
    atomic_write_json(args.out, result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
