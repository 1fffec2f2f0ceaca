"""The numbers and projections behind every picture of the app, from a trained run's z.

A run folder (see `ser_lab.runs`) holds, per fold k, fold_k/embeddings.npz (z, labels, preds,
probs, utt_ids, split, centers, label_names), optional fold_k/snapshots/epoch_XXX.npz and a
results.json. This module turns them into:

- maps: `project_fold(run, k, "pca"|"umap") -> FoldMap`: a 2-D map FITTED on the fold's
  training z and APPLIED to validation and test z, to the trained centers and to the
  empirical class means; `fold_map.projection.transform(z)` places an uploaded clip.
  Cached on disk (see below). `align_map(reference, moving)` rotates/reflects/scales one run's
  map onto another's for side-by-side panels (`ser_lab.projection.align_to`).
  `precompute_maps(run, k)`: the pages' first maps of a fold, cached (the trainer calls it).
- discriminability: `run_discriminability(run, k)` (train / val / test numbers of
  `ser_lab.discriminability` and the train -> test k-NN accuracy).
- comparison: `compare_runs(a, b)` (one run or a list of runs, e.g. seeds, per side) and
  `format_compare_table(comparison)` for `python -m ser_lab compare A B`.
- teaching: `snapshot_frames(run, k)`: every saved epoch in ONE shared map (fitted on the last
  epoch's training z) so the animation shows z moving, not the map changing.
- exports (CSV, Embedding Projector, TensorBoard, ONNX) live in `ser_lab.export`.

A `run` argument is either a `ser_lab.runs.Run` (or anything with its reading API: `.dir`,
`.run_id`, `load_embeddings(k)`, `read_results()`, `list_snapshots(k)`, `load_snapshot(k, e)`;
`.config` and `fold_dir(k)` are used when present) or the path of a run folder, opened as a
`Run`: every file is read, and checked, by `ser_lab.runs`, the one reader of run folders.

Caching. A map is stored in fold_k/projections/<method>-<params hash>.npz: the 2-D
coordinates of every point, centers and class means, the parameters, a fingerprint of the
embeddings it came from (a changed embeddings.npz invalidates it), and for PCA its components
and mean (so it can transform new points exactly). Nothing is pickled: a cache file is only
ever read with allow_pickle=False. A UMAP map needs no fitted model after its fit: new points
are placed from the training z and their map positions (`ser_lab.projection.umap_place`), so a
reopened map costs no recomputation and places a clip in about a millisecond in any process.
Snapshot frames are cached the same way.
An unwritable run folder just means no disk cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ser_lab import fileio
from ser_lab.discriminability import (
    class_means,
    discriminability,
    fisher_criterion,
    knn_accuracy,
    mean_pairwise_distance,
    silhouette,
)
from ser_lab.errors import ConfigError, RunError
from ser_lab.projection import (
    METHODS,
    MIN_FIT_POINTS,
    PcaProjection,
    Projection,
    Similarity2D,
    UmapProjection,
    align_to,
    fit_projection,
    params_key,
    resolve_params,
)
from ser_lab.runs import SNAPSHOT_KEYS, SPLITS, Run, config_columns
from ser_lab.stats import sample_std

__all__ = [
    "METHODS",
    "FoldMap",
    "Projection",
    "Similarity2D",
    "align_map",
    "align_to",
    "class_means",
    "CompareRow",
    "compare_rows",
    "compare_runs",
    "discriminability",
    "fisher_criterion",
    "fit_projection",
    "format_compare_table",
    "knn_accuracy",
    "load_fold",
    "mean_pairwise_distance",
    "precompute_maps",
    "project_fold",
    "run_discriminability",
    "run_folds",
    "silhouette",
    "snapshot_frames",
]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
ALIGN_MODES = ("none", "rigid", "similarity")


# ----------------------------------------------------------------------------- run access


def _open(run: Any) -> Any:
    """A Run-like object for a Run or the path of a run folder (read by `ser_lab.runs.Run`)."""
    if isinstance(run, (str, os.PathLike)):
        if not Path(run).is_dir():
            raise RunError(f"no run folder at {run}")
        return Run(run)
    if not hasattr(run, "load_embeddings") or not hasattr(run, "dir"):
        raise ConfigError(f"expected a run or a run folder path, got {type(run).__name__}")
    return run


def _run_id(run: Any) -> str:
    return str(getattr(run, "run_id", None) or Path(run.dir).name)


def _fold_dir(run: Any, fold: int) -> Path:
    if hasattr(run, "fold_dir"):
        return Path(run.fold_dir(fold))
    return Path(run.dir) / f"fold_{int(fold)}"


def _config(run: Any) -> dict:
    try:
        config = getattr(run, "config", None)
    except Exception as e:  # noqa: BLE001 - a broken config must not hide the analysis
        log.debug("config of %s unreadable: %s", _run_id(run), e)
        return {}
    return config if isinstance(config, dict) else {}


def _check_fold(fold: Any) -> int:
    if not isinstance(fold, (int, np.integer)) or isinstance(fold, bool) or fold < 0:
        raise ConfigError(f"a fold index must be a non-negative int, got {fold!r}")
    return int(fold)


def run_folds(run: Any) -> list[int]:
    """The folds of a run: those listed in results.json, else every fold_k with embeddings."""
    run = _open(run)
    results = run.read_results()
    if results and isinstance(results.get("folds"), list):
        folds = [f.get("fold") for f in results["folds"] if isinstance(f, dict)]
        if folds and all(isinstance(k, int) for k in folds):
            return sorted(folds)
    found = []
    for path in Path(run.dir).glob("fold_*"):
        digits = path.name[len("fold_") :]
        if digits.isdigit() and (path / "embeddings.npz").is_file():
            found.append(int(digits))
    return sorted(found)


def load_fold(run: Any, fold: int) -> dict[str, np.ndarray]:
    """Fold k's embeddings as read and checked by `ser_lab.runs.Run.load_embeddings` (one row
    per utterance everywhere, integer labels, known split names, one center and one name per
    class, unique utt_ids), in float64 for the numbers computed from them."""
    run, fold = _open(run), _check_fold(fold)
    return _as_float64(run.load_embeddings(fold))


def _as_float64(arrs: dict) -> dict[str, np.ndarray]:
    out = dict(arrs)
    for key in ("z", "centers", "probs"):
        if key in out:
            out[key] = np.asarray(out[key], dtype=np.float64)
    for key in ("utt_ids", "split", "label_names"):
        if key in out:
            out[key] = np.asarray(out[key]).astype(str)
    for key in ("labels", "preds"):
        if key in out:
            out[key] = np.asarray(out[key]).astype(np.int64)
    return out


def _fingerprint(arrs: dict[str, np.ndarray], keys: tuple[str, ...]) -> str:
    """A content hash of the arrays a cached result was computed from."""
    h = hashlib.sha256()
    for key in keys:
        arr = np.ascontiguousarray(arrs[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _projections_dir(run: Any, fold: int) -> Path:
    return _fold_dir(run, fold) / "projections"


def _load_cache(path: Path, meta: dict[str, str]) -> dict[str, np.ndarray] | None:
    """A cache file's arrays if it exists, is readable and was made from the same inputs."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        for key, value in meta.items():
            if str(arrays[key]) != value:
                return None
    except Exception as e:  # noqa: BLE001 - a bad cache file is recomputed, never trusted
        log.debug("ignoring cache %s: %s", path, e)
        return None
    return arrays


