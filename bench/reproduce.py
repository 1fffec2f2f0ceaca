"""Reproduce the paper's comparison: baseline (lambda = 0) vs center loss (lambda = 0.3, alpha = 0.5).

Default: EmoDB (../shared/datasets/emodb), 4 classes, speaker-independent 5-fold, Mel features,
3 seeds per setting. Every (setting, seed) is a normal run folder in the run store, so the app
and `python -m ser_lab compare` can open them. Finished runs are reused on a re-launch.

    python bench/reproduce.py                                   # EmoDB -> bench/results/emodb_reproduction.json
    python bench/reproduce.py --corpus synthetic --out bench/results/synthetic_reproduction.json

Prints the JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402
from ser_lab.stats import mean_std, paired_difference  # noqa: E402
from ser_lab.trainer import TrainConfig, new_run, train_run  # noqa: E402

SETTINGS = {"baseline": {"lam": 0.0, "alpha": 0.5}, "center_loss": {"lam": 0.3, "alpha": 0.5}}


def find_run(store: RunStore, name: str) -> tuple[str | None, str | None]:
    """The newest run with this name and its state (done runs first), or (None, None)."""
    matches = [s for s in store.list() if s.name == name]
    for s in matches:
        if s.state == "done":
            return s.run_id, s.state
    return (matches[0].run_id, matches[0].state) if matches else (None, None)


def summarise(results: list[dict], run_ids: list[str], seeds: list[int]) -> dict:
    """Mean and std over seeds of each seed's fold-mean UA/WA (percent), plus per-class recall."""
    ua = mean_std(100 * r["mean"]["UA"] for r in results)
    wa = mean_std(100 * r["mean"]["WA"] for r in results)
    labels = results[0]["labels"]
    recall = {
        name: float(np.mean([100 * r["pooled"]["recall"].get(name, np.nan) for r in results]))
        for name in labels
    }
    return {
        "UA_mean": ua.mean,
        "UA_std": ua.std,  # sample std over seeds (None for one seed)
        "WA_mean": wa.mean,
        "WA_std": wa.std,
        "per_class_recall": recall,
        "per_seed": [
            {
                "seed": s,
                "run_id": rid,
                "UA": 100 * r["mean"]["UA"],
                "WA": 100 * r["mean"]["WA"],
                "UA_pooled": 100 * r["pooled"]["UA"],
                "WA_pooled": 100 * r["pooled"]["WA"],
                "fold_UA": [100 * f["UA"] for f in r["folds"]],
                "fold_WA": [100 * f["WA"] for f in r["folds"]],
                "best_epochs": [f["best_epoch"] for f in r["folds"]],
            }
            for s, rid, r in zip(seeds, run_ids, results)
        ],
    }


def fold_units(setting: dict, metric: str) -> dict[tuple[int, int], float]:
    """{(seed, fold): test-fold metric in percent} for one setting's summary."""
    return {
        (row["seed"], k): value
        for row in setting["per_seed"]
        for k, value in enumerate(row[f"fold_{metric}"])
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="emodb")
    p.add_argument("--root", default=str(ROOT.parent / "shared" / "datasets" / "emodb"))
    p.add_argument("--size", default=None, help="synthetic corpus size")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--protocol", default="speaker")
    p.add_argument("--features", default="mel")
    p.add_argument("--store", default=None, help="run store (default: checkpoints/)")
    p.add_argument("--out", default=None)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                   help="train only these settings (run two processes side by side, then once "
                        "more with no --settings to write the summary from the finished runs)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    root = None if args.corpus == "synthetic" else args.root
    options = {"size": args.size} if args.size else {}
    out = Path(args.out or ROOT / "bench" / "results" / f"{args.corpus}_reproduction.json")
    store = RunStore(Path(args.store) if args.store else None)
    summary: dict = {
        "corpus": args.corpus,
        "corpus_options": options,
        "protocol": args.protocol,
        "n_folds": args.folds,
        "features": args.features,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "model_selection": "best validation UA (speaker-disjoint validation part of each training fold)",
    }
    corpus = f"{args.corpus}-{args.size}" if args.size else args.corpus  # in run names
    started = time.time()
    for setting, params in SETTINGS.items():
        if setting not in args.settings:
            continue
        results, run_ids = [], []
        for seed in args.seeds:
            name = f"repro-{corpus}-{setting}-{args.features}-e{args.epochs}-s{seed}"
            run_id, state = find_run(store, name)
            if state in ("interrupted", "failed", "queued"):
                run = store.get(run_id)  # an interrupted run continues from its last epoch
                with run.lock():
                    train_run(run)
            elif run_id is None:
                cfg = TrainConfig(
                    corpus=args.corpus, root=root, corpus_options=options, features=args.features,
                    epochs=args.epochs, n_folds=args.folds, protocol=args.protocol, seed=seed, **params,
                )
                run = new_run(cfg, store, name=name)
                t0 = time.time()
                with run.lock():
                    train_run(run)
                print(f"{name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
                run_id = run.run_id
            run = store.get(run_id)
            results.append(run.read_results())
            run_ids.append(run_id)
        summary[setting] = {**params, **summarise(results, run_ids, args.seeds)}
    if len(args.settings) < len(SETTINGS):
        print(json.dumps({k: summary[k] for k in args.settings}))
        return
    summary["UA_difference"] = summary["center_loss"]["UA_mean"] - summary["baseline"]["UA_mean"]
    summary["WA_difference"] = summary["center_loss"]["WA_mean"] - summary["baseline"]["WA_mean"]
    # Paired over the same (seed, fold) units: the folds' speakers and the seeds match.
    for metric in ("UA", "WA"):
        units = {s: fold_units(summary[s], metric) for s in SETTINGS}
        summary[f"{metric}_paired"] = paired_difference(units["baseline"], units["center_loss"]).to_dict()
    summary["wall_time_s"] = time.time() - started
    atomic_write_json(out, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
