"""The numbers and projections behind every picture of the app, from a trained run's z.

A run folder (see `ser_lab.runs`) holds, per fold k, fold_k/embeddings.npz (z, labels, preds,
probs, utt_ids, split, centers, label_names), optional fold_k/snapshots/epoch_XXX.npz and a
results.json. This module turns them into:

- maps: `project_fold(run, k, "pca"|"umap") -> FoldMap`: a 2-D map FITTED on the fold's
  training z and APPLIED to validation and test z, to the trained centers and to the
  empirical class means; `fold_map.projection.transform(z)` places an uploaded clip.
  Cached on disk (see below). `align_map(reference, moving)` rotates/reflects/scales one run's
  map onto another's for side-by-side panels (`ser_lab.analysis.projection.align_to`).
  `precompute_maps(run, k)`: the pages' first maps of a fold, cached (the trainer calls it).
- teaching: `snapshot_frames(run, k)`: every saved epoch in ONE shared map (fitted on the last
  epoch's training z) so the animation shows z moving, not the map changing.
- the numbers of one run beside another's (discriminability, compare_runs) live in
  `ser_lab.analysis.compare`, exports (CSV, Embedding Projector, TensorBoard, ONNX) in
  `ser_lab.export`.

A `run` argument is either a `ser_lab.runs.Run` (or anything with its reading API: `.dir`,
`.run_id`, `load_embeddings(k)`, `read_results()`, `list_snapshots(k)`, `load_snapshot(k, e)`;
`.config` and `fold_dir(k)` are used when present) or the path of a run folder, opened as a
`Run`: every file is read, and checked, by `ser_lab.runs`, the one reader of run folders.

Caching. A map is stored in fold_k/projections/<method>-<params hash>.npz: the 2-D
coordinates of every point, centers and class means, the parameters, a fingerprint of the
embeddings it came from (a changed embeddings.npz invalidates it), and for PCA its components
and mean (so it can transform new points exactly). Nothing is pickled: a cache file is only
ever read with allow_pickle=False. A UMAP map needs no fitted model after its fit: new points
are placed from the training z and their map positions (`ser_lab.analysis.projection.umap_place`), so a
reopened map costs no recomputation and places a clip in about a millisecond in any process.
Snapshot frames are cached the same way.
An unwritable run folder just means no disk cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ser_lab import fileio
from ser_lab.analysis.discriminability import class_means
from ser_lab.analysis.projection import (
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
from ser_lab.errors import ConfigError, RunError
from ser_lab.runs import SNAPSHOT_KEYS, SPLITS, Run

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
