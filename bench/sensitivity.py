"""Sensitivity of center loss to λ and α, with seeds and statistics (one sweep + its report).

Default: EmoDB (../shared/datasets/emodb), 4 classes, speaker-independent 5-fold, Mel
features, 2 seeds, the trainer's own recipe (at most 100 epochs, early stopping on validation UA with
patience 20, SpecAugment, per-speaker normalisation: what a user gets), and two lines through the
(λ, α) plane:

    λ in {0, 0.01, 0.03, 0.1, 0.3, 1.0} at α = 0.5      (λ = 0 is the softmax-only baseline)
    α in {0.1, 0.3, 0.5, 0.7, 0.9}      at λ = 0.3

= 10 settings x 2 seeds = 20 runs of 5 folds. Every run is a normal run folder of one sweep
(id "sens-<corpus>-<recipe>", e.g. sens-emodb-e100p20-speaker) that opens in the app, trained
one after another with its folds in parallel. Each finished fold and run leaves a run card in
bench/results/runs/ (bench/common.ensure_card), and the table and report are made from the cards:
an interrupted benchmark is finished by running the same command again, on this machine or, with
the cards committed, on one whose run store is empty (only folds without a card are trained).
With --backend ray the sweep runs on a cluster and the report is made from the store.

    python bench/sensitivity.py                    # -> bench/results/emodb_sensitivity.json
                                                   #    + bench/results/emodb_sensitivity_report/
    python bench/sensitivity.py --quick            # smoke test of the whole path: λ in {0, 0.3}
                                                   # at α = 0.5, 1 seed, 1 epoch (no early
                                                   # stopping), fold 0 only;
                                                   # writes *_sensitivity_quick.json / _report/
    python bench/sensitivity.py --corpus synthetic --size tiny --quick --folds 2 --store /tmp/runs  # tiny: 4 speakers
    python bench/sensitivity.py --dry-run          # list the runs, train nothing
    python bench/sensitivity.py --augment off --lambdas 0 0.3 --alphas 0.5
                                                   # part of the grid on another recipe:
                                                   # -> emodb_sensitivity_e100p20-noaug-speaker_part.json
    python bench/sensitivity.py --backend ray --address auto --store /shared/runs

With the local backend the report also has the hand-crafted reference: the eGeMAPS + linear SVM
runs on the same folds (one per seed, named as bench/classical.py names them), trained in the store
if missing (about half a minute a seed on EmoDB; needs the optional opensmile package;
--reference off skips them), with every setting's paired difference to it.

Options given explicitly (--lambdas, --alphas, --seeds, --epochs, --patience, --folds, --fold)
override --quick. The first table (bench/results/emodb_sensitivity_fold0_e20.json, of the earlier recipe) was
fold 0 only at a fixed 20 epochs: `--epochs 20 --patience 0 --normalise corpus --fold 0`. The JSON holds the settings, wall time, the results table (UA / WA mean ± std over
(seed, fold) units, percent), each λ > 0 setting's paired difference to the baseline with its
95 % t and bootstrap intervals, the sensitivity curves and discriminability; the report folder
has the same as Markdown / HTML with the plots and confusion matrices. Prints the JSON
summary as its last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import (  # noqa: E402
    DEFAULTS,
    add_augment_normalise_args,
    cards_dir,
    ensure_card,
    ensure_classical_run,
    recipe_config,
    recipe_tag,
    sensitivity_sweep_id,
)

from ser_lab.config import TrainConfig  # noqa: E402
from ser_lab.experiments.report import (  # noqa: E402
    add_result,
    build_report,
    classical_reference,
    json_safe,
    sorted_settings,
    summarise_discriminability,
    write_report,
)
from ser_lab.experiments.sweep import SweepSpec, expand, point_key, run_name, run_sweep  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

LAMBDAS = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]
ALPHAS = [0.1, 0.3, 0.5, 0.7, 0.9]
FIXED_ALPHA = 0.5
FIXED_LAMBDA = 0.3
QUICK = {"lambdas": [0.0, 0.3], "alphas": [FIXED_ALPHA], "seeds": [0], "epochs": 1, "patience": 0,
         "fold": [0]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", default="emodb")
    p.add_argument("--root", default=str(ROOT.parent / "shared" / "datasets" / "emodb"))
    p.add_argument("--size", default=None, help="synthetic corpus size (e.g. tiny)")
    p.add_argument("--quick", action="store_true", help="2 λ values, 1 seed, 1 epoch, fold 0")
    p.add_argument("--lambdas", type=float, nargs="+", default=None, help=f"default {LAMBDAS}")
    p.add_argument("--alphas", type=float, nargs="+", default=None, help=f"default {ALPHAS}")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"most epochs per fold (default: the trainer's, {DEFAULTS.epochs})")
    p.add_argument("--patience", type=int, default=None,
                   help=f"early-stopping patience, 0 = every epoch (default: the trainer's, {DEFAULTS.patience})")
    add_augment_normalise_args(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--fold", type=int, nargs="+", default=None, help="train only these folds")
    p.add_argument("--protocol", default="speaker")
    p.add_argument("--features", default="mel")
    p.add_argument("--sweep-id", default=None, help="default sens-<corpus>-<recipe>[-quick]")
    p.add_argument("--store", default=None, help="run store (default: checkpoints/)")
    p.add_argument("--cards", default=None,
                   help="run cards (local backend): one JSON per finished run and fold, reused before "
                        "any training (default: bench/results/runs/ with the default store, else STORE-cards)")
    p.add_argument("--backend", default="local", choices=("local", "ray"))
    p.add_argument(
        "--workers", type=int, default=None, help="runs at once (default: per core / GPU)"
    )
    p.add_argument("--address", default=None, help="Ray address (auto or HOST:PORT)")
    p.add_argument("--parallel-folds", default="auto",
                   help="local backend: folds of a run trained at once (default auto: one per core; "
                        "the results do not depend on it)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--reference", choices=["on", "off"], default="on",
                   help="local backend: the eGeMAPS + SVM row on the same folds (trained in the store "
                        "if missing; needs the optional opensmile package; default on)")
    p.add_argument("--out", default=None, help="JSON summary path")
    p.add_argument("--report", default=None, help="report folder")
    p.add_argument("--dry-run", action="store_true", help="list the runs, train nothing")
    args = p.parse_args(argv)
    defaults = (
        QUICK
        if args.quick
        else {"lambdas": LAMBDAS, "alphas": ALPHAS, "seeds": [0, 1], "epochs": DEFAULTS.epochs,
              "patience": DEFAULTS.patience}
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def make_spec(args: argparse.Namespace) -> SweepSpec:
    """The two lines of the (λ, α) plane as explicit points of one sweep."""
    base = {
        "corpus": args.corpus,
        "root": None if args.corpus == "synthetic" else str(Path(args.root).resolve()),
        "corpus_options": {"size": args.size} if args.size else {},
        "features": args.features,
        "epochs": args.epochs,
        "patience": args.patience,
        "augment": args.augment == "on",
        "normalise": args.normalise,
        "lr_schedule": args.lr_schedule,
        "n_folds": args.folds,
        "folds": args.fold,
        "protocol": args.protocol,
    }
    points = [{"lam": lam, "alpha": FIXED_ALPHA} for lam in args.lambdas]
    points += [{"lam": FIXED_LAMBDA, "alpha": alpha} for alpha in args.alphas]
    sweep_id = args.sweep_id or sensitivity_sweep_id(args.corpus, recipe_of(args), args.quick)
    return SweepSpec(base=base, points=points, seeds=args.seeds, sweep_id=sweep_id).validate()


def recipe_of(args: argparse.Namespace) -> str:
    return recipe_tag(recipe_config(args))


def results_stem(args: argparse.Namespace) -> str:
    """The JSON's and report's name without --out / --report. `<corpus>_sensitivity` is the
    whole grid on the trainer's recipe; another recipe adds its tag and a part of the grid (other
    λ, α, seeds, folds, input or protocol) adds `_part`, so neither overwrites the whole table."""
    if args.quick:
        return f"{args.corpus}_sensitivity_quick"
    stem, recipe = f"{args.corpus}_sensitivity", recipe_of(args)
    if recipe != recipe_tag(DEFAULTS):
        stem += f"_{recipe}"
    whole = (args.lambdas == LAMBDAS and args.alphas == ALPHAS and args.seeds == [0, 1]
             and args.fold is None and args.folds == 5 and args.features == "mel"
             and args.protocol == "speaker")
    return stem if whole else f"{stem}_part"


def ensure_reference(store: RunStore, cfg: TrainConfig, seeds: list[int]) -> bool:
    """The eGeMAPS + SVM runs on the sweep's folds (one per seed, shared with bench/classical.py)
    in `store`, trained if missing (about half a minute a seed on EmoDB); False, with a note,
    when the optional opensmile package is missing."""
    from ser_lab.errors import ConfigError
    from ser_lab.learn.classical import ClassicalConfig, require_opensmile

    try:
        require_opensmile()
    except ConfigError as e:
        print(f"no eGeMAPS + SVM reference row: {e}", file=sys.stderr, flush=True)
        return False
    for seed in seeds:
        ensure_classical_run(store, ClassicalConfig(
            corpus=cfg.corpus, root=cfg.root, corpus_options=dict(cfg.corpus_options),
            classes=cfg.classes, n_folds=cfg.n_folds, protocol=cfg.protocol,
            val_fraction=cfg.val_fraction, seed=seed, workers=cfg.workers,
        ))
    return True


def report_from_cards(spec: SweepSpec, store: RunStore, cards: Path, report_dir: Path,
                      show: Callable[[dict], None], parallel_folds: int | str = "auto",
                      with_reference: bool = False) -> tuple[dict, int]:
    """Every run of the sweep through its run card (bench/common.ensure_card: reused if the
    card exists, else trained in the store, one run after another with its folds in parallel,
    each finished fold carded), then the sweep report from the cards alone, so that the grid
    can be finished over several sittings on machines that do not keep their run stores.
    With `with_reference`, the report adds the eGeMAPS + SVM runs of `store` on the same folds
    (`ensure_reference`)."""
    configs = expand(spec)
    settings: dict = {}
    stats: dict[str, dict] = {}
    for n, cfg in enumerate(configs, 1):
        cfg = replace(cfg, parallel_folds=parallel_folds)
        name = run_name(spec.sweep_id, point_key(cfg, spec.axes()))
        card = ensure_card(store, name, cfg, cards)
        add_result(settings, card["config"], card["run_id"], card["results"], [])
        stats[card["run_id"]] = card.get("discriminability_folds") or {}
        show({"done": n, "total": len(configs), "name": name, "state": "done"})
    data = {"sweep_id": spec.sweep_id, "manifest": None, "settings": sorted_settings(settings.values()),
            "unfinished": [], "duplicates": [], "other_axes": []}

    def fold_stats(run_id: str, fold: int) -> dict:
        found = stats[run_id].get(str(fold))
        if found is None:
            raise KeyError("its run card has no discriminability for this fold")
        return found

    reference = None
    if with_reference and configs:
        reference = classical_reference(store, data["settings"], sweep_config=dataclasses.asdict(configs[0]))
    disc = summarise_discriminability(data["settings"], fold_stats)
    return write_report(report_dir, data, disc, reference), len(configs)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    spec = make_spec(args)
    configs = expand(spec)
    if args.dry_run:
        for cfg in configs:
            print(run_name(spec.sweep_id, point_key(cfg, spec.axes())))
        print(f"{len(configs)} runs")
        return None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results_dir = ROOT / "bench" / "results"
    out = Path(args.out or results_dir / f"{results_stem(args)}.json")
    report_dir = Path(args.report or results_dir / f"{results_stem(args)}_report")
    store = RunStore(Path(args.store) if args.store else None)

    def show(event: dict) -> None:
        print(
            f"[{event['done']}/{event['total']}] {event['name']}: {event['state']}"
            + (f" ({event['error']})" if event.get("error") else ""),
            file=sys.stderr,
            flush=True,
        )

    started = time.time()
    if args.backend == "local":
        parallel = args.parallel_folds if args.parallel_folds == "auto" else int(args.parallel_folds)
        with_reference = args.reference == "on" and ensure_reference(store, configs[0], args.seeds)
        report, n_done = report_from_cards(spec, store, cards_dir(args), report_dir, show, parallel,
                                           with_reference)
    else:
        result = run_sweep(
            spec, store, backend=args.backend, workers=args.workers, address=args.address, progress=show
        )
        report, n_done = build_report(store, spec.sweep_id, report_dir), result.n_done
    wall = time.time() - started
    summary = {
        "corpus": args.corpus,
        "root": spec.base["root"],
        "protocol": args.protocol,
        "n_folds": args.folds,
        "folds": args.fold,
        "features": args.features,
        "epochs": args.epochs,
        "patience": args.patience,
        "augment": args.augment == "on",
        "normalise": args.normalise,
        "lr_schedule": args.lr_schedule,
        "seeds": args.seeds,
        "lambdas_at_alpha": {"alpha": FIXED_ALPHA, "lambdas": args.lambdas},
        "alphas_at_lambda": {"lambda": FIXED_LAMBDA, "alphas": args.alphas},
        "sweep_id": spec.sweep_id,
        "store": str(Path(store.root).resolve()),
        "runs": len(configs),
        "runs_done": n_done,
        "wall_time_s": wall,
        "model_selection": "best validation UA (speaker-disjoint validation part of each training fold)"
        + (f"; early stopping after {args.patience} epochs without a gain" if args.patience else ""),
        "units": "(seed, fold) test folds; UA / WA in percent; std = sample std over units",
        "report_dir": str(report_dir),
        **{
            k: report[k]
            for k in ("table", "comparisons", "curves", "discriminability", "unfinished", "reference")
        },
    }
    summary = json_safe(summary)
    atomic_write_json(out, summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
