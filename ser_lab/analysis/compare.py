"""Comparing runs, from their run folders: the numbers of one run beside another's.

- discriminability: `run_discriminability(run, k)` (train / val / test numbers of
  `ser_lab.analysis.discriminability.discriminability` and the train -> test k-NN accuracy).
- comparison: `compare_runs(a, b)` (one run or a list of runs, e.g. seeds, per side),
  `compare_rows(comparison)` (the one table of a comparison, shared by the CLI and the app) and
  `format_compare_table(comparison)` for `python -m ser_lab compare A B`.
- up to four runs: `compare_many([a, b, c, d])` (B, C and D each against A),
  `compare_many_rows(many)` (the same table with a column per run) and `format_many_table(many)`
  for `python -m ser_lab compare A B C D`.

A `run` argument is a `ser_lab.runs.Run` or the path of a run folder, as in
`ser_lab.analysis.maps`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
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
    side ("a", "b"): run ids and configs, per-fold UA/WA, their mean with the sample
    standard deviation over all folds and over the runs' means (seeds; None for one run),
    the pooled confusion matrix (summed over runs) as counts and row-normalised, per-class
    recall and pooled UA/WA from it, and discriminability (train / test, mean over folds and
    runs, plus k-NN accuracy). Across sides: B - A differences of the confusion matrices and
    recalls, and the test utterances whose prediction changed, matched by utt_id ("fixed":
    wrong in A, right in B; "broken": the reverse; with several runs per side an utterance
    is right when most of its test predictions are). Fractions, not percentages.
    """
    return _pair(_side(_as_list(run_a, "A")), _side(_as_list(run_b, "B")))


MAX_RUNS = 4  # the Compare page's grid and `compare A B C D`
NAMES = "ABCD"


def compare_many(runs: Sequence[Any]) -> dict[str, Any]:
    """Two to four runs, B, C and D each against A: {"names", "labels", "pairs"}, where
    pairs[k] is what `compare_runs(A, runs[k + 1])` returns. Each entry of `runs` is one run
    or a list of runs, as a side of `compare_runs`; every side is read once."""
    check_run_count(len(runs))
    sides = [_side(_as_list(r, name)) for r, name in zip(runs, NAMES, strict=False)]
    pairs = [_pair(sides[0], side, name) for side, name in zip(sides[1:], NAMES[1:], strict=False)]
    return {"names": list(NAMES[: len(runs)]), "labels": pairs[0]["labels"], "pairs": pairs}


def pair_as_many(comparison: dict[str, Any]) -> dict[str, Any]:
    """A `compare_runs` result in the shape of `compare_many`'s (runs A and B)."""
    return {"names": ["A", "B"], "labels": comparison["labels"], "pairs": [comparison]}


def many_sides(many: dict[str, Any]) -> list[dict[str, Any]]:
    """Every side of a `compare_many` result, A first (each as in `compare_runs`' "a" / "b")."""
    return [many["pairs"][0]["a"], *(p["b"] for p in many["pairs"])]


def check_run_count(n: int) -> None:
    """A comparison is of 2 to MAX_RUNS runs (ConfigError otherwise)."""
    if not 2 <= n <= MAX_RUNS:
        raise ConfigError(f"a comparison takes 2 to {MAX_RUNS} runs, got {n}")


