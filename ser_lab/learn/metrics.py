"""UA and WA, the paper's two accuracies, from real predictions.

UA (unweighted accuracy) = mean of the per-class recalls; WA (weighted accuracy) = correct / total.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def scores_from_confusion(cm: np.ndarray, labels: list[str] | tuple[str, ...]) -> dict:
    """UA, WA, per-class recall and the confusion matrix itself (classes never seen are skipped in UA)."""
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.zeros(len(cm)), where=support > 0)
    seen = support > 0
    return {
        "UA": float(recall[seen].mean()) if seen.any() else 0.0,
        "WA": float(np.trace(cm) / max(cm.sum(), 1)),
        "recall": {name: float(r) for name, r, s in zip(labels, recall, seen) if s},
        "confusion": cm.tolist(),
        "n": int(cm.sum()),
    }


def scores(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[str] | tuple[str, ...]
) -> dict:
    return scores_from_confusion(confusion_matrix(y_true, y_pred, len(labels)), labels)
