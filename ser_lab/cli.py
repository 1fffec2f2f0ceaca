"""The command line: `python -m ser_lab <command> ...`.

Every command is a thin wrapper over the library (the app calls the same functions). Errors a
user can cause are printed as one line, `error: ...`, with exit status 2 — never a traceback;
so are the operating system's (disk full, a read-only or missing folder). Output never fails on
a name with undecodable bytes: they are printed as backslash escapes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, SerLabError


class ProgressBar:
    """A one-line progress bar on stderr (tqdm: rate, elapsed time and ETA; redrawn at most
    10 times a second), fed with (done, total) as the library's progress callbacks give them.
    Nothing is drawn before the first update, so a command that fails first prints its error
    alone."""

    def __init__(self, label: str, stream=None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.bar = None

    def update(self, done: float, total: float, extra: str = "") -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                desc=self.label, total=total, file=self.stream, mininterval=0.1,
                dynamic_ncols=True, leave=True,
                bar_format="{desc} {percentage:5.1f}%|{bar}| {elapsed} elapsed, ETA {remaining}{postfix}",
            )
        if self.bar.total != total:
            self.bar.total = total
        if extra:
            self.bar.set_postfix_str(extra, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------- data


def corpus_options(args: argparse.Namespace) -> dict:
    options = {}
    if getattr(args, "size", None):
        options["size"] = args.size
    if getattr(args, "improvised_only", False):
        options["improvised_only"] = True
    return options


def cmd_data_describe(args: argparse.Namespace) -> int:
    from ser_lab.data.corpora import describe, load_corpus

    manifest = load_corpus(args.corpus, args.root, classes=args.classes, **corpus_options(args))
    print(describe(manifest))
    return 0


def cmd_data_features(args: argparse.Namespace) -> int:
    from ser_lab.data.corpora import load_corpus
    from ser_lab.data.features import FeatureCache, FeatureConfig, extract_corpus

    manifest = load_corpus(args.corpus, args.root, classes=args.classes, **corpus_options(args))
    bar = ProgressBar(f"features ({args.features})")
    t0 = time.time()
    try:
        result = extract_corpus(
            manifest, FeatureConfig(kind=args.features), cache=FeatureCache(),
            workers=args.workers, progress=lambda d, t: bar.update(d, t),
        )
    finally:
        bar.close()  # an error message starts on its own line, not after the bar
    frames = sum(len(f) for f in result.features)
    print(
        f"{len(result.features)} utterances, {frames} frames, {time.time() - t0:.1f} s; "
        f"{len(result.manifest.problems)} problems"
    )
    for p in result.manifest.problems[:20]:
        print(f"  {p.path}: {p.reason}")
    return 0


# ----------------------------------------------------------------------------- training


def train_config_from_args(args: argparse.Namespace):
    return TrainConfig(
        corpus=args.corpus,
        root=str(Path(args.root).resolve()) if args.root else None,
        corpus_options=corpus_options(args),
        classes=args.classes,
        features=args.features,
        lam=args.lam,
        alpha=args.alpha,
        objective=args.objective,
        center_lr=args.center_lr,
        am_scale=args.am_scale,
        am_margin=args.am_margin,
        triplet_margin=args.triplet_margin,
        supcon_temperature=args.supcon_temperature,
        epochs=args.epochs,
        patience=args.patience,
        refit=args.refit,
        augment=args.augment,
        normalise=args.normalise,
        lr_schedule=args.lr_schedule,
        lr_patience=args.lr_patience,
        n_folds=args.folds,
        folds=args.fold,
        protocol=args.protocol,
        seed=args.seed,
        device=args.device,
        snapshot_every=args.snapshot_every,
        workers=args.workers,
        parallel_folds=args.parallel_folds,
        sweep_id=args.sweep_id,
        demo=args.demo,
    ).validate()


def _parallel_folds(text: str) -> int | str:
    """`--parallel-folds N|auto` (argparse type)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from ser_lab.errors import Interrupted, RunError
    from ser_lab.learn.trainer import failure_message, new_run, train_run

    if args.resume is not None:  # an empty id is an error, not "start a new run"
        run = _store(args).get(args.resume)
        if run.config.get("model") == "egemaps-svm":
            return cmd_train_classical(args, run)
    elif args.model == "egemaps-svm":
        return cmd_train_classical(args, None)
    else:
        cfg = train_config_from_args(args)  # validated before the store is touched
        run = new_run(cfg, _store(args, create=True), name=args.name)
    print(f"run {run.run_id} in {run.dir}", flush=True)
    feature_bar = ProgressBar("features")
    bars: dict = {}
    live = tensorboard_hook(args, run)

    def on_features(done: int, total: int) -> None:
        feature_bar.update(done, total)

    def on_progress(event: dict) -> None:
        if event.get("fold_done"):  # a line above the bar, which goes on over the folds
            from tqdm import tqdm

            tqdm.write(f"fold {event['fold']}: {event['stop_reason']}", file=sys.stdout)
            return
        if "train" not in bars:
            feature_bar.close()  # the features are ready: one bar at a time
        if "train" not in bars:  # (setdefault would build, and draw, a bar on every event)
            bars["train"] = ProgressBar("training")
        bar = bars["train"]
        epochs = run_epochs(run)
        frac = 1.0 if event.get("epoch_done") else event["batch"] / event["n_batches"]
        done = event.get("done_epochs", event["fold_pos"] * epochs + event["epoch"] - 1 + frac)
        extra = f"fold {event['fold']} epoch {event['epoch']}/{epochs}"
        if "refit_epoch" in event:
            extra = f"fold {event['fold']} refit on train + validation, epoch {event['refit_epoch']}/{event['refit_epochs']}"
        if event.get("epoch_done"):
            m = event["metrics"]
            bars["last"] = f"{extra} loss {m['total_loss']:.3f} val UA {100 * m['val_UA']:.1f}%"
        bar.update(done, event["total_epochs"], bars.get("last", extra))
        if live is not None:
            live(event)

    with run.lock():
        try:
            results = train_run(run, progress=on_progress, feature_progress=on_features)
        except Interrupted:
            print(f"\ninterrupted: resume with  python -m ser_lab train --resume {run.run_id}")
            return 130
        except OSError as exc:  # e.g. disk full: the run is marked failed, and resumable
            raise RunError(f"run {run.run_id}: {failure_message(exc, run.run_id)}") from None
        finally:
            feature_bar.close()
            if "train" in bars:
                bars["train"].close()
            if live is not None:
                live.close()
    print(format_results(results))
    return 0


