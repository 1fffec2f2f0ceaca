"""Every training objective side by side: the paper's center loss and the other arms of
ser_lab/learn/objectives.py, against the softmax-only baseline, on the same network, data, folds and
seeds.

Default: EmoDB (../shared/datasets/emodb), 4 classes, Mel, speaker-independent 5-fold, 3 seeds
per arm. Every (arm, seed) is a normal run folder in the run store (the app can open it); a
finished run is reused and an interrupted one resumed on a re-launch, so the bench can be
stopped and started again at any point (the same pattern as bench/reproduce.py).

    python bench/objectives.py                              # EmoDB -> bench/results/objectives_emodb.json
    python bench/objectives.py --corpus synthetic           # -> bench/results/objectives_synthetic.json
    python bench/objectives.py --smoke                      # tiny synthetic corpus, 1 epoch, 2 folds, 1 seed
    python bench/objectives.py --seeds 2 --join A.json B.json   # seed 2 joined with the seeds of earlier summaries

Every finished run also leaves a run card in bench/results/runs/ (bench/common.ensure_card: its
results and per-fold feature space, no weights). Committed, the cards let a later sitting on a
machine whose run store is empty finish the bench: a run with a card is not trained again.

Per arm: UA and WA (mean and sample std over seeds of each seed's fold mean); the paired
difference to the baseline over the (seed, fold) units with its 95 % t-interval and bootstrap
interval (ser_lab/analysis/stats.py); and feature-space measures of the test folds' z
(ser_lab/analysis/discriminability.py, against the empirical class means so that every arm is measured
the same way: intra/inter ratio, Fisher criterion, silhouette, and 5-NN UA fitted on train z),
averaged over seeds and folds. Arm settings are the defaults of ser_lab/learn/objectives.py with
lambda = 0.3 for every arm that has an extra term: one shared, untuned weight, not each arm's
best. Writes the JSON summary and prints a Markdown table (its last lines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import (  # noqa: E402
    add_corpus_args,
    add_recipe_args,
    cards_dir,
    code_state,
    corpus_tag,
    ensure_card,
    fold_units,
    join_seeds,
    machine,
    recipe_config,
    recipe_summary,
    run_name,
    summarise,
)

from ser_lab.analysis.stats import paired_difference  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn.objectives import LABELS  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

BASELINE = "baseline"
ARMS: dict[str, dict] = {
    BASELINE: {"objective": "center", "lam": 0.0},  # softmax only
    "center": {"objective": "center", "lam": 0.3, "alpha": 0.5},  # the paper
    "center_learned": {"objective": "center_learned", "lam": 0.3},
    "amsoftmax": {"objective": "amsoftmax"},
    "triplet": {"objective": "triplet", "lam": 0.3},
    "supcon": {"objective": "supcon", "lam": 0.3},
}


def run_bench(args: argparse.Namespace) -> dict:
    store = RunStore(Path(args.store) if args.store else None)
    summary: dict = {**recipe_summary(args), "arms": {}, "machine": machine()}
    started = time.time()
    earlier_raw = [json.loads(Path(path).read_text()) for path in args.join]
    earlier = [read_earlier(raw, path, summary) for raw, path in zip(earlier_raw, args.join)]
    for arm in args.arms:
        params = ARMS[arm]
        parts = [e[arm] for e in earlier if arm in e]
        known = {row["seed"] for part in parts for row in part["per_seed"]}
        cards = []
        for seed in args.seeds:
            if seed in known:
                continue  # an earlier summary has it
            cfg = recipe_config(args, seed=seed, workers=args.workers, **params)
            cards.append(ensure_card(store, run_name("bench", corpus_tag(args), arm, cfg), cfg, cards_dir(args)))
        parts += [summarise(cards)] if cards else []
        try:
            joined = join_seeds(parts) if len(parts) > 1 else parts[0]
        except ValueError as e:
            raise SystemExit(f"--join, arm {arm}: {e}") from None
        summary["arms"][arm] = {
            "settings": params,
            "label": "softmax only (λ = 0)" if arm == BASELINE else LABELS[params["objective"]],
            **joined,
        }
    if earlier:
        summary["seeds"] = sorted({row["seed"] for s in summary["arms"].values() for row in s["per_seed"]})
        summary["joined"] = {Path(path).name: e.get("code") for path, e in zip(args.join, earlier_raw)}
    if BASELINE in summary["arms"]:
        base = summary["arms"][BASELINE]
        for arm, s in summary["arms"].items():
            if arm != BASELINE:
                for metric in ("UA", "WA"):
                    s[f"{metric}_paired_vs_baseline"] = paired_difference(
                        fold_units(base, metric), fold_units(s, metric)).to_dict()
    summary["wall_time_s"] = time.time() - started
    summary["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    summary["code"] = code_state()
    return summary


# The recipe fields two summaries must share to be joined (bench/common.recipe_summary).
JOIN_KEYS = ("corpus", "corpus_options", "protocol", "n_folds", "features", "epochs", "patience",
             "augment", "refit", "normalise")


def read_earlier(earlier: dict, path: str, summary: dict) -> dict[str, dict]:
    """The arms of an earlier summary of the same recipe (this bench's, or bench/reproduce.py's
    two settings under this bench's arm names), to be joined with this run's seeds: the
    first summary that has a seed of an arm gives it, later ones must agree."""
    differ = [k for k in JOIN_KEYS if earlier.get(k, DEFAULT_JOIN.get(k)) != summary[k]]
    if differ:
        raise SystemExit(f"{path}: another recipe ({', '.join(differ)}); only seeds of the same recipe are joined")
    if "arms" in earlier:
        return earlier["arms"]
    return {arm: earlier[setting] for setting, arm in REPRODUCE_ARMS.items() if setting in earlier}


# bench/reproduce.py's settings under this bench's names; fields older summaries did not record.
REPRODUCE_ARMS = {"baseline": BASELINE, "center_loss": "center"}
DEFAULT_JOIN = {"refit": False}


def _fmt(x, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def markdown_table(summary: dict) -> str:
    """One row per arm: UA, WA, paired differences to the baseline with 95 % t-intervals, features."""
    head = ("| arm | UA % | WA % | ΔUA vs softmax [95 % CI] | ΔWA vs softmax [95 % CI] | "
            "intra/inter | Fisher | silhouette | 5-NN UA % |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for arm, s in summary["arms"].items():
        cells = [f"{arm}: {s['label']}", f"{_fmt(s['UA_mean'])} ± {_fmt(s['UA_std'])}",
                 f"{_fmt(s['WA_mean'])} ± {_fmt(s['WA_std'])}"]
        for metric in ("UA", "WA"):
            p = s.get(f"{metric}_paired_vs_baseline")
            cells.append("(reference)" if p is None else
                         f"{p['mean']:+.1f} [{_fmt(p['t_low'])}, {_fmt(p['t_high'])}] (n = {p['n']})")
        f = s["feature_space"]
        cells += [_fmt(f["intra_inter_ratio"], 3), _fmt(f["fisher"], 2), _fmt(f["silhouette"], 3), _fmt(f["knn_UA"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_args(p)
    add_recipe_args(p)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                   help="train only these arms (the baseline is needed for the paired columns)")
    p.add_argument("--workers", type=int, default=None, help="feature extraction processes")
    p.add_argument("--join", nargs="+", default=[], metavar="JSON",
                   help="earlier summaries of the same recipe (this bench's or bench/reproduce.py's) "
                        "whose other seeds join this run's in one table; a seed in two is an error")
    p.add_argument("--smoke", action="store_true",
                   help="a check that the bench runs: tiny synthetic corpus, 1 epoch, 2 folds, seed 0 "
                        "(written to objectives_smoke.json; its numbers mean nothing)")
    args = p.parse_args(argv)
    if args.smoke:
        args.corpus, args.size, args.epochs, args.folds, args.seeds = "synthetic", "tiny", 1, 2, [0]
        args.patience = 0
        args.workers = args.workers or 1
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    summary = run_bench(args)
    name = "objectives_smoke.json" if args.smoke else f"objectives_{args.corpus}.json"
    out = Path(args.out or ROOT / "bench" / "results" / name)
    atomic_write_json(out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "arms"}))
    print(markdown_table(summary))
    return summary


if __name__ == "__main__":
    main()