def _save_cache(path: Path, meta: dict[str, str], **arrays: np.ndarray) -> None:
    try:
        fileio.atomic_save_npz(path, **{k: np.asarray(v) for k, v in meta.items()}, **arrays)
    except OSError as e:  # read-only run folder: work without a disk cache
        log.debug("could not write cache %s: %s", path, e)


# ----------------------------------------------------------------------------- maps


@dataclass(eq=False)
class FoldMap:
    """The 2-D map of one fold of one run: one row of `xy` per utterance of the fold.

    centers_xy (C, 2): the trained centers on the map; class_means_xy[split] (C, 2): the
    empirical class means of that split's z (NaN rows for classes absent from it), mapped
    (for UMAP the map of a mean is not the mean of the mapped points). `projection` places
    new points (an uploaded clip's z). `alignment` is set on a map aligned to another run's.
    """

    run_id: str
    fold: int
    method: str
    params: dict[str, Any]
    projection: Projection
    xy: np.ndarray
    utt_ids: np.ndarray
    labels: np.ndarray
    preds: np.ndarray
    split: np.ndarray
    label_names: list[str]
    centers_xy: np.ndarray
    class_means_xy: dict[str, np.ndarray] = field(default_factory=dict)
    from_cache: bool = False
    alignment: Similarity2D | None = None

    def transform(self, z: Any) -> np.ndarray:
        """Place new points (e.g. an uploaded clip's z) on this map (aligned maps included)."""
        xy = self.projection.transform(z)
        return self.alignment.apply(xy) if self.alignment is not None else xy

    def to_dataframe(self) -> Any:
        """One row per utterance: utt_id, split, label, pred, correct, x, y (for plotting)."""
        import pandas as pd

        names = np.asarray(self.label_names)
        return pd.DataFrame(
            {
                "utt_id": self.utt_ids,
                "split": self.split,
                "label": names[self.labels],
                "pred": names[self.preds],
                "correct": self.labels == self.preds,
                "x": self.xy[:, 0],
                "y": self.xy[:, 1],
            }
        )


