"""What the training benches share: where their runs live, how they are named, reused and
summarised, and the provenance every result JSON records (commit, machine, load).

bench/reproduce.py and bench/objectives.py train the same kinds of runs (the softmax baseline
and the paper's center loss are arms of both), so both name them with `run_name`: a run one
bench trained is reused by the other instead of being trained twice.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EMODB_ROOT = ROOT.parent / "shared" / "datasets" / "emodb"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ser_lab.analysis.discriminability import discriminability, knn_accuracy  # noqa: E402
from ser_lab.analysis.stats import mean_std  # noqa: E402
from ser_lab.choices import NORMALISATIONS  # noqa: E402
from ser_lab.config import TrainConfig  # noqa: E402
from ser_lab.learn.trainer import new_run, train_run  # noqa: E402
from ser_lab.runs import Run, RunStore  # noqa: E402

DEFAULTS = TrainConfig()
FEATURE_KEYS = ("intra_inter_ratio", "fisher", "silhouette")
LAYOUTS = ("channels-last", "default")
FEATURE_SPACE = "test z of each fold vs its class means; 5-NN fitted on train z; mean over seeds x folds"


def code_state() -> dict:
    """The commit the code ran on, and whether tracked files other than bench/results/ (the
    outputs of benches, e.g. one run just before this one) differed from it."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        except OSError:
            return ""
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"))}


def machine(**extra: object) -> dict:
    """CPU count, load average (1, 5, 15 min) now, platform, Python and torch versions."""
    import torch

    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        **extra,
    }


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    """--corpus, --root, --size, --seeds, --folds, --protocol, --store, --out: what every
    training bench is run on."""
    p.add_argument("--corpus", default="emodb")
    p.add_argument("--root", default=str(EMODB_ROOT))
    p.add_argument("--size", default=None, help="synthetic corpus size")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--protocol", default="speaker")
    p.add_argument("--store", default=None, help="run store (default: checkpoints/)")
    p.add_argument("--out", default=None)


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """--features, --epochs, --patience, --augment, --parallel-folds, --threads, defaulting to
    the trainer's own recipe so that a bench measures what a user gets."""
    p.add_argument("--features", default="mel")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                   help="most epochs per fold (default: the trainer's)")
    p.add_argument("--patience", type=int, default=DEFAULTS.patience,
                   help="early-stopping patience on validation UA, 0 = train every epoch (default: the trainer's)")
    add_augment_normalise_args(p)
    p.add_argument("--refit", choices=["on", "off"], default="on" if DEFAULTS.refit else "off",
                   help="train each fold again on train + validation for the chosen epoch count (default: the trainer's)")
    p.add_argument("--parallel-folds", default="auto",
                   help="folds trained at once (default auto: one per core; the results do not depend on it)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--layout", choices=LAYOUTS, default=layout_name(DEFAULTS.channels_last),
                   help="conv weight layout on a CPU (default: the trainer's); 'default' repeats the "
                        "arithmetic of runs trained before channels-last, so new seeds pair with them")


def layout_name(channels_last: bool) -> str:
    return "channels-last" if channels_last else "default"


def add_augment_normalise_args(p: argparse.ArgumentParser) -> None:
    """--augment on|off and --normalise, defaulting to the trainer's (every training bench)."""
    p.add_argument("--augment", choices=["on", "off"], default="on" if DEFAULTS.augment else "off",
                   help="SpecAugment masks on training batches (default: the trainer's)")
    p.add_argument("--normalise", choices=NORMALISATIONS, default=DEFAULTS.normalise,
                   help="per-bin standardisation statistics (default: the trainer's)")


def recipe_config(args: argparse.Namespace, **fields: object) -> TrainConfig:
    """The TrainConfig of one bench run: the corpus and recipe arguments plus `fields`
    (seed, the arm's settings)."""
    parallel = args.parallel_folds if args.parallel_folds in ("auto", None) else int(args.parallel_folds)
    return TrainConfig(
        corpus=args.corpus, root=None if args.corpus == "synthetic" else args.root,
        corpus_options={"size": args.size} if args.size else {}, features=args.features,
        epochs=args.epochs, patience=args.patience, augment=args.augment == "on",
        refit=getattr(args, "refit", "off") == "on", normalise=getattr(args, "normalise", DEFAULTS.normalise),
        n_folds=args.folds, protocol=args.protocol, parallel_folds=parallel,
        channels_last=getattr(args, "layout", layout_name(DEFAULTS.channels_last)) == "channels-last", **fields,
    )