def _pair(a: tuple[dict, dict], b: tuple[dict, dict], name_b: str = "B") -> dict[str, Any]:
    """`compare_runs`'s result from two sides, each `_side`'s (summary, test predictions)."""
    (side_a, preds_a), (side_b, preds_b) = a, b
    if side_a["labels"] != side_b["labels"]:
        raise RunError(
            f"the runs use different classes: A {side_a['labels']} vs {name_b} {side_b['labels']}"
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


def compare_rows(comparison: dict[str, Any], *, several: bool | None = None) -> list[CompareRow]:
    """The rows of a `compare_runs` result, in order: the one table that
    `python -m ser_lab compare` prints and the app's Compare page shows. `several`: whether to
    add the std-over-runs rows (default: when a side has more than one run)."""
    a, b = comparison["a"], comparison["b"]
    if several is None:
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


@dataclass(frozen=True)
class ManyRow:
    """One row of the table of `compare_many`: a metric of every run (A first), as in
    `CompareRow` (`values[k]` of run NAMES[k]; None where that run has no such number)."""

    metric: str
    key: str
    percent: bool
    better: str | None
    values: tuple[float | None, ...]
    stds: tuple[float | None, ...]

    @property
    def diffs(self) -> tuple[float | None, ...]:
        """Each run after A minus A."""
        a = self.values[0]
        ok = a is not None and np.isfinite(a)
        return tuple(v - a if ok and v is not None and np.isfinite(v) else None for v in self.values[1:])


def compare_many_rows(many: dict[str, Any]) -> list[ManyRow]:
    """The rows of a `compare_many` result: `compare_rows` of every pair, with a column per run
    (a row that only some pairs have, e.g. the recall of a class one run never tested, has
    None for the others)."""
    pairs = many["pairs"]
    several = any(p[side]["n_runs"] > 1 for p in pairs for side in ("a", "b"))
    per_pair = [{r.key: r for r in compare_rows(p, several=several)} for p in pairs]
    keys = list(dict.fromkeys(k for rows in per_pair for k in rows))
    out = []
    for key in keys:
        first = next(rows[key] for rows in per_pair if key in rows)
        got = [rows.get(key) for rows in per_pair]
        out.append(
            ManyRow(
                first.metric, key, first.percent, first.better,
                values=(first.a, *(r.b if r else None for r in got)),
                stds=(first.std_a, *(r.std_b if r else None for r in got)),
            )
        )
    return out


def format_compare_table(comparison: dict[str, Any]) -> str:
    """`compare_rows` as plain text: metric rows; A, B and B - A columns (`format_many_table`
    of the pair)."""
    return format_many_table(pair_as_many(comparison))


def format_many_table(many: dict[str, Any]) -> str:
    """`compare_many_rows` as plain text: metric rows; a column per run, then each run after A
    minus A; the test predictions each run fixed and broke against A.

    Accuracies and recalls in percent (with ± the sample std over folds where there is one);
    an undefined value as "-".
    """
    names, pairs, sides = many["names"], many["pairs"], many_sides(many)

    def cell(value: float | None, std: float | None, pct: bool) -> str:
        return _num(value, pct) + (f" ± {_num(std, pct)}" if std is not None else "")

    rows = [
        (r.metric, *(cell(v, s, r.percent) for v, s in zip(r.values, r.stds, strict=True)),
         *(_num(d, r.percent, True) for d in r.diffs))
        for r in compare_many_rows(many)
    ]
    header = ("metric", *names, *(f"{n} - A" for n in names[1:]))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        cells = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        return "  ".join([r[0].ljust(widths[0]), *cells])

    def changed_line(name: str, changed: dict) -> str:
        against = "" if len(names) == 2 else f"{name} against A, "
        return (
            f"test predictions ({against}{changed['n_shared']} shared utterances): "
            f"fixed by {name} {changed['n_fixed']}, broken by {name} {changed['n_broken']}, "
            f"right in both {changed['both_right']}, wrong in both {changed['both_wrong']}"
        )

    out = [
        *(f"{n}: {', '.join(s['run_ids'])}" + (f" ({s['n_runs']} runs)" if s["n_runs"] > 1 else "")
          for n, s in zip(names, sides, strict=True)),
        "",
        line(header),
        line(tuple("-" * w for w in widths)),
        *(line(r) for r in rows),
        "",
        *(changed_line(n, p["changed"]) for n, p in zip(names[1:], pairs, strict=True)),
    ]
    return "\n".join(out)


def _num(value: float | None, pct: bool, signed: bool = False) -> str:
    """Percent with 2 decimals, other numbers with 3; "-" for an undefined value."""
    if value is None or not np.isfinite(value):
        return "-"
    value, digits = (value * 100, 2) if pct else (value, 3)
    return f"{value:{'+' if signed else ''}.{digits}f}"