def project_fold(
    run: Any,
    fold: int,
    method: str = "pca",
    params: dict | None = None,
    *,
    use_cache: bool = True,
) -> FoldMap:
    """The 2-D map of a fold: fitted on its training z, applied to everything else.

    Read from fold_k/projections/ when a map with the same method, parameters and
    embeddings is there; otherwise computed and stored there.
    """
    run, fold = _open(run), _check_fold(fold)
    params = resolve_params(method, params)
    emb = load_fold(run, fold)
    train = emb["split"] == "train"
    if train.sum() < MIN_FIT_POINTS[method]:
        raise RunError(
            f"run {_run_id(run)}: fold {fold} has {int(train.sum())} training points, "
            f"a {method} map needs at least {MIN_FIT_POINTS[method]}"
        )
    fingerprint = _fingerprint(emb, ("z", "labels", "utt_ids", "split", "centers"))
    meta = {
        "cache_format": str(CACHE_FORMAT),
        "method": method,
        "params_json": json.dumps(params, sort_keys=True),
        "fingerprint": fingerprint,
    }
    pkey = params_key(method, params)
    path = _projections_dir(run, fold) / f"{method}-{pkey}.npz"
    model_key = (str(Path(run.dir).resolve()), fold, method, pkey, fingerprint)
    cached = _load_cache(path, meta) if use_cache else None
    if cached is not None and cached.get("xy", np.empty(0)).shape == (len(emb["z"]), 2):
        projection = _projection_from_cache(cached, method, params, emb, train, model_key)
        xy, centers_xy = cached["xy"], cached["centers_xy"]
        means_xy = {s: cached[f"means_xy_{s}"] for s in SPLITS}
        from_cache = True
    else:
        projection = fit_projection(emb["z"][train], method, params, emb["utt_ids"][train])
        if isinstance(projection, UmapProjection):
            projection.cache_key = model_key
        xy, centers_xy, means_xy = _apply(projection, emb, train)
        extra = {}
        if isinstance(projection, PcaProjection):
            extra = {
                "components": projection.components,
                "mean": projection.mean,
                "explained_variance_ratio": projection.explained_variance_ratio,
            }
        _save_cache(
            path,
            meta,
            xy=xy,
            utt_ids=emb["utt_ids"],
            centers_xy=centers_xy,
            **{f"means_xy_{s}": means_xy[s] for s in SPLITS},
            **extra,
        )
        from_cache = False
    return FoldMap(
        run_id=_run_id(run),
        fold=fold,
        method=method,
        params=params,
        projection=projection,
        xy=np.asarray(xy, dtype=np.float64),
        utt_ids=emb["utt_ids"],
        labels=emb["labels"],
        preds=emb["preds"],
        split=emb["split"],
        label_names=_label_names(run, emb),
        centers_xy=np.asarray(centers_xy, dtype=np.float64),
        class_means_xy={s: np.asarray(v, dtype=np.float64) for s, v in means_xy.items()},
        from_cache=from_cache,
    )


def precompute_maps(run: Any, fold: int, methods: tuple[str, ...] = tuple(METHODS)) -> dict[str, FoldMap]:
    """The maps Compare and Explore show first of a fold (each method with its default
    parameters, every split on one map), computed now and left in the cache: the trainer calls
    this as each fold ends, so the first open of a finished run reads them from disk. It is
    exactly the page's call, `project_fold(run, fold, method)`, so the cache holds whatever
    the page would compute."""
    return {method: project_fold(run, fold, method) for method in methods}