def recipe_summary(args: argparse.Namespace) -> dict:
    """The corpus and recipe a bench's JSON records."""
    return {
        "corpus": args.corpus, "corpus_options": {"size": args.size} if args.size else {},
        "protocol": args.protocol, "n_folds": args.folds, "features": args.features,
        "epochs": args.epochs, "patience": args.patience, "augment": args.augment == "on",
        "refit": getattr(args, "refit", "off") == "on",
        "normalise": getattr(args, "normalise", DEFAULTS.normalise),
        "layout": getattr(args, "layout", layout_name(DEFAULTS.channels_last)),
        "recipe": recipe_tag(recipe_config(args)), "seeds": args.seeds,
        "model_selection": "best validation UA (speaker-disjoint validation part of each training fold)"
        + ("; that epoch count then trained again on train + validation, the last epoch kept"
           if getattr(args, "refit", "off") == "on" else ""),
        "feature_measures": FEATURE_SPACE,
    }


def corpus_tag(args: argparse.Namespace) -> str:
    """The corpus in run names: its name, and its size for the synthetic corpus."""
    return f"{args.corpus}-{args.size}" if args.size else args.corpus


def recipe_tag(cfg: TrainConfig) -> str:
    """The training recipe in a run name: epochs (a maximum when patience > 0), patience,
    SpecAugment, normalisation, refit, and the default weight layout where channels-last is not
    used; parallel folds are not part of it (they do not change the result)."""
    return (f"e{cfg.epochs}p{cfg.patience}" + ("" if cfg.augment else "-noaug")
            + ("" if cfg.normalise == "corpus" else f"-{cfg.normalise}") + ("-refit" if cfg.refit else "")
            + ("" if cfg.channels_last else "-nchw"))


def run_name(bench: str, corpus: str, arm: str, cfg: TrainConfig) -> str:
    return f"{bench}-{corpus}-{arm}-{cfg.features}-{recipe_tag(cfg)}-s{cfg.seed}"


def find_run(store: RunStore, name: str) -> tuple[str | None, str | None]:
    """The newest run with this name and its state (done runs first), or (None, None)."""
    matches = [s for s in store.list() if s.name == name]
    for s in matches:
        if s.state == "done":
            return s.run_id, s.state
    return (matches[0].run_id, matches[0].state) if matches else (None, None)


def ensure_run(store: RunStore, name: str, cfg: TrainConfig) -> Run:
    """The finished run called `name`: reused if done, resumed if stopped, else trained."""
    run_id, state = find_run(store, name)
    if run_id is None:
        run = new_run(cfg, store, name=name)
    else:
        run = store.get(run_id)
        if state == "done":
            return run
    t0 = time.time()
    with run.lock():
        train_run(run)
    print(f"{name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return run


def summarise(results: list[dict], run_ids: list[str], seeds: list[int]) -> dict:
    """Mean and sample std over seeds of each seed's fold-mean UA/WA (percent), per-class recall
    (mean over seeds of the pooled recall), and per seed its folds' scores and how each stopped."""
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
                "epochs_trained": [f.get("epochs_trained") for f in r["folds"]],
                "stop_reasons": [f.get("stop_reason") for f in r["folds"]],
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


def feature_space(runs: list[Run]) -> dict:
    """Mean over runs and folds of the test z's discriminability and 5-NN UA (train -> test),
    against the empirical class means so that every objective is measured the same way."""
    values: dict[str, list[float]] = {k: [] for k in (*FEATURE_KEYS, "knn_UA")}
    for run in runs:
        for k in run.folds_done():
            emb = run.load_embeddings(k)
            test, train = emb["split"] == "test", emb["split"] == "train"
            d = discriminability(emb["z"][test], emb["labels"][test])
            for key in FEATURE_KEYS:
                values[key].append(d[key])
            knn = knn_accuracy(emb["z"][train], emb["labels"][train], emb["z"][test], emb["labels"][test])
            values["knn_UA"].append(100 * knn["ua"])
    return {k: float(np.nanmean(v)) if v and not np.all(np.isnan(v)) else None for k, v in values.items()}
