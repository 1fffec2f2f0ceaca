"""2-D maps of the learned feature z (PCA, UMAP) and Procrustes alignment of two maps.

A map is FITTED on the training z of a fold and then APPLIED (`transform`) to everything else:
validation and test z, an uploaded clip's z, the trained class centers and the empirical class
means. So a test utterance lands where the training map puts it, and a new clip is placed on
the same map without moving any other point (no refit per point).

Two maps of different runs are unrelated up to rotation, reflection, translation and scale;
`align_to` removes those with an orthogonal Procrustes fit on the utterances both maps share,
so classes do not appear mirrored or rotated between side-by-side panels. A fitted scale
(`allow_scale=True`, the default) silently resizes the moving map to the reference: center
loss shrinks z as a whole, so comparing runs with it hides exactly the effect under study.
The Compare page therefore aligns RIGIDLY (`allow_scale=False`) and states the scale itself
(`ser_lab.app.comparison.compare_maps`: each map in units of its own mean inter-center
distance, or both in raw units).

Everything here is a pure function of numpy arrays; caching on disk lives in
`ser_lab.analysis.maps.project_fold`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import orthogonal_procrustes

from ser_lab.errors import ConfigError, RunError

METHODS = ("pca", "umap")

# The defaults, recorded with every map (and part of its cache key).
PCA_DEFAULTS: dict[str, Any] = {"n_components": 2}
UMAP_DEFAULTS: dict[str, Any] = {
    "n_components": 2,
    "n_neighbors": 15,
    "min_dist": 0.1,
    "metric": "euclidean",
    "random_state": 0,
}
_DEFAULTS = {"pca": PCA_DEFAULTS, "umap": UMAP_DEFAULTS}
MIN_FIT_POINTS = {"pca": 3, "umap": 5}


def resolve_params(method: str, params: dict | None = None) -> dict[str, Any]:
    """The full parameter set of a map: defaults overridden by `params`, checked.

    Only 2-D maps are made (every picture of the app is 2-D), so n_components must stay 2.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown projection method {method!r} (expected one of {METHODS})")
    params = dict(params or {})
    unknown = sorted(set(params) - set(_DEFAULTS[method]))
    if unknown:
        raise ConfigError(
            f"unknown {method} parameter(s) {unknown} (allowed: {sorted(_DEFAULTS[method])})"
        )
    full = {**_DEFAULTS[method], **params}
    if full["n_components"] != 2:
        raise ConfigError(f"maps are 2-D: n_components must be 2, got {full['n_components']!r}")
    if method == "umap":
        n_neighbors, min_dist = full["n_neighbors"], full["min_dist"]
        if not isinstance(n_neighbors, int) or isinstance(n_neighbors, bool) or n_neighbors < 2:
            raise ConfigError(f"UMAP n_neighbors must be an int >= 2, got {n_neighbors!r}")
        if not isinstance(min_dist, (int, float)) or not 0.0 <= min_dist <= 1.0:
            raise ConfigError(f"UMAP min_dist must be in [0, 1], got {min_dist!r}")
        if not isinstance(full["random_state"], int):
            raise ConfigError(
                f"UMAP random_state must be an int (maps must be repeatable), "
                f"got {full['random_state']!r}"
            )
    return full