def _apply(
    projection: Projection, emb: dict, train: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Map every point (training points keep their fitted coordinates), the centers and the
    class means of each split."""
    z, labels, centers = emb["z"], emb["labels"], emb["centers"]
    n_classes = len(centers)
    # one transform call for everything (each UMAP transform call has a fixed cost)
    blocks: list[np.ndarray] = [z[~train], centers]
    present: dict[str, np.ndarray] = {}
    for s in SPLITS:
        mask = emb["split"] == s
        if mask.any():
            present[s], means = class_means(z[mask], labels[mask])
            blocks.append(means)
    mapped = projection.transform(np.concatenate(blocks))
    xy = np.empty((len(z), 2))
    xy[train] = projection.fit_xy
    n_other = int((~train).sum())
    xy[~train] = mapped[:n_other]
    at = n_other + n_classes
    centers_xy = mapped[n_other:at]
    means_xy = {}
    for s in SPLITS:
        out = np.full((n_classes, 2), np.nan)
        if s in present:
            out[present[s]] = mapped[at : at + len(present[s])]
            at += len(present[s])
        means_xy[s] = out
    return xy, centers_xy, means_xy


def _projection_from_cache(
    cached: dict, method: str, params: dict, emb: dict, train: np.ndarray, model_key: tuple
) -> Projection:
    fit_xy = np.asarray(cached["xy"], dtype=np.float64)[train]
    fit_ids = emb["utt_ids"][train]
    dim = emb["z"].shape[1]
    if method == "pca":
        return PcaProjection(
            method="pca",
            params=params,
            fit_xy=fit_xy,
            dim=dim,
            fit_ids=fit_ids,
            components=np.asarray(cached["components"], dtype=np.float64),
            mean=np.asarray(cached["mean"], dtype=np.float64),
            explained_variance_ratio=np.asarray(cached["explained_variance_ratio"]),
        )
    projection = UmapProjection(
        method="umap",
        params=params,
        fit_xy=fit_xy,
        dim=dim,
        fit_ids=fit_ids,
        fit_z=emb["z"][train],
        cache_key=model_key,
    )
    return projection


def _label_names(run: Any, emb: dict) -> list[str]:
    if "label_names" in emb:
        return [str(n) for n in emb["label_names"]]
    results = run.read_results() or {}
    labels = results.get("labels")
    if isinstance(labels, list) and len(labels) == len(emb["centers"]):
        return [str(n) for n in labels]
    return [str(i) for i in range(len(emb["centers"]))]


def align_map(reference: FoldMap, moving: FoldMap) -> FoldMap:
    """`moving` with every coordinate (points, centers, class means, and the placing of new
    points) mapped onto `reference` by a Procrustes fit (rotation, reflection, translation,
    uniform scale) on the utterances both maps hold, matched by utt_id."""
    xy, step = align_to(reference.xy, reference.utt_ids, moving.xy, moving.utt_ids)
    total = step if moving.alignment is None else compose(moving.alignment, step)
    return replace(
        moving,
        xy=xy,
        centers_xy=step.apply(moving.centers_xy),
        class_means_xy={s: step.apply(v) for s, v in moving.class_means_xy.items()},
        alignment=total,
    )


def compose(first: Similarity2D, then: Similarity2D) -> Similarity2D:
    """The similarity transform `then(first(xy))`."""
    return Similarity2D(
        first.rotation @ then.rotation,
        first.scale * then.scale,
        then.scale * (first.translation @ then.rotation) + then.translation,
        then.rms,
        then.n_shared,
    )


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


# ----------------------------------------------------------------------------- snapshots


def snapshot_frames(
    run: Any,
    fold: int,
    method: str = "pca",
    params: dict | None = None,
    *,
    align: str = "rigid",
    use_cache: bool = True,
) -> list[dict[str, Any]]:
    """The fold's per-epoch snapshots as 2-D frames of ONE shared map, oldest first.

    The map is fitted on the LAST snapshot's training z (all its z if it holds too few
    training points) and applied to every epoch, so the animation shows how z moves, not how
    a refitted map would turn. Each frame is then aligned to the last one by Procrustes on
    the shared utterances: align "rigid" (rotation, reflection, translation: keeps the
    spread, so shrinking clusters stay visible), "similarity" (also uniform scale) or "none".
    A frame: {"epoch", "xy" (n, 2), "labels", "split", "utt_ids", "centers_xy" (C, 2),
    "alignment" (dict or None), "label_names" (list or None)}.
    Cached in fold_k/projections/ like the maps.
    """
    run, fold = _open(run), _check_fold(fold)
    params = resolve_params(method, params)
    if align not in ALIGN_MODES:
        raise ConfigError(f"unknown align mode {align!r} (expected one of {ALIGN_MODES})")
    epochs = list(run.list_snapshots(fold))
    if not epochs:
        raise RunError(
            f"run {_run_id(run)}: fold {fold} has no snapshots "
            "(train with snapshot_every > 0 to record them)"
        )
    snaps = [_load_snapshot(run, fold, e) for e in epochs]
    h = hashlib.sha256(json.dumps(epochs).encode())
    for snap in snaps:
        h.update(_fingerprint(snap, SNAPSHOT_KEYS).encode())
    meta = {
        "cache_format": str(CACHE_FORMAT),
        "method": method,
        "params_json": json.dumps(params, sort_keys=True),
        "align": align,
        "fingerprint": h.hexdigest(),
    }
    key = params_key(method, {**params, "align": align})
    path = _projections_dir(run, fold) / f"snapshots-{method}-{key}.npz"
    cached = _load_cache(path, meta) if use_cache else None
    if cached is not None:
        xys = [cached[f"xy_{i}"] for i in range(len(snaps))]
        centers = [cached[f"centers_xy_{i}"] for i in range(len(snaps))]
        alignments = json.loads(str(cached["alignments_json"]))
    else:
        xys, centers, alignments = _frames_xy(snaps, method, params, align)
        _save_cache(
            path,
            meta,
            alignments_json=np.asarray(json.dumps(alignments)),
            **{f"xy_{i}": xy for i, xy in enumerate(xys)},
            **{f"centers_xy_{i}": c for i, c in enumerate(centers)},
        )
    frames = []
    for epoch, snap, xy, c, al in zip(epochs, snaps, xys, centers, alignments, strict=True):
        names = snap.get("label_names")
        frames.append(
            {
                "epoch": epoch,
                "xy": np.asarray(xy, dtype=np.float64),
                "labels": snap["labels"],
                "split": snap["split"],
                "utt_ids": snap["utt_ids"],
                "centers_xy": np.asarray(c, dtype=np.float64),
                "alignment": al,
                "label_names": [str(n) for n in names] if names is not None else None,
            }
        )
    return frames


def _load_snapshot(run: Any, fold: int, epoch: int) -> dict[str, np.ndarray]:
    return _as_float64(run.load_snapshot(fold, epoch))


def _frames_xy(
    snaps: list[dict], method: str, params: dict, align: str
) -> tuple[list[np.ndarray], list[np.ndarray], list[dict | None]]:
    last = snaps[-1]
    dims = {s["z"].shape[1] for s in snaps}
    if len(dims) > 1:
        raise RunError(f"snapshots of one fold have different z dimensions {sorted(dims)}")
    fit = last["split"] == "train"
    if fit.sum() < MIN_FIT_POINTS[method]:
        fit = np.ones(len(last["z"]), dtype=bool)
    projection = fit_projection(last["z"][fit], method, params)
    xys, centers = [], []
    for i, snap in enumerate(snaps):
        if i == len(snaps) - 1:
            xy = np.empty((len(snap["z"]), 2))
            xy[fit] = projection.fit_xy
            if (~fit).any():
                xy[~fit] = projection.transform(snap["z"][~fit])
        else:
            xy = projection.transform(snap["z"])
        xys.append(xy)
        centers.append(projection.transform(snap["centers"]))
    alignments: list[dict | None] = [None] * len(snaps)
    if align != "none":
        for i in range(len(snaps) - 1):
            xys[i], t = align_to(
                xys[-1],
                last["utt_ids"],
                xys[i],
                snaps[i]["utt_ids"],
                allow_scale=align == "similarity",
            )
            centers[i] = t.apply(centers[i])
            alignments[i] = t.to_dict()
    return xys, centers, alignments
