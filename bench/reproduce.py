"""Reproduce the paper's comparison: baseline (lambda = 0) vs center loss (lambda = 0.3, alpha = 0.5).

Default: EmoDB (../shared/datasets/emodb), 4 classes, speaker-independent 5-fold, Mel features,
3 seeds per setting. Every (setting, seed) is a normal run folder in the run store, so the app
and `python -m ser_lab compare` can open them. Finished runs are reused on a re-launch, and so
are their run cards in bench/results/runs/ (bench/common.ensure_card) when the store has lost them.

    python bench/reproduce.py                                   # EmoDB -> bench/results/emodb_reproduction.json
    python bench/reproduce.py --corpus synthetic --out bench/results/synthetic_reproduction.json

Prints the JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

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
    machine,
    recipe_config,
    recipe_summary,
    run_name,
    summarise,
)

from ser_lab.analysis.stats import paired_difference  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

# The two arms, named as bench/objectives.py names them so that each bench reuses the other's runs.
SETTINGS = {"baseline": {"lam": 0.0, "alpha": 0.5}, "center_loss": {"lam": 0.3, "alpha": 0.5}}
ARM_NAMES = {"baseline": "baseline", "center_loss": "center"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_args(p)
    add_recipe_args(p)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                   help="train only these settings (run two processes side by side, then once "
                        "more with no --settings to write the summary from the finished runs); "
                        "with --out, writes that part alone")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    out = Path(args.out or ROOT / "bench" / "results" / f"{args.corpus}_reproduction.json")
    store = RunStore(Path(args.store) if args.store else None)
    summary: dict = recipe_summary(args)
    machine_at_start = machine()
    started = time.time()
    for setting, params in SETTINGS.items():
        if setting not in args.settings:
            continue
        cards = []
        for seed in args.seeds:
            cfg = recipe_config(args, seed=seed, **params)
            name = run_name("bench", corpus_tag(args), ARM_NAMES[setting], cfg)
            cards.append(ensure_card(store, name, cfg, cards_dir(args)))
        summary[setting] = {**params, **summarise(cards)}
    if len(args.settings) < len(SETTINGS):
        if args.out:  # a part of the comparison, written only when asked for (--out)
            atomic_write_json(Path(args.out), {**summary, "settings": args.settings, "code": code_state()})
        print(json.dumps({k: summary[k] for k in args.settings}))
        return
    summary["UA_difference"] = summary["center_loss"]["UA_mean"] - summary["baseline"]["UA_mean"]
    summary["WA_difference"] = summary["center_loss"]["WA_mean"] - summary["baseline"]["WA_mean"]
    # Paired over the same (seed, fold) units: the folds' speakers and the seeds match.
    for metric in ("UA", "WA"):
        units = {s: fold_units(summary[s], metric) for s in SETTINGS}
        summary[f"{metric}_paired"] = paired_difference(units["baseline"], units["center_loss"]).to_dict()
    summary["wall_time_s"] = time.time() - started
    summary["machine"] = machine_at_start
    summary["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    summary["code"] = code_state()
    atomic_write_json(out, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