def tensorboard_hook(args: argparse.Namespace, run):
    """`train --tensorboard LOGDIR`: the live TensorBoard writer (a progress callback), or None."""
    if not getattr(args, "tensorboard", None):
        return None
    from ser_lab.export import TensorBoardLive

    live = TensorBoardLive(args.tensorboard, run)
    print(f"TensorBoard: tensorboard --logdir {args.tensorboard}", flush=True)
    return live


def cmd_train_classical(args: argparse.Namespace, run) -> int:
    """`train --model egemaps-svm`: the eGeMAPS + SVM baseline on the same folds (λ, α, epochs,
    features and device do not apply to it)."""
    from ser_lab.learn import classical
    from ser_lab.runs import RunStore

    if run is None:
        cfg = classical.ClassicalConfig(
            corpus=args.corpus, root=str(Path(args.root).resolve()) if args.root else None,
            corpus_options=corpus_options(args), classes=args.classes, n_folds=args.folds,
            folds=args.fold, protocol=args.protocol, seed=args.seed, workers=args.workers,
            sweep_id=args.sweep_id, demo=args.demo,
        )
        store = RunStore(Path(args.store) if args.store else None)
        run = classical.new_classical_run(cfg, store, name=args.name)
    print(f"run {run.run_id} in {run.dir}", flush=True)
    bars: list = []  # (stage, bar), the current one last

    def on_progress(stage: str, done: int, total: int) -> None:
        if not bars or bars[-1][0] != stage:
            if bars:
                bars[-1][1].close()
            bars.append((stage, ProgressBar(stage)))
        bars[-1][1].update(done, total)

    with run.lock():
        try:
            results = classical.train_classical_run(run, progress=on_progress)
        finally:
            if bars:
                bars[-1][1].close()
    print(format_results(results))
    print("C per fold: " + ", ".join(f"{r['fold']}: {r['C']:g}" for r in results["folds"]))
    return 0


def run_epochs(run) -> int:
    return int(run.config["train"]["epochs"])


