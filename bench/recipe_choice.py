"""Recipe choices measured on the validation parts only, never on a test fold.

Reads the runs of bench/reproduce.py (by their names, so it trains nothing; of a run not
finished, its finished folds), from their run cards (bench/results/runs/) where they have one,
else from the run store, and compares
recipes on each fold's **validation UA at the epoch the run kept** (the best one), paired over
the (seed, fold) units: the folds, their validation speakers and the seeds are the same across
recipes, so only the recipe differs. The test folds are not read.

    python bench/recipe_choice.py --store S --recipes e100p20 e100p20-speaker
    python bench/recipe_choice.py --corpus synthetic --recipes e100p20 e100p20-noaug
    python bench/recipe_choice.py --source sensitivity --seeds 0 1 --recipes e100p20-speaker e100p20-noaug-speaker

`--source sensitivity` reads the λ = 0 and λ = 0.3 / α = 0.5 runs of bench/sensitivity.py's
grid instead (the same two arms, named by their sweep), so a recipe whose grid exists needs
only its counterpart trained: `bench/sensitivity.py --augment off --lambdas 0 0.3 --alphas 0.5`.

Recipes are the tags of the run names (`recipe_tag` in bench/common.py: epochs and patience,
then -noaug, -speaker, -refit). A refit recipe's first pass is its selection pass, identical
to the recipe without refit, so refit cannot be judged here (its validation part is trained on
in the second pass): that choice is the one this bench leaves to the test folds, and says so.

Caveat printed with the figures: the best validation UA of a fold is a maximum over epochs, so
a recipe that trains more epochs, or has a noisier validation curve, is favoured a little.
Writes a JSON (--out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import (  # noqa: E402
    card_validation_units,
    cards_dir,
    code_state,
    find_run,
    kept_validation_ua,
    sensitivity_sweep_id,
)

from ser_lab.analysis.stats import paired_difference  # noqa: E402
from ser_lab.config import TrainConfig  # noqa: E402
from ser_lab.experiments.sweep import point_key, run_name  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

# The paper's two arms as (λ, α): bench/reproduce.py's SETTINGS, and two points of the λ line.
ARMS = {"baseline": (0.0, 0.5), "center": (0.3, 0.5)}
SOURCES = ("reproduce", "sensitivity")


def bench_run_name(source: str, corpus: str, arm: str, features: str, recipe: str, seed: int) -> str:
    """The name the `source` bench gave the run of this arm, recipe and seed."""
    if source == "reproduce":
        return f"bench-{corpus}-{arm}-{features}-{recipe}-s{seed}"
    lam, alpha = ARMS[arm]
    key = point_key(TrainConfig(lam=lam, alpha=alpha, features=features, seed=seed), [])
    return run_name(sensitivity_sweep_id(corpus, recipe), key)


def validation_units(run) -> dict[tuple[int, int], float]:
    """{(seed, fold): validation UA (percent) of the epoch the fold kept} of a run's finished
    folds (a run still training, or interrupted, gives the folds it has finished)."""
    seed = int(run.config["train"]["seed"])
    found = {k: kept_validation_ua(run, k) for k in run.folds_done()}
    return {(seed, k): ua for k, ua in found.items() if ua is not None}


def compare(store: RunStore, corpus: str, features: str, arms: list[str], recipes: list[str],
            seeds: list[int], cards: Path | None = None, source: str = "reproduce") -> dict:
    out: dict = {"corpus": corpus, "features": features, "seeds": seeds, "recipes": recipes,
                 "source": source, "measure": "validation UA of the kept epoch, percent", "arms": {}}
    for arm in arms:
        per_recipe: dict[str, dict] = {}
        for recipe in recipes:
            units: dict = {}
            missing, partial = [], []  # no run; a run not finished (its finished folds count)
            for seed in seeds:
                name = bench_run_name(source, corpus, arm, features, recipe, seed)
                from_cards = card_validation_units(cards, name) if cards else None
                if from_cards is not None:  # a run card (or fold cards) of bench/common.ensure_card
                    units.update(from_cards[0])
                    if not from_cards[1]:
                        partial.append(name)
                    continue
                run_id, state = find_run(store, name)
                if run_id is None:
                    missing.append(name)
                    continue
                if state != "done":
                    partial.append(name)
                units.update(validation_units(store.get(run_id)))
            per_recipe[recipe] = {"units": units, "missing": missing, "partial": partial}
        reference = per_recipe[recipes[0]]["units"]
        rows = {}
        for recipe, got in per_recipe.items():
            values = list(got["units"].values())
            row = {"n_units": len(values), "missing": got["missing"], "partial": got["partial"],
                   "val_UA_mean": sum(values) / len(values) if values else None}
            if recipe != recipes[0] and values and reference:
                row["paired_vs_first"] = paired_difference(reference, got["units"]).to_dict()
            rows[recipe] = row
        out["arms"][arm] = rows
    return out


def markdown(result: dict) -> str:
    lines = ["| arm | recipe | units | validation UA % | Δ vs first [95 % t-interval] |", "|---|---|---|---|---|"]
    for arm, rows in result["arms"].items():
        for recipe, row in rows.items():
            mean = "–" if row["val_UA_mean"] is None else f"{row['val_UA_mean']:.1f}"
            d = row.get("paired_vs_first")
            delta = "(reference)" if recipe == result["recipes"][0] else "–"
            if d:
                low, high = d["t_low"], d["t_high"]
                interval = "" if low is None else f" [{low:+.1f}, {high:+.1f}]"
                delta = f"{d['mean']:+.1f}{interval} (n = {d['n']})"
            lines.append(f"| {arm} | {recipe} | {row['n_units']} | {mean} | {delta} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=None, help="run store (default: checkpoints/)")
    p.add_argument("--cards", default=None,
                   help="run cards, read before the store (default: bench/results/runs/ with the default "
                        "store, else STORE-cards)")
    p.add_argument("--corpus", default="emodb", help="the corpus tag of the run names (e.g. emodb, synthetic)")
    p.add_argument("--features", default="mel")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--source", choices=SOURCES, default="reproduce",
                   help="whose runs: bench/reproduce.py's (default) or bench/sensitivity.py's grid")
    p.add_argument("--recipes", nargs="+", required=True, help="recipe tags; the first is the reference")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if any(r.endswith("-refit") for r in args.recipes):
        print("note: a refit recipe's validation UA is its selection pass's, the same as without "
              "refit; refit itself is not measurable on validation", file=sys.stderr)
    result = compare(RunStore(Path(args.store) if args.store else None), args.corpus, args.features,
                     args.arms, args.recipes, args.seeds, cards_dir(args), args.source)
    result["code"] = code_state()
    result["caveat"] = ("the best validation UA is a maximum over epochs: recipes that train longer or "
                        "have noisier validation curves are favoured a little")
    if args.out:
        atomic_write_json(Path(args.out), result)
    print(json.dumps(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
