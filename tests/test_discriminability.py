"""Discriminability numbers checked against values known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ser_lab.analysis.discriminability import (
    class_means,
    discriminability,
    fisher_criterion,
    knn_accuracy,
    mean_pairwise_distance,
    silhouette,
)
from ser_lab.errors import ConfigError, SerLabError

D = 64


def placed_centers(a: float, n_classes: int = 4, d: int = D) -> np.ndarray:
    """Class j's center at a * e_j: every pair of centers is a * sqrt(2) apart."""
    centers = np.zeros((n_classes, d))
    centers[np.arange(n_classes), np.arange(n_classes)] = a
    return centers


def gaussians(centers: np.ndarray, sigma: float, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(centers)), n)
    z = centers[labels] + sigma * rng.standard_normal((len(labels), centers.shape[1]))
    return z, labels


def chi_mean(sigma: float, d: int) -> float:
    """E||x - mu|| for x ~ N(mu, sigma^2 I_d)."""
    return sigma * math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def test_intra_matches_the_chi_distribution_mean():
    centers = placed_centers(10.0)
    z, y = gaussians(centers, sigma=0.5, n=2000)
    out = discriminability(z, y, centers)
    assert out["center_source"] == "trained"
    assert out["intra"] == pytest.approx(chi_mean(0.5, D), rel=0.01)
    for value in out["intra_per_class"].values():
        assert value == pytest.approx(chi_mean(0.5, D), rel=0.02)
    # chi mean is a bit below sigma * sqrt(d)
    assert out["intra"] < 0.5 * math.sqrt(D)


def test_inter_is_exact_for_placed_centers_and_ratio_follows():
    centers = placed_centers(10.0)
    z, y = gaussians(centers, sigma=0.5, n=200)
    out = discriminability(z, y, centers)
    assert out["inter"] == pytest.approx(10.0 * math.sqrt(2), abs=1e-12)
    assert out["intra_inter_ratio"] == pytest.approx(out["intra"] / out["inter"])
    assert out["n"] == 800 and out["n_classes"] == 4


def test_without_centers_the_class_means_are_used():
    centers = placed_centers(10.0)
    z, y = gaussians(centers, sigma=0.5, n=500)
    out = discriminability(z, y)
    assert out["center_source"] == "class_means"
    _, means = class_means(z, y)
    assert out["inter"] == pytest.approx(mean_pairwise_distance(means))
    # distances to the sample mean: slightly below those to the true center
    assert out["intra"] == pytest.approx(chi_mean(0.5, D) * math.sqrt(499 / 500), rel=0.01)
    assert out["inter"] == pytest.approx(10.0 * math.sqrt(2), rel=0.01)


def test_trained_centers_far_from_the_data_raise_intra():
    centers = placed_centers(10.0)
    z, y = gaussians(centers, sigma=0.5, n=300)
    shifted = centers + 3.0 * np.eye(D)[10]  # every center 3 units off along a free axis
    near = discriminability(z, y, centers)["intra"]
    far = discriminability(z, y, shifted)["intra"]
    # |z - c - 3 e_10|^2 = |z - c|^2 + 9 (up to noise along e_10): distances concentrate
    assert far == pytest.approx(math.sqrt(near**2 + 9.0), rel=0.01)


def test_fisher_criterion_matches_between_over_within():
    # centers at +-a e1, +-a e2: grand mean 0, every |mu_j|^2 = a^2, within = d sigma^2
    a, sigma = 3.0, 1.0
    centers = np.zeros((4, D))
    centers[0, 0], centers[1, 0], centers[2, 1], centers[3, 1] = a, -a, a, -a
    z, y = gaussians(centers, sigma, n=3000, seed=1)
    assert fisher_criterion(z, y) == pytest.approx(a**2 / (D * sigma**2), rel=0.03)
    assert discriminability(z, y)["fisher"] == pytest.approx(fisher_criterion(z, y))


