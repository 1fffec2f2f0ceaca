"""How discriminative a set of features z is, measured (the paper's aim, made into numbers).

The paper wants features with small intra-class and large inter-class variation and shows it
with PCA pictures only. These functions put numbers on it, for any (z, labels[, centers]):

- intra: mean distance of a point to its class center (the trained centers c_j when given,
  else the empirical class means); intra_per_class: the same per class;
- inter: mean pairwise distance between the centers of the classes present;
- intra_inter_ratio = intra / inter (lower is better; scale-free, so runs whose z have
  different norms can be compared);
- fisher = trace(S_B) / trace(S_W), between-class over within-class scatter around the
  empirical class means (higher is better);
- silhouette: sklearn's mean silhouette (euclidean) in [-1, 1], on at most 2000 points drawn
  with a fixed seed (higher is better);
- knn_accuracy: a 5-nearest-neighbour classifier fitted on training z, scored on test z
  (accuracy = WA and its class-balanced UA): how usable the geometry is, without FC2.

Undefined values (e.g. inter-class distance with one class) are NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ser_lab.errors import ConfigError

SILHOUETTE_MAX_POINTS = 2000
SILHOUETTE_SEED = 0


def _check(z: Any, labels: Any, what: str = "z") -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2:
        raise ConfigError(f"{what} must be a (n, d) array, got shape {z.shape}")
    if y.shape != (len(z),):
        raise ConfigError(f"labels have shape {y.shape}, expected ({len(z)},) like {what}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"labels must be integer class ids, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ConfigError("labels must be non-negative class ids")
    if not np.all(np.isfinite(z)):
        raise ConfigError(f"{what} holds NaN or infinite values")
    return z, y.astype(np.int64)


def class_means(z: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(classes present, sorted; their mean z) — the empirical class centers."""
    z, y = _check(z, labels)
    classes = np.unique(y)
    means = np.stack([z[y == c].mean(axis=0) for c in classes]) if len(classes) else z[:0]
    return classes, means


def mean_pairwise_distance(points: np.ndarray) -> float:
    """Mean Euclidean distance over all unordered pairs of rows (NaN for fewer than 2)."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 2:
        return float("nan")
    diff = points[:, None, :] - points[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=-1))
    return float(dist[np.triu_indices(n, k=1)].mean())


def fisher_criterion(z: Any, labels: Any) -> float:
    """trace(S_B) / trace(S_W) with S_W = sum_i (z_i - mu_y)(z_i - mu_y)^T and
    S_B = sum_j n_j (mu_j - mu)(mu_j - mu)^T; inf if every class is a single point."""
    z, y = _check(z, labels)
    classes, means = class_means(z, y)
    if len(classes) < 2:
        return float("nan")
    index = np.searchsorted(classes, y)
    within = float(((z - means[index]) ** 2).sum())
    counts = np.bincount(index, minlength=len(classes))
    between = float((counts * ((means - z.mean(axis=0)) ** 2).sum(axis=1)).sum())
    if within == 0.0:
        return float("inf") if between > 0 else float("nan")
    return between / within


def silhouette(z: Any, labels: Any, max_points: int = SILHOUETTE_MAX_POINTS) -> float:
    """sklearn's mean silhouette (euclidean) on at most `max_points` points drawn with a fixed
    seed (its cost grows with n^2); NaN when undefined (one class, or one point per class)."""
    from sklearn.metrics import silhouette_score

    z, y = _check(z, labels)
    if len(z) > max_points:
        pick = np.sort(np.random.default_rng(SILHOUETTE_SEED).choice(len(z), max_points, False))
        z, y = z[pick], y[pick]
    n_classes = len(np.unique(y))
    if n_classes < 2 or n_classes > len(z) - 1:
        return float("nan")
    return float(silhouette_score(z, y, metric="euclidean"))


def discriminability(
    z: Any,
    labels: Any,
    centers: Any = None,
    *,
    label_names: Any = None,
) -> dict[str, Any]:
    """Every discriminability number of one set of features (see the module docstring).

    centers (C, d), optional: the trained class centers, indexed by class id; intra and inter
    then use them, otherwise the empirical class means. label_names names the per-class keys
    (default: the class ids as strings).
    """
    z, y = _check(z, labels)
    if len(z) == 0:
        raise ConfigError("no points to measure")
    classes, means = class_means(z, y)
    if centers is not None:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != z.shape[1]:
            raise ConfigError(
                f"centers have shape {centers.shape}, expected (n_classes, {z.shape[1]})"
            )
        if classes[-1] >= len(centers):
            raise ConfigError(
                f"label {classes[-1]} has no center (only {len(centers)} centers given)"
            )
        ref = centers[classes]
    else:
        ref = means
    names = _names(label_names, classes)
    index = np.searchsorted(classes, y)
    dist = np.linalg.norm(z - ref[index], axis=1)
    intra = float(dist.mean())
    inter = mean_pairwise_distance(ref)
    return {
        "n": int(len(z)),
        "n_classes": int(len(classes)),
        "center_source": "trained" if centers is not None else "class_means",
        "intra": intra,
        "intra_per_class": {names[i]: float(dist[index == i].mean()) for i in range(len(classes))},
        "inter": inter,
        "intra_inter_ratio": intra / inter if inter > 0 else float("nan"),
        "fisher": fisher_criterion(z, y),
        "silhouette": silhouette(z, y),
    }


def knn_accuracy(
    z_train: Any,
    y_train: Any,
    z_test: Any,
    y_test: Any,
    k: int = 5,
    *,
    label_names: Any = None,
) -> dict[str, Any]:
    """Accuracy of a k-nearest-neighbour classifier (euclidean) fitted on (z_train, y_train)
    and scored on (z_test, y_test): accuracy (= WA), ua (mean recall over the test classes),
    recall per class, and the k used (capped at the number of training points)."""
    from sklearn.neighbors import KNeighborsClassifier

    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive int, got {k!r}")
    z_train, y_train = _check(z_train, y_train, "z_train")
    z_test, y_test = _check(z_test, y_test, "z_test")
    if len(z_train) == 0 or len(z_test) == 0:
        raise ConfigError(
            f"kNN needs training and test points, got {len(z_train)} and {len(z_test)}"
        )
    if z_train.shape[1] != z_test.shape[1]:
        raise ConfigError(
            f"z_train has {z_train.shape[1]} dimensions but z_test has {z_test.shape[1]}"
        )
    k_used = int(min(k, len(z_train)))
    knn = KNeighborsClassifier(n_neighbors=k_used, metric="euclidean")
    pred = knn.fit(z_train, y_train).predict(z_test)
    classes = np.unique(y_test)
    names = _names(label_names, classes)
    recall = {names[i]: float((pred[y_test == c] == c).mean()) for i, c in enumerate(classes)}
    return {
        "k": k_used,
        "n_test": int(len(z_test)),
        "accuracy": float((pred == y_test).mean()),
        "ua": float(np.mean(list(recall.values()))),
        "recall": recall,
    }


def _names(label_names: Any, classes: np.ndarray) -> list[str]:
    if label_names is None:
        return [str(int(c)) for c in classes]
    label_names = [str(n) for n in label_names]
    if len(classes) and classes[-1] >= len(label_names):
        raise ConfigError(f"label {classes[-1]} has no name ({len(label_names)} names given)")
    return [label_names[int(c)] for c in classes]
