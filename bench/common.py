"""What the training benches share: where their runs live, how they are named, reused and
summarised, and the provenance every result JSON records (commit, machine, load).

bench/reproduce.py and bench/objectives.py train the same kinds of runs (the softmax baseline
and the paper's center loss are arms of both), so both name them with `run_name`: a run one
bench trained is reused by the other instead of being trained twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EMODB_ROOT = ROOT.parent / "shared" / "datasets" / "emodb"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ser_lab.analysis.compare import run_discriminability  # noqa: E402
from ser_lab.analysis.discriminability import discriminability, knn_accuracy  # noqa: E402
from ser_lab.analysis.stats import mean_std  # noqa: E402
from ser_lab.choices import LR_SCHEDULES, NORMALISATIONS  # noqa: E402
from ser_lab.config import TrainConfig  # noqa: E402
from ser_lab.experiments.report import DISC_KEYS  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn.trainer import fold_result_from_disk, new_run, pool_results, train_run  # noqa: E402
from ser_lab.runs import Run, RunStore  # noqa: E402

DEFAULTS = TrainConfig()
# Run cards: one JSON per finished bench run (results, per-fold feature space, config, commit),
# committed with the results, so a bench finished over several sittings on different machines
# sums up runs whose folders are gone. See `ensure_card`.
CARDS = ROOT / "bench" / "results" / "runs"
# TrainConfig fields that say where or how fast a run trained, not what it computed: a card is
# reused whatever they were. (`root` is a path on the machine that trained; the card keeps it
# and the data fingerprint.)
NOT_RECIPE = ("root", "device", "workers", "parallel_folds", "precompute_maps", "snapshot_every",
              "snapshot_size", "sweep_id")
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
    p.add_argument("--cards", default=None,
                   help="folder of run cards, one JSON per finished run, reused before any training "
                        "(default: bench/results/runs/ with the default store, else STORE-cards)")
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
    """--augment on|off, --normalise and --lr-schedule, defaulting to the trainer's (every
    training bench)."""
    p.add_argument("--augment", choices=["on", "off"], default="on" if DEFAULTS.augment else "off",
                   help="SpecAugment masks on training batches (default: the trainer's)")
    p.add_argument("--normalise", choices=NORMALISATIONS, default=DEFAULTS.normalise,
                   help="per-bin standardisation statistics (default: the trainer's)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=DEFAULTS.lr_schedule,
                   help="learning-rate schedule (default: the trainer's)")


def recipe_config(args: argparse.Namespace, **fields: object) -> TrainConfig:
    """The TrainConfig of one bench run: the corpus and recipe arguments plus `fields`
    (seed, the arm's settings)."""
    parallel = args.parallel_folds if args.parallel_folds in ("auto", None) else int(args.parallel_folds)
    return TrainConfig(
        corpus=args.corpus, root=None if args.corpus == "synthetic" else args.root,
        corpus_options={"size": args.size} if args.size else {}, features=args.features,
        epochs=args.epochs, patience=args.patience, augment=args.augment == "on",
        refit=getattr(args, "refit", "off") == "on", normalise=getattr(args, "normalise", DEFAULTS.normalise),
        lr_schedule=getattr(args, "lr_schedule", DEFAULTS.lr_schedule),
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
        "lr_schedule": getattr(args, "lr_schedule", DEFAULTS.lr_schedule),
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
    """The training recipe in a run name: epochs (a maximum when patience > 0), patience, a
    learning-rate schedule other than constant, SpecAugment, normalisation, refit, and the
    default weight layout where channels-last is not used; parallel folds are not part of it
    (they do not change the result)."""
    return (f"e{cfg.epochs}p{cfg.patience}"
            + ("" if cfg.lr_schedule == "constant" else f"-{cfg.lr_schedule}{cfg.lr_patience}")
            + ("" if cfg.augment else "-noaug")
            + ("" if cfg.normalise == "corpus" else f"-{cfg.normalise}") + ("-refit" if cfg.refit else "")
            + ("" if cfg.channels_last else "-nchw"))


def run_name(bench: str, corpus: str, arm: str, cfg: TrainConfig) -> str:
    return f"{bench}-{corpus}-{arm}-{cfg.features}-{recipe_tag(cfg)}-s{cfg.seed}"


def sensitivity_sweep_id(corpus: str, recipe: str, quick: bool = False) -> str:
    """The sweep id bench/sensitivity.py gives its runs (their names start with it)."""
    return f"sens-{corpus}-{recipe}" + ("-quick" if quick else "")


def find_run(store: RunStore, name: str) -> tuple[str | None, str | None]:
    """The newest run with this name and its state (done runs first), or (None, None)."""
    matches = [s for s in store.list() if s.name == name]
    for s in matches:
        if s.state == "done":
            return s.run_id, s.state
    return (matches[0].run_id, matches[0].state) if matches else (None, None)


def classical_run_name(corpus: str, corpus_options: dict, protocol: str, n_folds: int, seed: int) -> str:
    """The name of the eGeMAPS + SVM run of a corpus, split and seed (shared by the benches)."""
    size = (corpus_options or {}).get("size")
    return f"classical-{corpus}{f'-{size}' if size else ''}-egemaps-svm-{protocol}{n_folds}-s{seed}"


def ensure_classical_run(store: RunStore, cfg) -> str:
    """The run id of the finished eGeMAPS + SVM run for `cfg` (a ClassicalConfig) in `store`:
    reused if done, else trained (a stopped SVM run is cheap to redo: about half a minute a
    seed on EmoDB)."""
    from ser_lab.learn import classical

    name = classical_run_name(cfg.corpus, cfg.corpus_options, cfg.protocol, cfg.n_folds, cfg.seed)
    run_id, state = find_run(store, name)
    if state == "done":
        return run_id
    run = classical.new_classical_run(cfg, store, name=name)
    with run.lock():
        classical.train_classical_run(run)
    return run.run_id


def ensure_run(store: RunStore, name: str, cfg: TrainConfig,
               on_fold_done: Callable[[Run, int], None] | None = None) -> Run:
    """The finished run called `name`: reused if done, resumed if stopped, else trained;
    `on_fold_done(run, k)` after each fold it finishes."""
    run_id, state = find_run(store, name)
    if run_id is None:
        run = new_run(cfg, store, name=name)
    else:
        run = store.get(run_id)
        if state == "done":
            return run

    def progress(event: dict) -> None:
        if event.get("fold_done"):  # a line a fold: a bench run is minutes to hours long
            print(f"{name}: fold {event['fold']} done after {time.time() - t0:.0f} s: {event['stop_reason']}",
                  file=sys.stderr, flush=True)
            if on_fold_done is not None:
                on_fold_done(run, int(event["fold"]))

    t0 = time.time()
    folds = cfg.folds if cfg.folds is not None else range(cfg.n_folds)
    done = set(run.folds_done())
    left = [k for k in folds if k not in done]
    print(f"{name}: training folds {', '.join(map(str, left))} ({run.run_id})", file=sys.stderr, flush=True)
    with run.lock():
        train_run(run, progress=progress)
    print(f"{name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return run


def cards_dir(args: argparse.Namespace) -> Path:
    """Where a bench keeps its run cards: --cards, else bench/results/runs/ for the default
    store (the committed cards), else a folder beside the given store, STORE-cards (tests,
    scratch; inside the store it would read as a broken run)."""
    if getattr(args, "cards", None):
        return Path(args.cards)
    if not getattr(args, "store", None):
        return CARDS
    store = Path(args.store)
    return store.parent / f"{store.name}-cards"


def recipe_differences(card_config: dict, cfg: TrainConfig, also_ignore: tuple[str, ...] = ()) -> list[str]:
    """The recipe fields in which a card's config and `cfg` differ (NOT_RECIPE aside)."""
    wanted = dataclasses.asdict(cfg)
    have = TrainConfig.from_dict(card_config)  # a card written before a field existed gets its old default
    return [k for k, v in wanted.items()
            if k not in NOT_RECIPE + also_ignore and json.dumps(getattr(have, k)) != json.dumps(v)]


def _read_card(path: Path, cfg: TrainConfig, also_ignore: tuple[str, ...] = ()) -> dict:
    card = json.loads(path.read_text())
    differ = recipe_differences(card["config"], cfg, also_ignore)
    if differ:
        raise SystemExit(f"{path}: a run card of this name with another recipe "
                         f"({', '.join(differ)}); move it away or rename the run")
    return card


def ensure_card(store: RunStore, name: str, cfg: TrainConfig, cards: Path = CARDS) -> dict:
    """The run card of the finished run called `name`.

    A card in `cards` with this name and the same recipe is the result: nothing is trained or
    read from the store, so a bench resumes from the committed cards on a machine whose run
    store is empty. Otherwise the run is reused, resumed or trained in `store` (ensure_run),
    and each fold it finishes leaves a fold card (cards/NAME/fold_K.json), so that a run cut
    off by the end of a sitting loses at most the folds in flight: on a machine without the
    run, only the folds without a card are trained (a run NAME-folds-K-..., the same folds by
    the same seeds: a fold's training depends only on the seed, the split and the fold). When
    every fold is in, the run card is written from the fold cards and they are removed. A card
    of this name with another recipe is an error, never overwritten."""
    path = cards / f"{name}.json"
    if path.is_file():
        return _read_card(path, cfg)
    fold_dir = cards / name
    fold_ids = list(cfg.folds) if cfg.folds is not None else list(range(cfg.n_folds))
    have = {k: _read_card(fold_dir / f"fold_{k}.json", cfg, ("folds",))
            for k in fold_ids if (fold_dir / f"fold_{k}.json").is_file()}
    todo = [k for k in fold_ids if k not in have]

    def keep_fold(run: Run, k: int, trained_now: bool = True) -> None:
        if k in fold_ids and k not in have:
            have[k] = make_fold_card(run, k, trained_now=trained_now)
            atomic_write_json(fold_dir / f"fold_{k}.json", have[k])

    if todo:
        run_id = find_run(store, name)[0]
        if run_id is not None:  # folds this store finished before: their cards first
            earlier = store.get(run_id)
            for k in set(todo) & set(earlier.folds_done()):
                keep_fold(earlier, k, trained_now=False)
        whole = run_id is not None or not have
        part_name = name if whole else f"{name}-folds-{'-'.join(map(str, todo))}"
        part_cfg = cfg if whole else dataclasses.replace(cfg, folds=todo)
        run = ensure_run(store, part_name, part_cfg, on_fold_done=keep_fold)
        for k in todo:
            keep_fold(run, k, trained_now=False)  # a part run done before, in the store
    card = card_from_folds(name, [have[k] for k in fold_ids], cfg.folds)
    atomic_write_json(path, card)
    for k in fold_ids:
        (fold_dir / f"fold_{k}.json").unlink(missing_ok=True)
    if fold_dir.is_dir() and not any(fold_dir.iterdir()):
        fold_dir.rmdir()
    return card


def make_fold_card(run: Run, k: int, *, trained_now: bool) -> dict:
    """What the benches need of one finished fold, without its weights: config, data
    fingerprint, package versions, the fold's test scores (as results.json has them) and its
    test feature space; `code` is the commit of this process, the one that trained the fold
    when `trained_now`."""
    config = run.config
    return {
        "name": config.get("name") or run.run_id,
        "run_id": run.run_id,
        "fold": k,
        "config": config["train"],
        "data": config.get("data"),
        "versions": config.get("versions"),
        "code": code_state(),
        "trained_by_this_code": trained_now,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "result": fold_result_from_disk(run, k, tuple(config["data"]["labels"])),
        "feature_space": fold_feature_space(run, k),
        "discriminability": fold_discriminability(run, k),
        "val_UA_kept": kept_validation_ua(run, k),
    }


def card_from_folds(name: str, folds: list[dict], fold_setting: list[int] | None) -> dict:
    """A run card from the fold cards of all its folds: results.json's scores (pooled as the
    trainer pools them) and each fold's feature space; where folds came from different runs
    or code, the card lists each."""
    first = folds[0]
    run_ids = list(dict.fromkeys(f["run_id"] for f in folds))
    labels = tuple(first["data"]["labels"])
    return {
        "name": name,
        "run_id": " + ".join(run_ids),
        "config": {**first["config"], "folds": fold_setting},  # a part's config names only its folds
        "data": first["data"],
        "versions": first["versions"],
        "code": first["code"] if all(f["code"] == first["code"] for f in folds) else
        {str(f["fold"]): f["code"] for f in folds},
        "trained_by_this_code": all(f["trained_by_this_code"] for f in folds),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": pool_results([f["result"] for f in folds], labels),
        "feature_space_folds": {str(f["fold"]): f["feature_space"] for f in folds},
        "discriminability_folds": {str(f["fold"]): f.get("discriminability") for f in folds},
        "val_UA_kept_folds": {str(f["fold"]): f.get("val_UA_kept") for f in folds},
    }


def card_validation_units(cards: Path, name: str) -> tuple[dict[tuple[int, int], float], bool] | None:
    """{(seed, fold): kept validation UA} from the run card of `name`, else from its fold
    cards, with whether every fold is in (None: no card with validation scores)."""
    path = cards / f"{name}.json"
    if path.is_file():
        card = json.loads(path.read_text())
        folds = card.get("val_UA_kept_folds") or {}
        seed, complete = int(card["config"]["seed"]), True
    else:
        found = [json.loads(p.read_text()) for p in sorted((cards / name).glob("fold_*.json"))]
        if not found:
            return None
        folds = {str(c["fold"]): c.get("val_UA_kept") for c in found}
        seed, complete = int(found[0]["config"]["seed"]), False
    units = {(seed, int(k)): v for k, v in folds.items() if v is not None}
    return (units, complete) if units else None


def kept_validation_ua(run: Run, k: int) -> float | None:
    """The validation UA (percent) of the epoch fold k kept: the best of its selection pass
    (what bench/recipe_choice.py compares recipes on; never a test score)."""
    values = [float(r["val_UA"]) for r in run.read_metrics() if r.get("fold") == k]
    return 100 * max(values) if values else None


def fold_discriminability(run: Run, k: int) -> dict:
    """One fold's test z against the run's trained centers and its 5-NN UA, as the sweep report
    reads them (`ser_lab.analysis.compare.run_discriminability`): {"test": {...}, "knn": {"ua"}}."""
    d = run_discriminability(run, k)
    test = d.get("test") or {}
    return {"test": {key: _finite(test.get(key)) for key in DISC_KEYS},
            "knn": {"ua": _finite((d.get("knn") or {}).get("ua"))}}


def _finite(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float, np.floating)) and np.isfinite(v) else None


def fold_feature_space(run: Run, k: int) -> dict:
    """One fold's test z against its class means (intra/inter, Fisher, silhouette) and its 5-NN
    UA fitted on train z, in percent; None where a measure is undefined."""
    emb = run.load_embeddings(k)
    test, train = emb["split"] == "test", emb["split"] == "train"
    d = discriminability(emb["z"][test], emb["labels"][test])
    knn = knn_accuracy(emb["z"][train], emb["labels"][train], emb["z"][test], emb["labels"][test])
    values = {**{key: d[key] for key in FEATURE_KEYS}, "knn_UA": 100 * knn["ua"]}
    return {key: _finite(v) for key, v in values.items()}


def summarise(cards: list[dict]) -> dict:
    """Mean and sample std over seeds of each seed's fold-mean UA/WA (percent), per-class recall
    (mean over seeds of the pooled recall), and per seed its folds' scores, how each stopped,
    its recall and feature space (so that summaries of other seeds can be joined exactly:
    `join_seeds`)."""
    results = [c["results"] for c in cards]
    labels = results[0]["labels"]
    rows = [
        {
            "seed": int(c["config"]["seed"]),
            "run_id": c["run_id"],
            "UA": 100 * r["mean"]["UA"],
            "WA": 100 * r["mean"]["WA"],
            "UA_pooled": 100 * r["pooled"]["UA"],
            "WA_pooled": 100 * r["pooled"]["WA"],
            "fold_UA": [100 * f["UA"] for f in r["folds"]],
            "fold_WA": [100 * f["WA"] for f in r["folds"]],
            "best_epochs": [f["best_epoch"] for f in r["folds"]],
            "epochs_trained": [f.get("epochs_trained") for f in r["folds"]],
            "stop_reasons": [f.get("stop_reason") for f in r["folds"]],
            "recall": {name: 100 * r["pooled"]["recall"][name] if name in r["pooled"]["recall"] else None
                       for name in labels},
            "feature_space": feature_space([c]),
            "layout": "channels-last" if c["config"].get("channels_last") else "default",
        }
        for c, r in zip(cards, results)
    ]
    return {**seed_aggregates(rows), "feature_space": feature_space(cards), "per_seed": rows}


def seed_aggregates(rows: list[dict]) -> dict:
    """UA/WA mean and sample std over the per-seed rows, and their mean per-class recall."""
    ua = mean_std(row["UA"] for row in rows)
    wa = mean_std(row["WA"] for row in rows)
    labels = list(rows[0]["recall"])
    return {
        "UA_mean": ua.mean,
        "UA_std": ua.std,  # sample std over seeds (None for one seed)
        "WA_mean": wa.mean,
        "WA_std": wa.std,
        "per_class_recall": {name: _mean_or_none(row["recall"][name] for row in rows) for name in labels},
    }


def _mean_or_none(values) -> float | None:
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def join_seeds(parts: list[dict]) -> dict:
    """One arm's summaries of disjoint seeds (`summarise` outputs, or older ones without per-seed
    recall and feature space) as one summary over all their seeds, as if summarised together.

    A part whose seeds are all in an earlier part must have their scores and is skipped. Rows
    that lack their own recall or feature space take their part's (an older summary's
    aggregate): exact for recall, a mean over seeds, and for the feature space, a mean over
    seeds x folds, when every seed has the same number of folds and every measure is defined."""
    rows: list[dict] = []
    for part in parts:
        have = {r["seed"]: r for r in rows}
        seeds = [row["seed"] for row in part["per_seed"]]
        if seeds and all(seed in have for seed in seeds):
            # A part whose seeds are all in already (the same runs summarised twice, e.g. the
            # baseline of two benches) adds nothing, and its aggregates would weigh them twice.
            if any(have[row["seed"]]["fold_UA"] != row["fold_UA"] for row in part["per_seed"]):
                raise ValueError(f"seeds {seeds} are in two of the summaries to join with other scores")
            continue
        for row in part["per_seed"]:
            if row["seed"] in have:
                raise ValueError(f"seed {row['seed']} is in two of the summaries to join, "
                                 "and so are other seeds only one of them has")
            filled = dict(row)
            filled.setdefault("recall", part["per_class_recall"])
            filled.setdefault("feature_space", part["feature_space"])
            rows.append(filled)
    rows.sort(key=lambda r: r["seed"])
    folds = {len(r["fold_UA"]) for r in rows}
    if len(folds) != 1:
        raise ValueError(f"the summaries to join have different fold counts: {sorted(folds)}")
    keys = rows[0]["feature_space"].keys()
    space = {k: _mean_or_none(r["feature_space"][k] for r in rows) for k in keys}
    return {**seed_aggregates(rows), "feature_space": space, "per_seed": rows}


def fold_units(setting: dict, metric: str) -> dict[tuple[int, int], float]:
    """{(seed, fold): test-fold metric in percent} for one setting's summary."""
    return {
        (row["seed"], k): value
        for row in setting["per_seed"]
        for k, value in enumerate(row[f"fold_{metric}"])
    }


def feature_space(cards: list[dict]) -> dict:
    """Mean over runs and folds of the test z's discriminability and 5-NN UA (train -> test),
    against the empirical class means so that every objective is measured the same way."""
    folds = [f for c in cards for f in c["feature_space_folds"].values()]
    return {k: _mean_or_none(f[k] for f in folds) for k in (*FEATURE_KEYS, "knn_UA")}