def test_tight_clusters_beat_loose_ones_by_the_expected_factor():
    centers = placed_centers(10.0)
    tight = discriminability(*gaussians(centers, 0.25, 1000), centers)
    loose = discriminability(*gaussians(centers, 1.0, 1000), centers)
    # intra scales with sigma; fisher ~ a^2 (K-1)/K / (d sigma^2) scales with 1/sigma^2
    assert loose["intra"] / tight["intra"] == pytest.approx(4.0, rel=0.02)
    assert loose["intra_inter_ratio"] / tight["intra_inter_ratio"] == pytest.approx(4.0, rel=0.02)
    assert tight["fisher"] / loose["fisher"] == pytest.approx(16.0, rel=0.05)
    assert tight["silhouette"] > loose["silhouette"]


def test_silhouette_near_one_when_separated_and_near_zero_when_overlapping():
    centers = placed_centers(50.0)
    z, y = gaussians(centers, 0.5, 100)
    assert silhouette(z, y) > 0.9
    z0, y0 = gaussians(np.zeros((4, D)), 1.0, 200)
    assert abs(silhouette(z0, y0)) < 0.05


def test_silhouette_subsamples_deterministically_and_is_nan_for_one_class():
    z, y = gaussians(placed_centers(3.0), 1.0, 800)  # 3200 points > 2000
    assert silhouette(z, y) == silhouette(z, y)
    assert silhouette(z, y, max_points=3200) == pytest.approx(silhouette(z, y), abs=0.02)
    assert math.isnan(silhouette(z[:50], np.zeros(50, dtype=int)))
    single = discriminability(z[:50], np.zeros(50, dtype=int))
    assert math.isnan(single["inter"]) and math.isnan(single["fisher"])


def test_knn_is_perfect_for_separated_clusters():
    centers = placed_centers(20.0)
    z_tr, y_tr = gaussians(centers, 0.5, 100, seed=0)
    z_te, y_te = gaussians(centers, 0.5, 50, seed=1)
    out = knn_accuracy(z_tr, y_tr, z_te, y_te, k=5, label_names=["n", "a", "h", "s"])
    assert out["accuracy"] == 1.0 and out["ua"] == 1.0 and out["k"] == 5
    assert out["recall"] == {"n": 1.0, "a": 1.0, "h": 1.0, "s": 1.0}


def test_knn_is_near_chance_for_identical_distributions():
    zeros = np.zeros((4, D))
    z_tr, y_tr = gaussians(zeros, 1.0, 300, seed=0)
    z_te, y_te = gaussians(zeros, 1.0, 300, seed=1)
    out = knn_accuracy(z_tr, y_tr, z_te, y_te)
    assert out["accuracy"] == pytest.approx(0.25, abs=0.05)
    assert out["n_test"] == 1200


def test_knn_ua_weights_classes_equally():
    # class 0: 90 test points all right; class 1: 10 test points all wrong (placed in class 0)
    z_tr = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    y_tr = np.array([0, 0, 0, 1, 1, 1])
    z_te = np.zeros((100, 1))
    y_te = np.array([0] * 90 + [1] * 10)
    out = knn_accuracy(z_tr, y_tr, z_te, y_te, k=3)
    assert out["accuracy"] == pytest.approx(0.9)
    assert out["ua"] == pytest.approx(0.5)


def test_knn_caps_k_at_the_training_size():
    z = np.array([[0.0], [1.0]])
    assert knn_accuracy(z, np.array([0, 1]), z, np.array([0, 1]), k=5)["k"] == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda: discriminability(np.zeros((3, 2)), np.array([0, 1])),
        lambda: discriminability(np.zeros((3, 2)), np.array([0.0, 1.0, 0.0])),
        lambda: discriminability(np.zeros((0, 2)), np.zeros(0, dtype=int)),
        lambda: discriminability(np.array([[np.nan, 0]]), np.array([0])),
        lambda: discriminability(np.zeros((2, 2)), np.array([0, 3]), np.zeros((2, 2))),
        lambda: discriminability(np.zeros((2, 2)), np.array([0, 1]), np.zeros((2, 5))),
        lambda: knn_accuracy(np.zeros((2, 2)), np.array([0, 1]), np.zeros((1, 3)), np.array([0])),
        lambda: knn_accuracy(np.zeros((2, 2)), np.array([0, 1]), np.zeros((1, 2)), [0], k=0),
    ],
)
def test_bad_inputs_raise_config_errors(call):
    with pytest.raises(ConfigError) as info:
        call()
    assert isinstance(info.value, SerLabError)