def format_results(results: dict) -> str:
    """The final UA/WA table: one row per fold, then mean ± std and pooled."""
    labels = results["labels"]
    head = f"{'fold':>6} {'UA %':>7} {'WA %':>7} " + " ".join(f"{name[:7]:>7}" for name in labels)
    lines = [head, "-" * len(head)]
    for r in results["folds"]:
        recalls = " ".join(f"{100 * r['recall'].get(n, float('nan')):7.1f}" for n in labels)
        lines.append(f"{r['fold']:>6} {100 * r['UA']:7.2f} {100 * r['WA']:7.2f} {recalls}")
    m, p = results["mean"], results["pooled"]
    lines.append("-" * len(head))
    spread = ""
    if m.get("UA_std") is not None and m.get("WA_std") is not None:  # no std of a single fold
        spread = f"   (sample std UA {100 * m['UA_std']:.2f}, WA {100 * m['WA_std']:.2f})"
    lines.append(f"{'mean':>6} {100 * m['UA']:7.2f} {100 * m['WA']:7.2f}{spread}")
    recalls = " ".join(f"{100 * p['recall'].get(n, float('nan')):7.1f}" for n in labels)
    lines.append(f"{'pooled':>6} {100 * p['UA']:7.2f} {100 * p['WA']:7.2f} {recalls}")
    return "\n".join(lines)


def _store(args: argparse.Namespace, *, create: bool = False):
    """The run store of --store (or the default). Only commands that write runs create its
    folder; listing and reading leave the disk as it is."""
    from ser_lab.runs import RunStore

    return RunStore(Path(args.store) if args.store else None, create=create)


def cmd_runs(args: argparse.Namespace) -> int:
    summaries = _store(args).list()
    if args.json:
        print(json.dumps([s.__dict__ for s in summaries], default=str, indent=1))
        return 0
    if not summaries:
        print("no runs yet: python -m ser_lab train --corpus synthetic --epochs 3 --folds 2")
        return 0
    print(f"{'run id':<44} {'state':<11} {'corpus':<10} {'feat':<5} {'λ':>5} {'α':>4} {'UA %':>6} {'WA %':>6}")
    for s in summaries:
        ua = f"{100 * s.UA:6.2f}" if s.UA is not None else "     -"
        wa = f"{100 * s.WA:6.2f}" if s.WA is not None else "     -"
        lam = f"{s.lam:5.2f}" if s.lam is not None else "    -"
        alpha = f"{s.alpha:4.2f}" if s.alpha is not None else "   -"
        state = s.state + (f" {100 * (s.progress or 0):.0f}%" if s.state == "running" else "")
        print(f"{s.run_id:<44} {state:<11} {str(s.corpus):<10} {str(s.features):<5} {lam} {alpha} {ua} {wa}")
        if s.problem or s.error:
            print(f"{'':<44} ! {s.problem or s.error}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ser_lab.learn.evaluate import rescore_run

    run = _store(args).get(args.run)
    if args.corpus is None:
        if args.fold:
            raise SerLabError("--fold applies to cross-corpus scoring: give --corpus too")
        print(format_results(rescore_run(run, device=args.device)))
        return 0
    from ser_lab.learn.crosscorpus import cross_evaluate

    result = cross_evaluate(
        run, args.corpus, args.root, classes=args.classes, corpus_options=corpus_options(args),
        folds=args.fold, device=args.device, workers=args.workers,
    )
    trained = result["trained_on"]["corpus"]
    print(f"run {run.run_id} (trained on {trained}) on corpus {args.corpus}: {result['n_utterances']} "
          f"utterances, {result['n_speakers']} speakers; one row per fold model")
    print(format_results(result))
    print(f"written to {result['path']}")
    return 0


def fold_or_ensemble(text: str) -> int | str:
    """argparse type of predict --fold: a fold index or the word 'ensemble'."""
    if text == "ensemble":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fold index or 'ensemble', got {text!r}") from None


def cmd_predict(args: argparse.Namespace) -> int:
    from ser_lab.inference import Predictor

    run = _store(args).get(args.run)
    predictor = Predictor.from_run(run, fold=args.fold, device=args.device)
    status = 0
    for clip in args.clips:
        try:
            result = predictor.predict(clip, with_projection=False, with_neighbours=False)
        except SerLabError as exc:
            print(f"{clip}: error: {exc}")
            status = 2
            continue
        print(f"{clip}: {result.predicted}" + (" (cut at 14 s)" if result.truncated else ""))
        for name, p, d in zip(result.label_names, result.probabilities, result.center_distances):
            print(f"  {name:<10} p={p:6.3f}  distance to center {d:7.3f}")
    return status


def cmd_compare(args: argparse.Namespace) -> int:
    from ser_lab.analysis.compare import check_run_count, compare_many, format_many_table

    ids = [args.run_a, args.run_b, *args.more]
    check_run_count(len(ids))  # before any run is read
    store = _store(args)
    many = compare_many([store.get(i) for i in ids])
    if getattr(args, "json", False):
        from ser_lab.app.comparison import comparison_json, many_json

        out = comparison_json(many["pairs"][0]) if len(many["pairs"]) == 1 else many_json(many)
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(format_many_table(many))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ser_lab.experiments.quickstart import format_pair, run_quick_start
    from ser_lab.runs import RunStore

    store = RunStore(Path(args.store) if args.store else None)
    if not args.json:
        print(f"training the quick-start pair (seed {args.seed}) in {store.root} ...", file=sys.stderr, flush=True)
    summary = run_quick_start(store, seed=args.seed)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_pair(summary))
        print(f"({summary['wall_s']:.0f} s; open both on the app's Compare page)")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from ser_lab.serve import run_app

    return run_app(args.streamlit_args, store=args.store)


