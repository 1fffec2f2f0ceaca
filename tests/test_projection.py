"""2-D maps (PCA, UMAP) and Procrustes alignment, on plain arrays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_lab.analysis import projection as proj
from ser_lab.analysis.projection import (
    PCA_DEFAULTS,
    UMAP_DEFAULTS,
    Similarity2D,
    align_to,
    fit_projection,
    params_key,
    resolve_params,
)
from ser_lab.errors import ConfigError, RunError


def clusters(n_per_class: int = 50, d: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = np.zeros((4, d))
    centers[np.arange(4), np.arange(4)] = 6.0
    labels = np.repeat(np.arange(4), n_per_class)
    return centers[labels] + rng.standard_normal((len(labels), d)), labels


def rotation(deg: float) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])


# ----------------------------------------------------------------------------- PCA


def test_pca_transform_of_a_training_point_equals_its_fitted_coordinate():
    z, _ = clusters()
    p = fit_projection(z, "pca", fit_ids=[f"u{i}" for i in range(len(z))])
    assert p.method == "pca" and p.params == PCA_DEFAULTS and p.dim == 64
    assert p.fit_xy.shape == (len(z), 2) and p.fit_ids.shape == (len(z),)
    np.testing.assert_allclose(p.transform(z[:7]), p.fit_xy[:7], atol=1e-12)
    assert p.transform(z[3]).shape == (1, 2)  # one vector is one point


def test_pca_matches_sklearn_and_is_linear():
    from sklearn.decomposition import PCA

    z, _ = clusters(seed=1)
    p = fit_projection(z, "pca")
    new = np.random.default_rng(2).standard_normal((5, 64))
    np.testing.assert_allclose(p.transform(new), PCA(2).fit(z).transform(new), atol=1e-8)
    # the map of a mean is the mean of the mapped points (PCA is affine)
    np.testing.assert_allclose(p.transform(z.mean(axis=0)), p.fit_xy.mean(axis=0)[None], atol=1e-9)
    assert p.explained_variance_ratio.shape == (2,) and p.explained_variance_ratio.sum() <= 1


def test_pca_first_axis_follows_the_largest_spread():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 64)) * 0.1
    z[:, 5] *= 100  # nearly all variance along dimension 5
    p = fit_projection(z, "pca")
    assert abs(p.components[0, 5]) == pytest.approx(1.0, abs=1e-3)


def test_transform_checks_its_input():
    p = fit_projection(clusters()[0], "pca")
    with pytest.raises(ConfigError, match="dimensions"):
        p.transform(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="NaN"):
        p.transform(np.full((1, 64), np.nan))


def test_params_are_resolved_and_checked():
    assert resolve_params("umap") == UMAP_DEFAULTS
    assert UMAP_DEFAULTS["n_neighbors"] == 15 and UMAP_DEFAULTS["min_dist"] == 0.1
    assert resolve_params("umap", {"n_neighbors": 30})["n_neighbors"] == 30
    assert params_key("umap", resolve_params("umap")) != params_key(
        "umap", resolve_params("umap", {"n_neighbors": 30})
    )
    for method, params in [
        ("tsne", None),
        ("pca", {"whiten": True}),
        ("pca", {"n_components": 3}),
        ("umap", {"n_neighbors": 1}),
        ("umap", {"min_dist": -0.5}),
        ("umap", {"random_state": None}),
    ]:
        with pytest.raises(ConfigError):
            resolve_params(method, params)


def test_too_few_points_to_fit():
    with pytest.raises(RunError, match="at least"):
        fit_projection(np.zeros((2, 64)), "pca")


# ----------------------------------------------------------------------------- Procrustes


def test_procrustes_recovers_a_known_rotation_reflection_scale_and_shift():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((40, 2))
    ids = np.array([f"u{i}" for i in range(40)])
    mirror = np.diag([1.0, -1.0])
    # moving = reference mirrored, rotated by 70 degrees, scaled by 3, shifted
    moving = 3.0 * ref @ mirror @ rotation(70) + np.array([5.0, -2.0])
    order = rng.permutation(40)  # the fit matches by id, not by position
    aligned, t = align_to(ref, ids, moving[order], ids[order])
    np.testing.assert_allclose(aligned, ref[order], atol=1e-10)
    assert t.reflected and t.scale == pytest.approx(1 / 3) and t.rms < 1e-10
    assert t.n_shared == 40
    np.testing.assert_allclose(t.apply(moving), ref, atol=1e-10)


def test_procrustes_without_reflection_or_scale():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((30, 2))
    ids = np.arange(30)
    rotated = ref @ rotation(-40) + 1.0
    aligned, t = align_to(ref, ids, rotated, ids, allow_reflection=False, allow_scale=False)
    np.testing.assert_allclose(aligned, ref, atol=1e-10)
    assert not t.reflected and t.scale == 1.0 and t.angle_deg == pytest.approx(40.0)
    # a mirror image cannot be undone without reflection: a residual stays
    mirrored = ref @ np.diag([1.0, -1.0])
    _, t2 = align_to(ref, ids, mirrored, ids, allow_reflection=False)
    assert t2.rms > 0.1 and not t2.reflected
    _, t3 = align_to(ref, ids, mirrored, ids)
    assert t3.reflected and t3.rms < 1e-10


def test_procrustes_uses_only_shared_ids_and_moves_every_point():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((10, 2))
    ref_ids = [f"u{i}" for i in range(10)]
    extra = np.array([[7.0, 7.0]])
    moving = np.vstack([ref[:6], extra]) @ rotation(90) * 2.0
    moving_ids = ref_ids[:6] + ["only-in-b"]
    aligned, t = align_to(ref, ref_ids, moving, moving_ids)
    assert t.n_shared == 6
    np.testing.assert_allclose(aligned[:6], ref[:6], atol=1e-10)
    np.testing.assert_allclose(aligned[6], extra[0], atol=1e-10)  # non-shared point moved too


def test_procrustes_errors():
    xy = np.arange(10.0).reshape(5, 2)
    with pytest.raises(RunError, match="share 2"):
        align_to(xy, list("abcde"), xy, list("abxyz"))
    with pytest.raises(ConfigError, match="unique"):
        align_to(xy, list("abcdd"), xy, list("abcde"))
    with pytest.raises(ConfigError, match=r"\(n, 2\)"):
        align_to(np.zeros((5, 3)), list("abcde"), xy, list("abcde"))
    with pytest.raises(RunError, match="one place"):
        align_to(xy, list("abcde"), np.ones((5, 2)), list("abcde"))


def test_similarity_to_dict_and_identity():
    t = Similarity2D.identity()
    np.testing.assert_allclose(t.apply([[1.0, 2.0]]), [[1.0, 2.0]])
    d = t.to_dict()
    assert d["scale"] == 1.0 and d["reflected"] is False and d["angle_deg"] == 0.0


# ----------------------------------------------------------------------------- UMAP


@pytest.fixture(scope="module")
def umap_fit():
    """One small UMAP fit for the module (UMAP's first fit compiles numba code: seconds)."""
    pytest.importorskip("umap")
    z, labels = clusters(n_per_class=50)
    return z, labels, fit_projection(z, "umap")


def test_umap_fits_separable_clusters_and_transforms_new_points(umap_fit):
    z, labels, p = umap_fit
    assert p.method == "umap" and p.params == UMAP_DEFAULTS and p.fit_xy.shape == (200, 2)
    # the four clusters stay apart on the map: each point's nearest fitted neighbour shares
    # its class
    d = ((p.fit_xy[:, None] - p.fit_xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(axis=1)] == labels).mean() > 0.95
    # a new point drawn near class 2's center lands among class 2's points
    new = np.zeros((1, 64))
    new[0, 2] = 6.0
    xy = p.transform(new)
    nearest = labels[((p.fit_xy - xy) ** 2).sum(-1).argmin()]
    assert xy.shape == (1, 2) and nearest == 2


def test_umap_places_new_points_without_a_model_and_the_same_in_any_process(umap_fit):
    z, labels, p = umap_fit
    # a map rebuilt from cached arrays only (a "new process") places points identically
    fresh = proj.UmapProjection(method="umap", params=p.params, fit_xy=p.fit_xy, dim=64, fit_z=z)
    new = z[:3] + 0.01
    np.testing.assert_array_equal(fresh.transform(new), p.transform(new))
    # a fitted point lands near its own fitted position: its own weight is 1, and the others
    # decay with their distance beyond the nearest
    xy = p.transform(z[:20])
    spread = np.ptp(p.fit_xy, axis=0).max()
    assert np.median(np.linalg.norm(xy - p.fit_xy[:20], axis=1)) < 0.1 * spread
    without_z = proj.UmapProjection(method="umap", params=p.params, fit_xy=p.fit_xy, dim=64)
    with pytest.raises(RunError, match="training z"):
        without_z.transform(new)


def test_umap_place_is_the_membership_weighted_mean_by_hand():
    from scipy.optimize import brentq

    fit_z = np.array([[0.0], [1.0], [3.0]])
    fit_xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    # k = 2 at z = 0.25: distances 0.25 (rho) and 0.75, excess 0 and 0.5; the weights must sum
    # to log2(2) = 1, so the second weight is 0 and the point sits on its nearest neighbour
    xy = proj.umap_place(fit_z, fit_xy, np.array([[0.25]]), n_neighbors=2)
    np.testing.assert_allclose(xy, [[0.0, 0.0]], atol=1e-6)
    # k = 3: 1 + exp(-0.5/s) + exp(-2.5/s) = log2(3); the result is the weighted mean
    xy = proj.umap_place(fit_z, fit_xy, np.array([[0.25]]), n_neighbors=3)
    s = brentq(lambda s: 1 + np.exp(-0.5 / s) + np.exp(-2.5 / s) - np.log2(3), 1e-3, 100)
    w = np.array([1.0, np.exp(-0.5 / s), np.exp(-2.5 / s)])
    np.testing.assert_allclose(xy[0], (w[:, None] * fit_xy).sum(0) / w.sum(), atol=1e-6)


FIT_AFTER_SKLEARN = """
import os
import numpy as np, torch
want = (os.cpu_count() or 1) + 1  # not a count numba's own launch would set
torch.set_num_threads(want)  # as a trainer does before it loads scikit-learn or UMAP
from sklearn.neighbors import KNeighborsClassifier
z = np.random.default_rng(0).normal(size=(300, 64))
KNeighborsClassifier(5).fit(z, np.arange(300) % 4).predict(z)  # a fold's 5-NN measure
assert torch.get_num_threads() == want  # the trainer reads it to plan the next fold
from ser_lab.analysis.projection import fit_projection
fit_projection(z, "umap")
print(torch.get_num_threads(), want)
"""


def test_umap_fit_keeps_torch_thread_count():
    """A fold's map must not change the thread count the trainer runs the next fold with. It
    runs in a fresh process: the reset happens at numba's first parallel launch only."""
    out = subprocess.run(
        [sys.executable, "-c", FIT_AFTER_SKLEARN], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    got, want = out.stdout.split()[-2:]
    assert got == want