def params_key(method: str, params: dict) -> str:
    """A short stable hash of (method, params): names a map's cache file."""
    text = json.dumps({"method": method, **params}, sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def as_points(z: Any, what: str = "z", dim: int | None = None) -> np.ndarray:
    """`z` as a finite float64 (n, d) array (one vector is taken as one point)."""
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ConfigError(f"{what} must be a (n, d) array of points, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ConfigError(f"{what} has {arr.shape[1]} dimensions, the map was fitted on {dim}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{what} holds NaN or infinite values")
    return arr


# ----------------------------------------------------------------------------- projections


@dataclass(eq=False)
class Projection:
    """A fitted 2-D map of z.

    method: "pca" or "umap"; params: the full parameter set; fit_xy (n_fit, 2): the 2-D
    coordinates of the points the map was fitted on (fit_ids: their utt_ids, if known);
    dim: the dimension of z. `transform(z) -> (n, 2)` places any other points on the map.
    """

    method: str
    params: dict[str, Any]
    fit_xy: np.ndarray
    dim: int
    fit_ids: np.ndarray | None = None

    def transform(self, z: Any) -> np.ndarray:
        raise NotImplementedError


@dataclass(eq=False)
class PcaProjection(Projection):
    """PCA: xy = (z - mean) @ components.T, exactly sklearn's transform (no whitening).

    Stored as plain arrays (components, mean), so a cached map is a pickle-free .npz.
    """

    components: np.ndarray = field(default_factory=lambda: np.zeros((2, 0)))  # (2, d)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (d,)
    explained_variance_ratio: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def transform(self, z: Any) -> np.ndarray:
        z = as_points(z, dim=self.dim)
        return (z - self.mean) @ self.components.T


@dataclass(eq=False)
class UmapProjection(Projection):
    """UMAP: umap-learn fits the map of the training z; new points are placed in numpy.

    A new point (validation, test, a center, an uploaded clip) is placed the way UMAP's own
    `transform` starts: at the membership-weighted mean of its `n_neighbors` nearest fitted
    points' map positions, with UMAP's fuzzy membership weights exp(-(d_j - rho) / sigma)
    (rho = distance to the nearest, sigma such that the weights sum to log2(k)); see
    `umap_place`. UMAP then refines that start with a few optimisation epochs; SER Lab skips
    the refinement so that placing a point needs neither the fitted umap model (which cannot be
    stored without pickle) nor numba: only the training z and their cached map positions. A
    clip is therefore placed identically in every process, in about a millisecond, and the map
    itself never moves.
    """

    fit_z: np.ndarray | None = None
    cache_key: tuple | None = None  # names this map (kept for callers that label maps)

    def transform(self, z: Any) -> np.ndarray:
        z = as_points(z, dim=self.dim)
        if self.fit_z is None:
            raise RunError("this UMAP map has lost the training z it places new points with")
        return umap_place(self.fit_z, self.fit_xy, z, int(self.params["n_neighbors"]))


def umap_place(fit_z: np.ndarray, fit_xy: np.ndarray, z: np.ndarray, n_neighbors: int) -> np.ndarray:
    """UMAP's transform initialisation: xy = sum_j w_j xy_j / sum_j w_j over the k nearest fits.

    w_j = exp(-max(d_j - rho, 0) / sigma), rho the distance to the nearest fitted point and sigma
    found by bisection so that sum_j w_j = log2(k) (umap-learn's smooth_knn_dist with
    local_connectivity = 1).
    """
    fit_z = np.asarray(fit_z, dtype=np.float64)
    k = max(1, min(n_neighbors, len(fit_z)))
    d2 = (z**2).sum(1)[:, None] + (fit_z**2).sum(1)[None, :] - 2.0 * z @ fit_z.T  # (n, n_fit)
    idx = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(fit_z) else np.tile(np.arange(k), (len(z), 1))
    d = np.sqrt(np.maximum(np.take_along_axis(d2, idx, axis=1), 0.0))  # (n, k)
    rho = d.min(axis=1, keepdims=True)
    excess = d - rho
    target = np.log2(k) if k > 1 else 1.0
    lo, hi = np.zeros((len(z), 1)), np.full((len(z), 1), np.inf)
    sigma = np.ones((len(z), 1))
    for _ in range(64):  # the same bisection as umap-learn's smooth_knn_dist
        total = np.exp(-excess / sigma).sum(axis=1, keepdims=True)
        too_big = total > target
        hi = np.where(too_big, sigma, hi)
        lo = np.where(too_big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    w = np.exp(-excess / np.maximum(sigma, 1e-12))  # (n, k)
    return (w[:, :, None] * np.asarray(fit_xy)[idx]).sum(axis=1) / w.sum(axis=1, keepdims=True)


def fit_projection(
    z_fit: Any, method: str = "pca", params: dict | None = None, fit_ids: Any = None
) -> Projection:
    """Fit a 2-D map on `z_fit` (the training z of a fold)."""
    params = resolve_params(method, params)
    z = as_points(z_fit, "z_fit")
    if len(z) < MIN_FIT_POINTS[method]:
        raise RunError(
            f"a {method} map needs at least {MIN_FIT_POINTS[method]} points to fit on, got {len(z)}"
        )
    ids = None if fit_ids is None else np.asarray(fit_ids, dtype=str)
    if method == "pca":
        return _fit_pca(z, params, ids)
    _, xy = _fit_umap(z, params)
    return UmapProjection(method="umap", params=params, fit_xy=xy, dim=z.shape[1], fit_ids=ids, fit_z=z)


def _fit_pca(z: np.ndarray, params: dict, ids: np.ndarray | None) -> PcaProjection:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="full").fit(z)
    proj = PcaProjection(
        method="pca",
        params=params,
        fit_xy=np.zeros((len(z), 2)),
        dim=z.shape[1],
        fit_ids=ids,
        components=np.asarray(pca.components_, dtype=np.float64),
        mean=np.asarray(pca.mean_, dtype=np.float64),
        explained_variance_ratio=np.asarray(pca.explained_variance_ratio_, dtype=np.float64),
    )
    proj.fit_xy = proj.transform(z)
    return proj


@contextlib.contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Put torch's intra-op thread count back after numba work (a UMAP fit).

    torch and numba's OpenMP layer share one OpenMP runtime in the process. After
    scikit-learn's OpenMP code has run (the 5-NN measure of every fold) and torch has read its
    count, numba's first parallel launch leaves the runtime at numba's own count (all cores).
    Without this, a trainer told to use one thread trained every fold after the first fold's
    map with two (gdb showed the second OpenMP thread): beside another single-thread process
    on 2 cores, 29-36 s an epoch instead of 11-16 s (bench/reproduce.py jobs on the
    synthetic corpus).
    """
    torch = sys.modules.get("torch")  # not imported: nothing of torch's to keep
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _fit_umap(z: np.ndarray, params: dict) -> tuple[Any, np.ndarray]:
    """A fitted umap.UMAP and the 2-D embedding of the points it was fitted on.

    n_neighbors is capped at n - 1 for tiny sets (UMAP itself would warn and do the same).
    """
    import umap  # slow first import (numba); only paid when a UMAP map is asked for

    kwargs = dict(params)
    kwargs["n_neighbors"] = min(kwargs["n_neighbors"], len(z) - 1)
    with warnings.catch_warnings(), torch_threads_kept():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and friends
        model = umap.UMAP(**kwargs)
        xy = model.fit_transform(z.astype(np.float32))
    return model, np.asarray(xy, dtype=np.float64)


# ----------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class Similarity2D:
    """xy -> scale * xy @ rotation + translation (rotation orthogonal; det -1 = reflection).

    rms: root-mean-square distance left between the aligned and the reference points;
    n_shared: how many shared points the fit used.
    """

    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    rms: float = 0.0
    n_shared: int = 0

    @property
    def reflected(self) -> bool:
        return bool(np.linalg.det(self.rotation) < 0)

    @property
    def angle_deg(self) -> float:
        """The rotation angle (of the proper part, after any reflection of the y axis)."""
        r = self.rotation
        if self.reflected:
            r = np.diag([1.0, -1.0]) @ r
        return float(np.degrees(np.arctan2(r[0, 1], r[0, 0])))

    def apply(self, xy: Any) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        if xy.size == 0:
            return xy.reshape(-1, 2)
        return self.scale * (xy @ self.rotation) + self.translation

    def to_dict(self) -> dict[str, Any]:
        return {
            "rotation": self.rotation.tolist(),
            "scale": self.scale,
            "translation": self.translation.tolist(),
            "reflected": self.reflected,
            "angle_deg": self.angle_deg,
            "rms": self.rms,
            "n_shared": self.n_shared,
        }

    @staticmethod
    def identity() -> Similarity2D:
        return Similarity2D(np.eye(2), 1.0, np.zeros(2))


MIN_SHARED = 3


def align_to(
    reference_xy: Any,
    reference_ids: Any,
    moving_xy: Any,
    moving_ids: Any,
    *,
    allow_scale: bool = True,
    allow_reflection: bool = True,
) -> tuple[np.ndarray, Similarity2D]:
    """Align a 2-D map onto a reference map; returns (all moving points aligned, transform).

    With allow_scale=True the moving map is also resized to the reference's size: pass
    allow_scale=False whenever the size of the maps is part of what is being compared.

    The transform (rotation, reflection if allowed, translation, uniform scale if allowed) is
    the least-squares fit of the moving points onto the reference points with the same id
    (orthogonal Procrustes, `scipy.linalg.orthogonal_procrustes`), then applied to every
    moving point, shared or not.
    """
    ref = _xy(reference_xy, "reference_xy")
    mov = _xy(moving_xy, "moving_xy")
    ref_ids = _ids(reference_ids, len(ref), "reference")
    mov_ids = _ids(moving_ids, len(mov), "moving")
    shared, ref_idx, mov_idx = np.intersect1d(ref_ids, mov_ids, return_indices=True)
    if len(shared) < MIN_SHARED:
        raise RunError(
            f"cannot align the maps: they share {len(shared)} utterance(s), at least "
            f"{MIN_SHARED} are needed (were the runs trained on different corpora?)"
        )
    transform = fit_similarity(
        ref[ref_idx], mov[mov_idx], allow_scale=allow_scale, allow_reflection=allow_reflection
    )
    return transform.apply(mov), transform


def fit_similarity(
    target: np.ndarray,
    source: np.ndarray,
    *,
    allow_scale: bool = True,
    allow_reflection: bool = True,
) -> Similarity2D:
    """The similarity transform taking `source` points closest to `target` (same order)."""
    mu_t, mu_s = target.mean(axis=0), source.mean(axis=0)
    t, s = target - mu_t, source - mu_s
    norm_s = float((s**2).sum())
    if norm_s <= 1e-24:
        raise RunError("cannot align a map whose shared points all sit at one place")
    if allow_reflection:
        rotation, sv_sum = orthogonal_procrustes(s, t)
    else:
        u, sv, vt = np.linalg.svd(s.T @ t)
        sign = 1.0 if np.linalg.det(u @ vt) >= 0 else -1.0
        d = np.diag([1.0, sign])
        rotation = u @ d @ vt
        sv_sum = sv[0] + sign * sv[1]
    scale = float(sv_sum / norm_s) if allow_scale else 1.0
    translation = mu_t - scale * (mu_s @ rotation)
    aligned = scale * (source @ rotation) + translation
    rms = float(np.sqrt(((aligned - target) ** 2).sum(axis=1).mean()))
    return Similarity2D(np.asarray(rotation), scale, translation, rms, len(target))


def _xy(xy: Any, what: str) -> np.ndarray:
    arr = np.asarray(xy, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ConfigError(f"{what} must be a (n, 2) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{what} holds NaN or infinite values")
    return arr


def _ids(ids: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(ids).astype(str)
    if arr.shape != (n,):
        raise ConfigError(f"{what} ids have shape {arr.shape}, expected ({n},) like its points")
    if len(np.unique(arr)) != n:
        raise ConfigError(f"{what} ids are not unique")
    return arr
