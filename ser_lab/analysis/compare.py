"""Comparing runs, from their run folders: the numbers of one run beside another's.

- discriminability: `run_discriminability(run, k)` (train / val / test numbers of
  `ser_lab.analysis.discriminability.discriminability` and the train -> test k-NN accuracy).
- comparison: `compare_runs(a, b)` (one run or a list of runs, e.g. seeds, per side),
  `compare_rows(comparison)` (the one table of a comparison, shared by the CLI and the app) and
  `format_compare_table(comparison)` for `python -m ser_lab compare A B`.

A `run` argument is a `ser_lab.runs.Run` or the path of a run folder, as in
`ser_lab.analysis.maps`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_lab.analysis.discriminability import discriminability, knn_accuracy
from ser_lab.analysis.maps import _check_fold, _config, _label_names, _open, _run_id, load_fold
from ser_lab.analysis.stats import sample_std
from ser_lab.errors import ConfigError, RunError
from ser_lab.runs import SPLITS, config_columns

# ----------------------------------------------------------------------------- discriminability


def _split_stats(emb: dict, label_names: list[str]) -> dict[str, Any]:
    """Discriminability of each split (trained centers) and the train -> test k-NN accuracy."""
    out: dict[str, Any] = {}
    for s in SPLITS:
        mask = emb["split"] == s
        out[s] = (
            discriminability(
                emb["z"][mask], emb["labels"][mask], emb["centers"], label_names=label_names
            )
            if mask.any()
            else None
        )
    train, test = emb["split"] == "train", emb["split"] == "test"
    out["knn"] = (
        knn_accuracy(
            emb["z"][train],
            emb["labels"][train],
            emb["z"][test],
            emb["labels"][test],
            k=5,
            label_names=label_names,
        )
        if train.any() and test.any()
        else None
    )
    return out


def run_discriminability(run: Any, fold: int) -> dict[str, Any]:
    """Discriminability of one fold's z: {"fold", "train", "val", "test", "knn"}.

    train / val / test: `discriminability` of that split against the trained centers (None
    for an empty split); knn: `knn_accuracy` (k = 5) fitted on train z, scored on test z.
    """
    run, fold = _open(run), _check_fold(fold)
    emb = load_fold(run, fold)
    return {"fold": fold, **_split_stats(emb, _label_names(run, emb))}


# ----------------------------------------------------------------------------- comparison

_DISC_KEYS = ("intra", "inter", "intra_inter_ratio", "fisher", "silhouette")


def compare_runs(run_a: Any, run_b: Any) -> dict[str, Any]:
    """Everything the Compare page shows, for run A against run B.

    Each side is one run or a list of runs (e.g. the same config with several seeds). Per
    side ("a", "b"): run ids and configs, per-fold UA/WA, their mean with the (population)
    standard deviation over all folds and over the runs' means (seeds; NaN for one run),
    the pooled confusion matrix (summed over runs) as counts and row-normalised, per-class
    recall and pooled UA/WA from it, and discriminability (train / test, mean over folds and
    runs, plus k-NN accuracy). Across sides: B - A differences of the confusion matrices and
    recalls, and the test utterances whose prediction changed, matched by utt_id ("fixed":
    wrong in A, right in B; "broken": the reverse; with several runs per side an utterance
    is right when most of its test predictions are). Fractions, not percentages.
    """
    runs_a, runs_b = _as_list(run_a, "A"), _as_list(run_b, "B")
    side_a, preds_a = _side(runs_a)
    side_b, preds_b = _side(runs_b)
    if side_a["labels"] != side_b["labels"]:
        raise RunError(
            f"the runs use different classes: A {side_a['labels']} vs B {side_b['labels']}"
        )
    labels = side_a["labels"]
    cm_a, cm_b = np.array(side_a["pooled"]["confusion"]), np.array(side_b["pooled"]["confusion"])
    norm_a = np.array(side_a["pooled"]["confusion_norm"])
    norm_b = np.array(side_b["pooled"]["confusion_norm"])
    rec_a, rec_b = side_a["pooled"]["recall"], side_b["pooled"]["recall"]
    return {
        "labels": labels,
        "a": side_a,
        "b": side_b,
        "diff": {
            "UA": side_b["UA"]["mean"] - side_a["UA"]["mean"],
            "WA": side_b["WA"]["mean"] - side_a["WA"]["mean"],
            "recall": {n: rec_b[n] - rec_a[n] for n in labels if n in rec_a and n in rec_b},
            "confusion_counts": (cm_b - cm_a).tolist(),
            "confusion_norm": (norm_b - norm_a).tolist(),
        },
        "changed": _changed(preds_a, preds_b, labels),
    }


def _as_list(runs: Any, side: str) -> list[Any]:
    items = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    if not items:
        raise ConfigError(f"side {side} of the comparison has no runs")
    return [_open(r) for r in items]


def _side(runs: list[Any]) -> tuple[dict[str, Any], dict[str, list]]:
    """One side of a comparison, and its test predictions per utt_id."""
    labels: list[str] | None = None
    folds: list[dict] = []
    run_means: dict[str, list[float]] = {"UA": [], "WA": []}
    cm_total = None
    disc_folds: list[dict] = []
    preds: dict[str, list] = {}
    for run in runs:
        run_id = _run_id(run)
        results = run.read_results()
        if not results:
            raise RunError(f"run {run_id} has no results.json yet (still training, or failed)")
        run_labels, run_folds_ = _results_folds(results, run_id)
        if labels is None:
            labels = run_labels
        elif run_labels != labels:
            raise RunError(f"run {run_id} uses classes {run_labels}, the others {labels}")
        for entry in run_folds_:
            folds.append({"run_id": run_id, **entry})
        for key in ("UA", "WA"):
            run_means[key].append(float(np.mean([f[key] for f in run_folds_])))
        cm = _pooled_confusion(results, run_folds_, len(labels), run_id)
        cm_total = cm if cm_total is None else cm_total + cm
        for entry in run_folds_:
            emb = load_fold(run, entry["fold"])
            stats = _split_stats(emb, labels)
            disc_folds.append({"run_id": run_id, "fold": entry["fold"], **stats})
            test = emb["split"] == "test"
            for u, y, p in zip(
                emb["utt_ids"][test], emb["labels"][test], emb["preds"][test], strict=True
            ):
                preds.setdefault(str(u), []).append((int(y), int(p)))
    assert labels is not None and cm_total is not None
    support = cm_total.sum(axis=1, keepdims=True)
    norm = np.divide(cm_total, support, out=np.zeros(cm_total.shape), where=support > 0)
    seen = support[:, 0] > 0
    recall = {n: float(norm[i, i]) for i, n in enumerate(labels) if seen[i]}
    side = {
        "run_ids": [_run_id(r) for r in runs],
        "configs": [_config_summary(r) for r in runs],
        "n_runs": len(runs),
        "labels": labels,
        "folds": folds,
        **{
            key: {
                "mean": float(np.mean([f[key] for f in folds])),
                "std_folds": sample_std([f[key] for f in folds]),
                "std_seeds": sample_std(run_means[key]),
            }
            for key in ("UA", "WA")
        },
        "pooled": {
            "UA": float(np.mean(list(recall.values()))) if recall else float("nan"),
            "WA": float(np.trace(cm_total) / max(cm_total.sum(), 1)),
            "recall": recall,
            "confusion": cm_total.tolist(),
            "confusion_norm": norm.tolist(),
        },
        "discriminability": _mean_discriminability(disc_folds),
    }
    return side, preds


def _results_folds(results: dict, run_id: str) -> tuple[list[str], list[dict]]:
    labels = results.get("labels")
    folds = results.get("folds")
    if not isinstance(labels, list) or not isinstance(folds, list) or not folds:
        raise RunError(f"run {run_id}: results.json has no labels or no folds")
    out = []
    for f in folds:
        try:
            out.append(
                {
                    "fold": int(f["fold"]),
                    "UA": float(f["UA"]),
                    "WA": float(f["WA"]),
                    "recall": dict(f.get("recall") or {}),
                    "n_test": f.get("n_test"),
                    "best_epoch": f.get("best_epoch"),
                }
            )
        except (KeyError, TypeError, ValueError):
            raise RunError(f"run {run_id}: results.json has a malformed fold entry {f!r}") from None
    return [str(n) for n in labels], out


def _pooled_confusion(results: dict, folds: list[dict], n: int, run_id: str) -> np.ndarray:
    pooled = results.get("pooled") if isinstance(results.get("pooled"), dict) else {}
    raw = pooled.get("confusion")
    if raw is None:  # fall back to the folds' own matrices
        mats = [f.get("confusion") for f in results["folds"]]
        raw = np.sum([np.asarray(m) for m in mats], axis=0) if all(m for m in mats) else None
    cm = np.asarray(raw) if raw is not None else None
    if cm is None or cm.shape != (n, n):
        raise RunError(f"run {run_id}: results.json has no {n}x{n} pooled confusion matrix")
    return cm.astype(np.int64)


def _config_summary(run: Any) -> dict[str, Any]:
    columns = config_columns(_config(run))
    keys = ("corpus", "features", "objective", "lam", "alpha", "seed", "n_folds", "protocol", "epochs")
    return {k: columns[k] for k in keys if columns[k] is not None}


def _mean_discriminability(per_fold: list[dict]) -> dict[str, Any]:
    """Mean over folds (and runs) of each scalar; the per-fold numbers are kept too."""

    def mean_of(part: str, key: str) -> float:
        vals = [f[part][key] for f in per_fold if f.get(part) is not None]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    out: dict[str, Any] = {
        part: {key: mean_of(part, key) for key in _DISC_KEYS} for part in ("train", "test")
    }
    out["knn"] = {key: mean_of("knn", key) for key in ("accuracy", "ua")}
    out["folds"] = per_fold
    return out


def _changed(preds_a: dict, preds_b: dict, labels: list[str]) -> dict[str, Any]:
    def verdict(items: list) -> tuple[float, int, int]:
        right = np.mean([y == p for y, p in items])
        top = Counter(p for _, p in items).most_common(1)[0][0]
        return float(right), items[0][0], top

    fixed, broken = [], []
    both_right = both_wrong = 0
    shared = sorted(set(preds_a) & set(preds_b))
    for u in shared:
        right_a, label, pred_a = verdict(preds_a[u])
        right_b, _, pred_b = verdict(preds_b[u])
        row = {
            "utt_id": u,
            "label": labels[label],
            "pred_a": labels[pred_a],
            "pred_b": labels[pred_b],
        }
        if right_a < 0.5 and right_b > 0.5:
            fixed.append(row)
        elif right_a > 0.5 and right_b < 0.5:
            broken.append(row)
        elif right_a > 0.5 and right_b > 0.5:
            both_right += 1
        elif right_a < 0.5 and right_b < 0.5:
            both_wrong += 1
    return {
        "n_shared": len(shared),
        "n_fixed": len(fixed),
        "n_broken": len(broken),
        "both_right": both_right,
        "both_wrong": both_wrong,
        "fixed": fixed,
        "broken": broken,
    }


@dataclass(frozen=True)
class CompareRow:
    """One row of the comparison table: a metric of side A and side B, and B - A.

    Values are as computed (fractions for accuracies, units of z for distances); `percent`
    says which ones to show as percent. `std_a` / `std_b`: the sample std over folds where
    the row has one (None for a single fold). `key`: a stable name for the row (what
    `compare --json` and the app's plain reading look rows up by); `better`: "higher" or
    "lower", or None for a number that is neither (a raw distance, whose scale the center
    loss itself changes)."""

    metric: str
    a: float | None
    b: float | None
    percent: bool
    std_a: float | None = None
    std_b: float | None = None
    key: str = ""
    better: str | None = None

    @property
    def diff(self) -> float | None:
        if self.a is None or self.b is None or not np.isfinite(self.a) or not np.isfinite(self.b):
            return None
        return self.b - self.a


_DISC_ROWS = (
    # (field, key suffix, label, better): raw distances have no better direction, since the
    # center loss shrinks z as a whole (both fall); the ratio and Fisher are scale-free
    ("intra", "intra", "intra-class distance (units of z)", None),
    ("inter", "inter", "inter-center distance (units of z)", None),
    ("intra_inter_ratio", "intra_inter", "intra / inter ↓", "lower"),
    ("fisher", "fisher", "Fisher criterion ↑", "higher"),
    ("silhouette", "silhouette", "silhouette ↑", "higher"),
)


def compare_rows(comparison: dict[str, Any]) -> list[CompareRow]:
    """The rows of a `compare_runs` result, in order: the one table that
    `python -m ser_lab compare` prints and the app's Compare page shows."""
    a, b = comparison["a"], comparison["b"]
    several = a["n_runs"] > 1 or b["n_runs"] > 1
    rows = []
    for key in ("UA", "WA"):
        sa, sb = a[key], b[key]
        rows.append(
            CompareRow(
                f"{key} (mean over folds)", sa["mean"], sb["mean"], True,
                sa.get("std_folds"), sb.get("std_folds"), key=key, better="higher",
            )
        )
        if several:
            rows.append(
                CompareRow(f"{key} std over runs", sa["std_seeds"], sb["std_seeds"], True,
                           key=f"{key}_std_runs")
            )
    for key in ("UA", "WA"):
        rows.append(
            CompareRow(f"{key} pooled", a["pooled"][key], b["pooled"][key], True,
                       key=f"{key}_pooled", better="higher")
        )
    for name in comparison["labels"]:
        ra, rb = a["pooled"]["recall"].get(name), b["pooled"]["recall"].get(name)
        if ra is not None and rb is not None:
            rows.append(
                CompareRow(f"recall {name}", ra, rb, True, key=f"recall_{name}", better="higher")
            )
    for part in ("test", "train"):
        da, db = a["discriminability"][part], b["discriminability"][part]
        for name, suffix, label, better in _DISC_ROWS:
            rows.append(
                CompareRow(f"{part}: {label}", da[name], db[name], False,
                           key=f"{part}_{suffix}", better=better)
            )
    ka, kb = a["discriminability"]["knn"], b["discriminability"]["knn"]
    rows.append(
        CompareRow("5-NN accuracy of z, train → test ↑", ka["accuracy"], kb["accuracy"], True,
                   key="knn_WA", better="higher")
    )
    rows.append(
        CompareRow("5-NN UA of z, train → test ↑", ka["ua"], kb["ua"], True,
                   key="knn_UA", better="higher")
    )
    return rows


def format_compare_table(comparison: dict[str, Any]) -> str:
    """`compare_rows` as plain text: metric rows; A, B and B - A columns.

    Accuracies and recalls in percent (with ± the sample std over folds where there is one);
    an undefined value as "-".
    """
    a, b = comparison["a"], comparison["b"]

    def cell(value: float | None, std: float | None, pct: bool) -> str:
        return _num(value, pct) + (f" ± {_num(std, pct)}" if std is not None else "")

    rows = [
        (r.metric, cell(r.a, r.std_a, r.percent), cell(r.b, r.std_b, r.percent),
         _num(r.diff, r.percent, True))
        for r in compare_rows(comparison)
    ]
    header = ("metric", "A", "B", "B - A")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(r: tuple[str, ...]) -> str:
        cells = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        return "  ".join([r[0].ljust(widths[0]), *cells])

    changed = comparison["changed"]
    out = [
        f"A: {', '.join(a['run_ids'])}" + (f" ({a['n_runs']} runs)" if a["n_runs"] > 1 else ""),
        f"B: {', '.join(b['run_ids'])}" + (f" ({b['n_runs']} runs)" if b["n_runs"] > 1 else ""),
        "",
        line(header),
        line(tuple("-" * w for w in widths)),
        *(line(r) for r in rows),
        "",
        f"test predictions ({changed['n_shared']} shared utterances): "
        f"fixed by B {changed['n_fixed']}, broken by B {changed['n_broken']}, "
        f"right in both {changed['both_right']}, wrong in both {changed['both_wrong']}",
    ]
    return "\n".join(out)


def _num(value: float | None, pct: bool, signed: bool = False) -> str:
    """Percent with 2 decimals, other numbers with 3; "-" for an undefined value."""
    if value is None or not np.isfinite(value):
        return "-"
    value, digits = (value * 100, 2) if pct else (value, 3)
    return f"{value:{'+' if signed else ''}.{digits}f}"