def cmd_export(args: argparse.Namespace) -> int:
    from ser_lab.export import export_run
    from ser_lab.runs import RunStore

    run = RunStore(Path(args.store) if args.store else None).get(args.run)
    result = export_run(run, args.format, args.out, fold=args.fold)
    for path in result.files:
        print(path)
    for note in result.notes:
        print(f"note: {note}")
    return 0


# ----------------------------------------------------------------------------- sweeps


def _pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{option} expects FIELD=VALUE, got {item!r}")
        out.append((name.strip(), value))
    return out


def spec_from_args(args: argparse.Namespace):
    """The SweepSpec of `python -m ser_lab sweep ...` (corpus options first, --set on top)."""
    from ser_lab.experiments.sweep import SweepSpec, field_types

    base: dict[str, Any] = {"corpus": args.corpus, "classes": args.classes}
    if args.root:
        base["root"] = str(Path(args.root).resolve())
    if corpus_options(args):
        base["corpus_options"] = corpus_options(args)
    for name, value in _pairs(args.set or [], "--set"):
        if name == "root" and value.strip().lower() not in ("", "none"):
            value = str(Path(value.strip()).resolve())
        base[name] = value
    grid: dict[str, list[str]] = {}
    for name, value in _pairs(args.grid or [], "--grid"):
        if field_types().get(name, "").startswith(("list", "dict")):
            raise ConfigError(f"{name} cannot be a grid axis; set it with --set or --point")
        grid.setdefault(name, []).extend(v for v in value.split(",") if v.strip())
    points = [dict(_pairs(p, "--point")) for p in args.point or []]
    spec = SweepSpec(base=base, grid=grid, points=points, seeds=args.seeds, sweep_id=args.sweep_id)
    return spec.validate()


