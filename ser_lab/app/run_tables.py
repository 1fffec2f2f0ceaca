"""The run list and one run's numbers as the pages show them: run tables, labels, status and
progress texts, metric and curve frames, time estimates, predictions and map points.

Nothing here imports Streamlit; pages stay thin (read inputs, call ser_lab, draw).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_lab.errors import RunError
from ser_lab.runs import ACTIVE_STATES, Run, RunStore, RunSummary

# ----------------------------------------------------------------------------- runs


def store_signature(store: RunStore) -> tuple:
    """Modification times of every run's status, results and config: changes whenever a run
    is created, progresses, finishes or is deleted. The key of cached run listings."""
    out = []
    for run_id in store.ids():
        d = Path(store.root) / run_id
        stamps = []
        for name in ("status.json", "results.json", "config.json"):
            try:
                stamps.append((d / name).stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
        out.append((run_id, *stamps))
    return tuple(out)


def run_signature(run_dir: str | os.PathLike) -> list:
    """Modification times of a run's results, status and per-fold files: part of the cache
    key of everything computed from a run (a re-trained or resumed run gets fresh maps)."""
    d = Path(run_dir)
    files = [d / "results.json", d / "status.json"]
    files += sorted(d.glob("fold_*/embeddings.npz")) + sorted(d.glob("fold_*/snapshots"))
    out = []
    for f in files:
        try:
            out.append([f.relative_to(d).as_posix(), f.stat().st_mtime_ns])
        except OSError:
            out.append([f.relative_to(d).as_posix(), 0])
    return out


def is_active(row: RunSummary) -> bool:
    return row.state in ACTIVE_STATES


def is_finished(row: RunSummary) -> bool:
    return row.state == "done" and row.UA is not None


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}f} %"


def run_label(row: RunSummary) -> str:
    """How a run is named in selectors: id, λ/α, result, demo mark."""
    parts = [row.run_id]
    if row.lam is not None:
        alpha = f", α={row.alpha:g}" if row.alpha is not None else ""
        kind = "baseline" if row.lam == 0 else f"λ={row.lam:g}{alpha}"
        parts.append(kind)
    if row.corpus:
        parts.append(f"{row.corpus}/{row.features or '?'}")
    if row.UA is not None:
        parts.append(f"UA {pct(row.UA)}")
    elif row.state != "done":
        parts.append(row.state)
    label = " · ".join(parts)
    return f"[demo] {label}" if row.is_demo else label


def runs_frame(rows: Iterable[RunSummary]) -> pd.DataFrame:
    """The run list as a table (fractions as percent, problems and errors in one column).

    A value a run does not have (no result yet, a broken folder's λ) is an empty cell, not
    "None": numbers are written as text for that reason ("64.58", "0.3")."""

    def num(value: float | None, scale: float = 1.0, digits: int | None = None) -> str:
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return ""
        v = scale * value
        return f"{v:.{digits}f}" if digits is not None else f"{v:g}"

    records = []
    for r in rows:
        records.append(
            {
                "run": r.run_id,
                "state": r.state,
                "demo": r.is_demo,
                "UA %": num(r.UA, 100, 2),
                "WA %": num(r.WA, 100, 2),
                "λ": num(r.lam),
                "α": num(r.alpha),
                "corpus": r.corpus or "",
                "features": r.features or "",
                "epochs": num(r.epochs),
                "progress %": round(100 * (r.progress or 0.0)),
                "problem": r.problem or r.error or "",
                "sweep": r.sweep_id or "",
            }
        )
    columns = [
        "run",
        "state",
        "problem",
        "demo",
        "UA %",
        "WA %",
        "λ",
        "α",
        "corpus",
        "features",
        "epochs",
        "progress %",
        "sweep",
    ]
    return pd.DataFrame(records, columns=columns)


def default_pair(rows: list[RunSummary]) -> tuple[str | None, str | None]:
    """The Compare page's default: the newest finished baseline (λ = 0) and the newest finished
    center-loss run (λ > 0) on the same corpus (and the same features when possible).

    `rows` come newest first (as `RunStore.list` returns them). Falls back to the two newest
    finished runs when no such pair exists. Only runs of the paper's objective form the pair
    (another objective's λ weighs another term; objectives.py).
    """
    done = [r for r in rows if is_finished(r)]
    paper = [r for r in done if (r.objective or "center") == "center"]
    baselines = [r for r in paper if r.lam == 0]
    centers = [r for r in paper if r.lam is not None and r.lam > 0]
    for same_features in (True, False):
        for b in centers:
            for a in baselines:
                if a.corpus == b.corpus and (a.features == b.features or not same_features):
                    return a.run_id, b.run_id
    if len(done) >= 2:
        return done[1].run_id, done[0].run_id
    return (done[0].run_id, None) if done else (None, None)


def quick_start_text(
    preset: dict, store: RunStore | None = None, rows: Iterable[RunSummary] = ()
) -> str:
    """The Home page's description of the quick start, from the preset itself (so it cannot
    drift from what the button launches), with a measured time when earlier runs allow."""
    from ser_lab.data.corpora.synthetic import SIZES
    from ser_lab.experiments.launcher import QUICK_START_ALPHA, QUICK_START_LAMBDA

    size = (preset.get("corpus_options") or {}).get("size", "default")
    spec = SIZES.get(size)
    corpus = f"the built-in synthetic corpus (size {size}"
    if spec is not None:
        corpus += f": {spec.utterances} utterances of {spec.speakers} speakers"
    corpus += ")"
    folds = preset.get("folds") or []
    n_folds = int(preset.get("n_folds", 5))
    which = "one speaker-independent fold" if len(folds) == 1 else f"{len(folds) or n_folds} folds"
    text = (
        f"Train a **baseline** (λ = 0) and a **center-loss** run (λ = {QUICK_START_LAMBDA:g}, "
        f"α = {QUICK_START_ALPHA:g}) side by side on {corpus}: {which} of {n_folds}, "
        f"{preset.get('epochs')} epochs, batch {preset.get('batch_size')}, learning rate "
        f"{preset.get('lr'):g}."
    )
    rate = None
    if store is not None:
        rate, _ = seconds_per_utterance(store, rows, preset.get("features", "mel"))
    if spec is not None and rate is not None:
        seconds = train_estimate(
            spec.utterances, n_folds, len(folds) or n_folds, int(preset.get("epochs", 1)), rate
        )
        text += f" About {format_duration(seconds)} here (measured on earlier runs)."
    return text + (
        " Then open **Compare**: it says in plain words what the pair shows. "
        "(Two pre-trained demo runs are there already.)"
    )


def format_duration(seconds: float | None) -> str:
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "–"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _fold_progress(active: dict, n_epochs) -> str:
    refit = active.get("refit")
    if isinstance(refit, dict):
        return f"{active.get('fold')} (refit epoch {refit.get('epoch')}/{refit.get('epochs')})"
    return f"{active.get('fold')} (epoch {active.get('epoch')}/{n_epochs})"


def progress_text(status: dict) -> str:
    """e.g. "fold 0 (1 of 1) · epoch 3/8 · 37 % · ETA 1 min 20 s"."""
    parts = []
    n_folds = status.get("n_folds")
    to_train = f" ({n_folds} to train)" if n_folds else ""
    active = status.get("folds_active")
    if status.get("state") in ACTIVE_STATES and isinstance(active, list) and len(active) > 1:
        # folds training in parallel processes (ser_lab.learn.parallel): each with its epoch
        n_epochs = status.get("n_epochs") or "?"
        each = ", ".join(_fold_progress(a, n_epochs) for a in active if isinstance(a, dict))
        parts.append(f"folds {each} in parallel{to_train}")
    else:
        if status.get("fold") is not None:
            parts.append(f"fold {status['fold']}{to_train}")
        if status.get("epoch") is not None:
            parts.append(f"epoch {status['epoch']}/{status.get('n_epochs') or '?'}")
    refit = status.get("refit")
    parallel = isinstance(active, list) and len(active) > 1  # each fold's refit is shown above
    if status.get("state") in ACTIVE_STATES and isinstance(refit, dict) and not parallel:
        parts.append(f"fold {refit.get('fold')} refit on train + validation, epoch "
                     f"{refit.get('epoch')}/{refit.get('epochs')}")
    progress = status.get("progress")
    if isinstance(progress, (int, float)):
        parts.append(f"{100 * progress:.0f} %")
    if status.get("state") in ACTIVE_STATES:
        eta = status.get("eta_s")
        parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA: estimating…")
        if status.get("state") == "queued":
            parts.insert(0, "starting (reading the corpus and its features)")
    return " · ".join(parts)


METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "losses": ("softmax_loss", "center_loss", "triplet_loss", "supcon_loss", "total_loss"),
    "accuracy": ("val_UA", "val_WA", "train_UA"),
    "distances": ("intra_dist", "inter_dist", "val_intra_dist"),
}


def metrics_frame(records: list[dict]) -> pd.DataFrame:
    """metrics.jsonl as a long table (fold, epoch, metric, value) for line charts."""
    rows = []
    for r in records:
        for group, keys in METRIC_GROUPS.items():
            for key in keys:
                value = r.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    rows.append(
                        {
                            "fold": r.get("fold", 0),
                            "epoch": r.get("epoch"),
                            "group": group,
                            "metric": key,
                            "value": float(value),
                        }
                    )
    return pd.DataFrame(rows, columns=["fold", "epoch", "group", "metric", "value"])


# The Train page's overlaid charts: one chart per quantity group, one color per run, one line
# style per quantity. "intra_inter" is derived (intra_dist / inter_dist of the same epoch).
CURVE_GROUPS: dict[str, tuple[str, ...]] = {
    "losses": ("softmax_loss", "center_loss", "total_loss"),
    "accuracy": ("val_UA", "train_UA"),
    "distances": ("intra_dist", "inter_dist"),
    "ratio": ("intra_inter",),
}
CURVE_TITLES = {
    "losses": "losses",
    "accuracy": "accuracy (%)",
    "distances": "feature distances (units of z, training set)",
    "ratio": "intra / inter, scale-free (lower: tighter classes)",
}
LC_NOTE = (
    "Why L_c can rise while the classes get tighter: L_c = mean ‖z − c‖² is measured in units "
    "of z², and the softmax loss keeps pushing the feature norm up (larger z give more "
    "confident scores), so every distance in z grows, the baseline's most of all (nothing "
    "holds its z back). The intra / inter ratio divides that scale out: read it, not L_c, to "
    "see whether center loss makes the classes tighter."
)


def curves_frame(records_by_run: dict[str, list[dict]]) -> pd.DataFrame:
    """Long table (run, epoch, group, metric, value) of several runs' metrics.jsonl for the
    overlaid charts: each metric averaged over the folds that reached that epoch (n_folds
    says how many), plus the scale-free intra / inter ratio of every epoch."""
    rows = []
    for run_id, records in records_by_run.items():
        per_epoch: dict[tuple[str, int], list[float]] = {}
        for r in records:
            epoch = r.get("epoch")
            if not isinstance(epoch, int):
                continue
            values = dict(r)
            intra, inter = r.get("intra_dist"), r.get("inter_dist")
            if isinstance(intra, (int, float)) and isinstance(inter, (int, float)) and inter > 0:
                values["intra_inter"] = intra / inter
            for keys in CURVE_GROUPS.values():
                for key in keys:
                    v = values.get(key)
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        per_epoch.setdefault((key, epoch), []).append(float(v))
        for (key, epoch), vals in per_epoch.items():
            group = next(g for g, keys in CURVE_GROUPS.items() if key in keys)
            rows.append(
                {
                    "run": run_id,
                    "epoch": epoch,
                    "group": group,
                    "metric": key,
                    "value": float(np.mean(vals)),
                    "n_folds": len(vals),
                }
            )
    columns = ["run", "epoch", "group", "metric", "value", "n_folds"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["run", "metric", "epoch"]).reset_index(drop=True)


def seconds_per_utterance(store: RunStore, rows: Iterable[RunSummary], features: str) -> tuple[
    float | None, int
]:
    """(median wall seconds per training utterance per epoch, training and validation
    included; how many finished runs it comes from) over the 5 newest finished runs with
    these features; (None, 0) without any. Measured from the times of consecutive epochs in
    metrics.jsonl and the training-set size in config.json."""
    rates = []
    for r in rows:
        if len(rates) >= 5:
            break
        if not is_finished(r) or r.features != features:
            continue
        try:
            run = Run(Path(store.root) / r.run_id)
            sizes = {
                int(f["fold"]): int(f["train"])
                for f in (run.config.get("data") or {}).get("folds") or []
            }
            records = run.read_metrics()
        except (RunError, KeyError, TypeError, ValueError):
            continue
        gaps = []
        last: dict[int, float] = {}
        for rec in sorted(records, key=lambda x: (x.get("fold", 0), x.get("epoch", 0))):
            fold, t = rec.get("fold", 0), rec.get("time")
            if not isinstance(t, (int, float)):
                continue
            if fold in last and sizes.get(fold):
                gaps.append((t - last[fold]) / sizes[fold])
            last[fold] = t
        if gaps:
            rates.append(float(np.median(gaps)))
    if not rates:
        return None, 0
    return float(np.median(rates)), len(rates)


def train_estimate(
    n_utterances: int,
    n_folds: int,
    folds_trained: int,
    epochs: int,
    rate: float | None,
    *,
    val_fraction: float = 0.15,
    refit: bool = False,
    patience: int = 0,
) -> float | None:
    """Estimated wall seconds of a run: epochs × folds trained × training utterances per fold
    × the measured seconds per utterance (None without a measurement). With `refit`, plus the
    second pass on train + validation, at most the epochs the first pass can choose (with early
    stopping, `patience` fewer than the maximum)."""
    if rate is None or n_utterances <= 0 or n_folds < 1:
        return None
    n_fit = n_utterances * (1 - 1 / n_folds)
    n_train = n_fit * (1 - val_fraction)
    seconds = rate * n_train * epochs * folds_trained
    if refit:
        chosen = max(epochs - patience, 1) if 0 < patience < epochs else epochs
        seconds += rate * n_fit * chosen * folds_trained
    return seconds


def common_folds(run_a: Run, run_b: Run) -> list[int]:
    return sorted(set(run_a.folds_done()) & set(run_b.folds_done()))


def predictions(run: Run, fold: int) -> pd.DataFrame:
    """One row per utterance of a fold: utt_id, split, label, pred, p(pred), indexed by utt_id."""
    emb = run.load_embeddings(fold)
    names = np.asarray(emb["label_names"]).astype(str)
    probs = np.asarray(emb["probs"])
    preds = np.asarray(emb["preds"])
    frame = pd.DataFrame(
        {
            "utt_id": np.asarray(emb["utt_ids"]).astype(str),
            "split": np.asarray(emb["split"]).astype(str),
            "label": names[np.asarray(emb["labels"])],
            "pred": names[preds],
            "p_pred": probs[np.arange(len(preds)), preds],
        }
    )
    return frame.set_index("utt_id", drop=False)


def map_points(fold_map: Any, splits: Iterable[str]) -> pd.DataFrame:
    """The map's points of the given splits (utt_id, split, label, pred, correct, x, y)."""
    df = fold_map.to_dataframe()
    return df[df["split"].isin(list(splits))].reset_index(drop=True)
