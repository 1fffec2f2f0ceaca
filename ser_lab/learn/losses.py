"""The two losses of the paper and the center update (../shared/docs/method.md, "Losses").

With m the mini-batch size and w_j the weight of class j (inverse class frequency of the
training part, to counter class imbalance):

    L_s = -(1 / sum_i w_{y_i}) * sum_i w_{y_i} * log softmax(W z_i + b)_{y_i}     (softmax loss)
    L_c =  (1 / sum_i w_{y_i}) * sum_i w_{y_i} * ||z_i - c_{y_i}||^2               (center loss)
    L   =  L_s + lambda * L_c

Centers are global per class and NOT learned by the optimiser. After each mini-batch, for every
class j present in the batch, with cbar_j the mean of that batch's z of class j:

    c_j <- (1 - alpha) * c_j + alpha * cbar_j          (classes absent from the batch keep c_j)

This is the paper's moving-average rule, not the learned centers of Wen et al.'s reference
code. Center initialisation (the paper is silent): zeros, and the first batch that contains a
class sets its center to that batch's class mean outright (an uninitialised center would
otherwise pull every feature toward the origin for the first ~1/alpha updates). A center that
is set is marked in `initialised`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def class_weights(labels: torch.Tensor | list[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights w_j = N / (C * N_j), so a balanced set gets all ones."""
    labels = torch.as_tensor(labels)
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = labels.numel() / (n_classes * counts.clamp(min=1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """L_s: class-weighted softmax cross-entropy normalised by sum_i w_{y_i}."""
    w = weights[labels]  # (B,)
    nll = -F.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)  # (B,)
    return (w * nll).sum() / w.sum()


class CenterLoss(nn.Module):
    """L_c and the paper's moving-average center update.

    Args:
        n_classes: number of classes C.
        feature_dim: dimension of z (64 in the paper).
        alpha: center update rate in [0, 1] (the paper's alpha; 0.5 in its best setting).

    `centers` (C, D) is a buffer: saved with the model, never seen by the optimiser, and the
    loss sends no gradient to it (it is used detached).
    """

    def __init__(self, n_classes: int, feature_dim: int = 64, alpha: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.register_buffer("centers", torch.zeros(n_classes, feature_dim))
        self.register_buffer("initialised", torch.zeros(n_classes, dtype=torch.bool))

    def forward(
        self, z: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """L_c = (1 / sum_i w_{y_i}) sum_i w_{y_i} ||z_i - c_{y_i}||^2, gradient to z only."""
        w = weights[labels]
        sq = (z.float() - self.centers[labels].detach()).pow(2).sum(dim=1)  # (B,)
        return (w * sq).sum() / w.sum()

    @torch.no_grad()
    def update_centers(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        """c_j <- (1 - alpha) c_j + alpha * mean(z_i : y_i = j), for classes j in the batch."""
        z = z.detach().float()
        n_classes = self.centers.shape[0]
        counts = torch.bincount(labels, minlength=n_classes)  # (C,)
        sums = torch.zeros_like(self.centers).index_add_(0, labels, z)  # (C, D)
        present = counts > 0
        batch_means = sums[present] / counts[present, None]
        first = present & ~self.initialised
        alpha = torch.where(first[present], 1.0, self.alpha)[:, None]
        self.centers[present] = (1 - alpha) * self.centers[present] + alpha * batch_means
        self.initialised |= present