def cmd_sweep(args: argparse.Namespace) -> int:
    from ser_lab.experiments.sweep import (
        SweepSpec,
        expand,
        list_sweeps,
        point_key,
        read_manifest,
        run_name,
        run_sweep,
    )
    from ser_lab.runs import RunStore

    store = RunStore(_store_arg(args))
    if args.resume:
        manifest = read_manifest(store, args.resume)
        if manifest is None:
            known = ", ".join(list_sweeps(store)[-5:]) or "none"
            raise ConfigError(f"no sweep {args.resume!r} in {store.root} (latest: {known})")
        spec = SweepSpec.from_dict(manifest["spec"]).validate()
    else:
        spec = spec_from_args(args)
    configs = expand(spec)
    print(f"sweep {spec.sweep_id}: {len(configs)} runs in {store.root}", flush=True)
    if args.dry_run:
        axes = spec.axes()
        for cfg in configs:
            print(f"  {run_name(spec.sweep_id, point_key(cfg, axes))}")
        return 0

    def show(event: dict) -> None:
        what = (
            "already done"
            if event["event"] == "skipped" and event["state"] == "done"
            else event["state"]
        )
        line = f"[{event['done']}/{event['total']}] {event['name']}: {what}"
        if event.get("error"):
            line += f" ({event['error']})"
        print(line, flush=True)

    try:
        result = run_sweep(
            spec,
            store,
            backend=args.backend,
            workers=args.workers,
            address=args.address,
            progress=show,
            cpus_per_task=args.cpus_per_task,
            gpus_per_task=args.gpus_per_task,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finish with  python -m ser_lab sweep --resume {spec.sweep_id}",
            flush=True,
        )
        return 130
    print(
        f"{result.n_done}/{len(result.points)} runs done; report: python -m ser_lab report {spec.sweep_id}"
    )
    if not result.ok:
        print(
            f"not done: {len(result.unfinished)}; re-launch: python -m ser_lab sweep --resume {spec.sweep_id}"
        )
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ser_lab.experiments.report import build_report, format_table
    from ser_lab.runs import RunStore

    store = RunStore(_store_arg(args))
    report = build_report(store, args.sweep_id, args.out)
    print(format_table(report["table"], report["other_axes"]))
    print(f"report: {report['out_dir']}/report.html (and report.md)")
    return 0


def _store_arg(args: argparse.Namespace) -> Path | None:
    value = getattr(args, "sweep_store", None) or getattr(args, "store", None)
    return Path(value) if value else None


def add_sweep_commands(subparsers) -> None:
    """Register `sweep` and `report` on the CLI's sub-command parsers (called by build_parser)."""
    from ser_lab.experiments.sweep import BACKENDS

    p = subparsers.add_parser(
        "sweep",
        help="train a grid of settings x seeds (resumable, local or Ray)",
        description="Train every point of a grid (and/or explicit points) for every seed. "
        "Example: --set epochs=3 --grid lam=0,0.1,0.3 --grid alpha=0.5 --seeds 0 1",
    )
    add_corpus_args(p)
    p.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="a training setting shared by every run, e.g. epochs=20 (repeatable)",
    )
    p.add_argument(
        "--grid",
        action="append",
        metavar="FIELD=V1,V2,...",
        help="an axis of the grid, e.g. lam=0,0.1,0.3 (repeatable; axes are crossed)",
    )
    p.add_argument(
        "--point",
        action="append",
        nargs="+",
        metavar="FIELD=VALUE",
        help="one explicit point, e.g. --point lam=0.3 alpha=0.5 (repeatable)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    p.add_argument(
        "--sweep-id", default=None, help="name the sweep (re-use it to extend or resume)"
    )
    p.add_argument(
        "--resume", default=None, metavar="SWEEP_ID", help="re-launch a sweep from its manifest"
    )
    p.add_argument("--backend", default="local", choices=BACKENDS)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs trained at once (local default: one per GPU, else per core)",
    )
    p.add_argument("--address", default=None, help="Ray cluster address: auto or HOST:PORT")
    p.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPUs per run (default 1)")
    p.add_argument("--gpus-per-task", type=float, default=0, help="Ray: GPUs per run (default 0)")
    p.add_argument(
        "--store",
        dest="sweep_store",
        default=None,
        help="run store shared by all nodes (default: the global --store)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the runs without training")
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("report", help="write a sweep's report (tables, plots, statistics)")
    p.add_argument("sweep_id")
    p.add_argument(
        "--out", default=None, help="output folder (default: <store>/sweeps/<id>-report)"
    )
    p.add_argument(
        "--store", dest="sweep_store", default=None, help="run store (default: the global --store)"
    )
    p.set_defaults(func=cmd_report)


# ----------------------------------------------------------------------------- parser


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    from ser_lab.data.corpora import CORPORA, REGISTRY
    from ser_lab.data.corpora.labels import CLASS_SETS

    roots = "; ".join(f"{name}: {entry.help}" for name, entry in REGISTRY.items())
    p.add_argument("--corpus", default="synthetic", choices=CORPORA, help="corpus adapter (default: built-in synthetic)")
    p.add_argument("--root", default=None, help=f"corpus folder ({roots})")
    p.add_argument("--classes", default="paper", choices=CLASS_SETS, help="4 paper classes or all")
    p.add_argument("--size", default=None, help="synthetic corpus size: default, medium, small, tiny")
    p.add_argument("--improvised-only", action="store_true", help="IEMOCAP: improvised sessions only")


def add_objective_args(p: argparse.ArgumentParser) -> None:
    """--objective and each arm's settings (names and defaults from ser_lab/config.py)."""
    from ser_lab import config as o

    g = p.add_argument_group("objective (ser_lab/learn/objectives.py; λ weighs the extra term of every arm but amsoftmax)")
    g.add_argument("--objective", default="center", choices=o.OBJECTIVES,
                   help="center: the paper's α-rule centers (default); center_learned: centers learned "
                   "by SGD (Wen et al. 2016); amsoftmax: additive-margin softmax; triplet: batch-hard "
                   "triplet + softmax; supcon: supervised contrastive + softmax")
    g.add_argument("--center-lr", type=float, default=o.CENTER_LR, help="center_learned: SGD rate of the centers")
    g.add_argument("--am-scale", type=float, default=o.AM_SCALE, help="amsoftmax: scale s")
    g.add_argument("--am-margin", type=float, default=o.AM_MARGIN, help="amsoftmax: cosine margin m in [0, 1)")
    g.add_argument("--triplet-margin", type=float, default=o.TRIPLET_MARGIN, help="triplet: margin on distances of z")
    g.add_argument("--supcon-temperature", type=float, default=o.SUPCON_TEMPERATURE, help="supcon: temperature τ")


def build_parser() -> argparse.ArgumentParser:
    from ser_lab.choices import DEVICES, KINDS, LR_SCHEDULES, NORMALISATIONS, PROTOCOLS

    parser = argparse.ArgumentParser(prog="ser-lab", description="SER Lab command line (also: python -m ser_lab)")
    parser.add_argument("--store", default=None, help="run store folder (default: ./checkpoints or $SER_LAB_CHECKPOINTS)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="corpus tools").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("describe", help="counts per class and speaker, and problems found")
    add_corpus_args(p)
    p.set_defaults(func=cmd_data_describe)
    p = data.add_parser("features", help="fill the feature cache (progress bar)")
    add_corpus_args(p)
    p.add_argument("--features", default="mel", choices=KINDS)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(func=cmd_data_features)

    p = sub.add_parser("train", help="train the CNN-BiGRU (with center loss when --lam > 0)")
    add_corpus_args(p)
    p.add_argument("--model", default="cnn-bigru", choices=("cnn-bigru", "egemaps-svm"),
                   help="the paper's network, or the eGeMAPS + linear SVM baseline on the same folds "
                        "(needs requirements-classical.txt; ignores λ, α, epochs, features, device)")
    p.add_argument("--features", default="mel", choices=KINDS)
    p.add_argument("--lam", "--lambda", dest="lam", type=float, default=0.0, help="center loss weight λ (0 = baseline)")
    p.add_argument("--alpha", type=float, default=0.5, help="center update rate α in [0, 1]")
    add_objective_args(p)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs,
                   help=f"most epochs per fold (default {TrainConfig.epochs})")
    p.add_argument("--patience", type=int, default=TrainConfig.patience,
                   help=f"stop a fold after N epochs without a better validation UA; 0 = never (default {TrainConfig.patience})")
    p.add_argument("--normalise", choices=NORMALISATIONS, default=TrainConfig.normalise,
                   help="per-bin standardisation: with the training part's statistics (corpus) or each "
                        f"speaker's own (speaker; a single clip at prediction: its own) (default {TrainConfig.normalise})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=TrainConfig.augment,
                   help="SpecAugment-style time and frequency masks on training batches "
                        f"(default {'on' if TrainConfig.augment else 'off'})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=TrainConfig.lr_schedule,
                   help="the paper's constant learning rate, or halve it after --lr-patience epochs "
                        f"without a better validation UA (plateau) (default {TrainConfig.lr_schedule})")
    p.add_argument("--lr-patience", type=int, default=TrainConfig.lr_patience,
                   help=f"plateau schedule: epochs without a better validation UA before halving (default {TrainConfig.lr_patience})")
    p.add_argument("--refit", action=argparse.BooleanOptionalAction, default=TrainConfig.refit,
                   help="after early stopping, train each fold again on train + validation for the "
                        f"chosen epoch count and keep that model (default {'on' if TrainConfig.refit else 'off'})")
    p.add_argument("--folds", type=int, default=5, help="number of folds")
    p.add_argument("--fold", type=int, action="append", default=None, help="train only this fold (repeatable)")
    p.add_argument("--protocol", default="speaker", choices=PROTOCOLS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--name", default=None, help="human-readable run name")
    p.add_argument("--snapshot-every", type=int, default=0, help="save z snapshots every N epochs")
    p.add_argument("--workers", type=int, default=None, help="feature extraction processes")
    p.add_argument("--parallel-folds", type=_parallel_folds, default=None, metavar="N|auto",
                   help="train N folds at once, each in its own process with the threads divided "
                        "('auto': one per core; default: one after another)")
    p.add_argument("--sweep-id", default=None, help=argparse.SUPPRESS)
    p.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--resume", default=None, metavar="RUN", help="continue a queued or interrupted run")
    p.add_argument("--tensorboard", default=None, metavar="LOGDIR",
                   help="also write live TensorBoard scalars to LOGDIR/<run>/fold_<k> (optional extra)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("eval", help="re-score a finished run from its saved models, or score it on another corpus")
    p.add_argument("run")
    from ser_lab.data.corpora import CORPORA

    p.add_argument("--corpus", default=None, choices=CORPORA,
                   help="cross-corpus: score every fold model on this corpus (same classes), write RUN/cross/")
    p.add_argument("--root", default=None, help="that corpus's folder (not needed for synthetic)")
    p.add_argument("--classes", default=None, choices=("paper", "all"), help="default: the run's")
    p.add_argument("--size", default=None, help="synthetic corpus size")
    p.add_argument("--improvised-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fold", type=int, action="append", default=None,
                   help="cross-corpus: only this fold's model (repeatable; default: every finished fold)")
    p.add_argument("--workers", type=int, default=None, help="feature extraction processes")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="class probabilities and center distances for clips")
    p.add_argument("run")
    p.add_argument("clips", nargs="+")
    p.add_argument("--fold", type=fold_or_ensemble, default=0,
                   help="fold index, or 'ensemble' to average every finished fold")
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("compare", help="accuracy and discriminability of two to four runs")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("more", nargs="*", metavar="RUN", help="up to two more runs (C, D), each against A")
    p.add_argument("--json", action="store_true",
                   help="one JSON object: the table's rows, what changed and (for two runs) a plain reading")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("quickstart", help="train the home page's quick-start pair and compare it")
    p.add_argument("--seed", type=int, default=0, help="seed of both runs (init, batches, split)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser(
        "app",
        help="start the Streamlit app (http://127.0.0.1:8501)",
        description="Start the Streamlit app. Any further arguments go to `streamlit run`, "
        "e.g. `ser-lab app --server.port 8600` or `--server.address 0.0.0.0` to serve other "
        "machines (the default binds 127.0.0.1 only).",
    )
    p.add_argument("streamlit_args", nargs="*", metavar="STREAMLIT_ARG", help="arguments for `streamlit run`")
    p.set_defaults(func=cmd_app)

    from ser_lab.export import FORMATS

    p = sub.add_parser("export", help="a run's fold as CSV, Embedding Projector, TensorBoard or ONNX")
    p.add_argument("run")
    p.add_argument("--fold", type=int, default=None,
                   help="fold index (default: the lowest finished fold; tensorboard: every fold)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    p.set_defaults(func=cmd_export)

    add_sweep_commands(sub)
    return parser


def _app_split(argv: list[str]) -> tuple[list[str], list[str]] | None:
    """(ser-lab's own arguments, streamlit's) when the command is `app`: everything after
    the verb goes to `streamlit run` untouched (argparse would take `--server.port` for an
    option of its own), except a lone -h / --help, which shows the verb's help."""
    for i, token in enumerate(argv):
        before = argv[:i]
        if token == "app" and (
            not before
            or (len(before) == 2 and before[0] == "--store")
            or (len(before) == 1 and before[0].startswith("--store="))
        ):
            rest = argv[i + 1 :]
            if rest in (["-h"], ["--help"]):
                return argv, []
            return argv[: i + 1], rest
    return None


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name's odd bytes print as \xNN
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    split = _app_split(argv)
    if split is not None:
        args = parser.parse_args(split[0])
        args.streamlit_args = split[1]
    else:
        args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except SerLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`runs | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # the system's own errors (disk full, permissions): one line too
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
