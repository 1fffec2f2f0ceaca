"""Training objectives: the paper's softmax + center loss, and other discriminative losses beside it.

An objective turns one mini-batch's features z (B, D), logits (B, C), labels y (B,) and class
weights w (C,) into its loss parts, and may update its own state after the optimiser step:

    parts = objective.loss(z, logits, y, w)   # {"softmax_loss", <extra term>, "total_loss"}
    ... backward of parts["total_loss"], optimiser step ...
    objective.after_step(z, y, w)             # e.g. the paper's alpha rule for the centers

`trainer.train_step` is that sequence, the single training step used by the trainer, the 2-D
toy of the Learn page and the speed benches. Every objective also keeps class centers (C, D):
the ones its loss uses, or, for arms whose loss has none, the paper's alpha moving average of
each class's z, tracked without entering the loss (as the lambda = 0 baseline does). The run
folder, the maps and the predictor's "distance to center" read them.

The arms (`OBJECTIVES`), with w_i = w_{y_i} and W = sum_i w_i:

- "center": the paper (Dai et al., ICASSP 2019), L = L_s + lambda L_c with the alpha rule for
  the centers (ser_lab/learn/losses.py). lambda = 0 is the softmax-only baseline. The reference.
- "center_learned": the same L with the centers learned by their own SGD optimiser (Wen et
  al., ECCV 2016), as in KaiyangZhou/pytorch-center-loss.
- "amsoftmax": additive-margin softmax on normalised z and class weights (Wang et al. 2018;
  CosFace, Wang et al. 2018). The model's last layer is a cosine classifier (model.py).
- "triplet": L = L_s + lambda L_tri, batch-hard triplet loss (Hermans et al. 2017).
- "supcon": L = L_s + lambda L_sup, supervised contrastive loss (Khosla et al. 2020).

Every extra term is weighted like L_s: a class-weighted mean over the anchors it is defined for,
so that a class's weight means the same thing in every arm. Their hyper-parameters are fields of
`ObjectiveConfig` (and of the run's TrainConfig, where they can be swept).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ser_lab.config import (
    AM_MARGIN,
    AM_SCALE,
    CENTER_LR,
    SUPCON_TEMPERATURE,
    TRIPLET_MARGIN,
    ObjectiveConfig,
)
from ser_lab.learn.losses import CenterLoss, weighted_cross_entropy

# The main hyper-parameter of each arm: what a sensitivity curve puts on its x axis.
MAIN_PARAMETER = {
    "center": "lam",
    "center_learned": "lam",
    "amsoftmax": "am_margin",
    "triplet": "triplet_margin",
    "supcon": "supcon_temperature",
}

# What the app shows: a label per arm, and each arm's own settings (field, label, default,
# step) beyond lambda and alpha, which every form already has.
LABELS = {
    "center": "softmax + center loss, α rule (the paper)",
    "center_learned": "softmax + center loss, learned centers (Wen et al. 2016)",
    "amsoftmax": "additive-margin softmax (AM-Softmax / CosFace)",
    "triplet": "softmax + batch-hard triplet (Hermans et al. 2017)",
    "supcon": "softmax + supervised contrastive (Khosla et al. 2020)",
}
SETTINGS: dict[str, tuple[tuple[str, str, float, float], ...]] = {
    "center": (),
    "center_learned": (("center_lr", "center learning rate", CENTER_LR, 0.05),),
    "amsoftmax": (("am_scale", "scale s", AM_SCALE, 1.0), ("am_margin", "margin m", AM_MARGIN, 0.05)),
    "triplet": (("triplet_margin", "triplet margin", TRIPLET_MARGIN, 0.05),),
    "supcon": (("supcon_temperature", "temperature τ", SUPCON_TEMPERATURE, 0.01),),
}


# ----------------------------------------------------------------------------- loss functions


def _weighted_mean(values: torch.Tensor, w: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """sum_i w_i v_i / sum_i w_i over the valid anchors; 0 (with a graph) when none is valid."""
    w = w * valid.to(w.dtype)
    total = w.sum()
    if float(total) == 0.0:
        return values.sum() * 0.0
    return (w * values).sum() / total


def center_term(z: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L_c = (1/W) sum_i w_i ||z_i - c_{y_i}||^2, the same formula as losses.CenterLoss, with the
    gradient going wherever `z` and `centers` allow (the caller detaches one or the other)."""
    w = weights[labels]
    sq = (z.float() - centers[labels].float()).pow(2).sum(dim=1)  # (B,)
    return (w * sq).sum() / w.sum()


def am_softmax_loss(
    cos_logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, scale: float, margin: float
) -> torch.Tensor:
    """Additive-margin softmax (AM-Softmax, Wang, Cheng, Liu, Liu 2018; CosFace, Wang et al. 2018):

        L_AM = -(1/W) sum_i w_i log  e^{s (cos t_{y_i} - m)} / (e^{s (cos t_{y_i} - m)} + sum_{j != y_i} e^{s cos t_j})

    with cos t_j = <W_j / |W_j|, z_i / |z_i|>. `cos_logits` is s cos t (B, C), what the model's
    cosine classifier (model.CosineLinear) outputs; the margin is subtracted from the true class
    only, in training only (prediction takes the argmax of s cos t).
    """
    onehot = F.one_hot(labels, cos_logits.shape[1]).float()  # (B, C)
    return weighted_cross_entropy(cos_logits.float() - scale * margin * onehot, labels, weights)


def batch_hard_triplet_loss(
    z: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, margin: float
) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for
    Person Re-Identification", 2017), on Euclidean (not squared) distances D of z, as they use:

        L_tri = (1/W) sum_a w_a [ m + max_{p: y_p = y_a, p != a} D(a, p) - min_{n: y_n != y_a} D(a, n) ]_+

    over the anchors a that have at least one positive and one negative in the batch.
    """
    z = z.float()
    d = (z[:, None, :] - z[None, :, :]).pow(2).sum(-1).clamp(min=1e-12).sqrt()  # (B, B)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    pos, neg = same & ~eye, ~same
    hardest_pos = torch.where(pos, d, torch.zeros_like(d)).amax(dim=1)  # (B,)
    hardest_neg = torch.where(neg, d, torch.full_like(d, float("inf"))).amin(dim=1)  # (B,)
    valid = pos.any(1) & neg.any(1)
    hinge = torch.where(valid, margin + hardest_pos - hardest_neg, torch.zeros_like(hardest_pos)).clamp(min=0)
    return _weighted_mean(hinge, weights[labels], valid)


def supervised_contrastive_loss(
    z: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning", NeurIPS
    2020, eq. 2, L^sup_out), on p_i = z_i / |z_i| (the paper's projection head is z itself here):

        l_i = -1/|P(i)| sum_{p in P(i)} log  exp(p_i . p_p / tau) / sum_{a != i} exp(p_i . p_a / tau)
        L_sup = (1/W) sum_i w_i l_i

    P(i) = the other samples of i's class in the batch; anchors with none are left out.
    """
    p = F.normalize(z.float(), dim=1)
    sim = p @ p.T / temperature  # (B, B)
    eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    log_prob = sim - torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    n_pos = pos.sum(1)
    mean_log_prob = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1) / n_pos.clamp(min=1)
    return _weighted_mean(-mean_log_prob, weights[labels], n_pos > 0)


# ----------------------------------------------------------------------------- objectives


class Objective:
    """The interface. Subclasses set `name`, `extra_key` and implement `loss`.

    `centers` (C, D) lives in `self.tracker`, a losses.CenterLoss used for its alpha rule (and,
    in the paper's arm, for L_c itself). `state_dict` holds everything a resumed fold needs.
    """

    name: ClassVar[str]
    extra_key: ClassVar[str | None] = None  # the metrics key of the extra term, if any

    def __init__(self, cfg: ObjectiveConfig, n_classes: int, feature_dim: int, device: torch.device) -> None:
        self.cfg = cfg
        self.tracker = CenterLoss(n_classes, feature_dim, cfg.alpha).to(device)

    @property
    def loss_keys(self) -> tuple[str, ...]:
        return ("softmax_loss", self.extra_key, "total_loss") if self.extra_key else ("softmax_loss", "total_loss")

    @property
    def centers(self) -> torch.Tensor:
        return self.tracker.centers

    def loss(self, z: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def after_step(self, z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> None:
        """Per-batch update after the optimiser step: the alpha rule for the (tracked) centers."""
        self.tracker.update_centers(z, y)

    def state_dict(self) -> dict:
        return {"centers": self.tracker.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["centers"])


class CenterAlpha(Objective):
    """The paper: L = L_s + lambda L_c, centers by c_j <- (1 - alpha) c_j + alpha cbar_j after
    each mini-batch (Dai et al., ICASSP 2019; ../shared/docs/method.md). The reference arm."""

    name = "center"
    extra_key = "center_loss"

    def loss(self, z, logits, y, weights):
        l_s = weighted_cross_entropy(logits, y, weights)
        l_c = self.tracker(z, y, weights)
        return {"softmax_loss": l_s, "center_loss": l_c, "total_loss": l_s + self.cfg.lam * l_c}


class CenterLearned(Objective):
    """Center loss with learned centers (Wen, Zhang, Li, Qiao, "A Discriminative Feature
    Learning Approach for Deep Face Recognition", ECCV 2016), in the form of the widely used
    reference implementation (KaiyangZhou/pytorch-center-loss): the centers are parameters with
    their own SGD optimiser and learning rate `center_lr`, and their gradient is that of L_c
    alone (that code divides the centers' gradient by the loss weight), so lambda weighs the
    pull on z only:

        L = L_s + lambda L_c,   L_c = (1/W) sum_i w_i ||z_i - c_{y_i}||^2 (the paper's weighted form)
        c <- c - center_lr * dL_c/dc                                   after each mini-batch

    Centers start at zero (the reference draws them from N(0, 1); z of this network starts
    near 0, so random unit-variance centers would make L_c about D at the first step).
    """

    name = "center_learned"
    extra_key = "center_loss"

    def __init__(self, cfg, n_classes, feature_dim, device):
        super().__init__(cfg, n_classes, feature_dim, device)
        self.learned = nn.Parameter(torch.zeros(n_classes, feature_dim, device=device))
        self.optimiser = torch.optim.SGD([self.learned], lr=cfg.center_lr)

    @property
    def centers(self) -> torch.Tensor:
        return self.learned.detach()

    def loss(self, z, logits, y, weights):
        l_s = weighted_cross_entropy(logits, y, weights)
        l_c = center_term(z, self.learned.detach(), y, weights)  # gradient to z only
        return {"softmax_loss": l_s, "center_loss": l_c, "total_loss": l_s + self.cfg.lam * l_c}

    def after_step(self, z, y, weights):
        self.optimiser.zero_grad(set_to_none=True)
        center_term(z.detach(), self.learned, y, weights).backward()  # gradient to the centers only
        self.optimiser.step()

    def state_dict(self) -> dict:
        return {"centers": {"centers": self.learned.detach().clone()}, "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.learned.copy_(state["centers"]["centers"])
        self.optimiser.load_state_dict(state["optimiser"])


class AmSoftmax(Objective):
    """Additive-margin softmax on normalised z (see `am_softmax_loss`): L = L_AM, no extra term.
    The model must have a cosine classifier of scale s (`model_options`)."""

    name = "amsoftmax"

    def loss(self, z, logits, y, weights):
        l_am = am_softmax_loss(logits, y, weights, self.cfg.am_scale, self.cfg.am_margin)
        return {"softmax_loss": l_am, "total_loss": l_am}


class TripletPlusSoftmax(Objective):
    """L = L_s + lambda L_tri, batch-hard triplet loss (Hermans et al. 2017; see
    `batch_hard_triplet_loss`) on z, jointly with the softmax as the issue's ablation asks."""

    name = "triplet"
    extra_key = "triplet_loss"

    def loss(self, z, logits, y, weights):
        l_s = weighted_cross_entropy(logits, y, weights)
        l_t = batch_hard_triplet_loss(z, y, weights, self.cfg.triplet_margin)
        return {"softmax_loss": l_s, "triplet_loss": l_t, "total_loss": l_s + self.cfg.lam * l_t}


class SupConPlusSoftmax(Objective):
    """L = L_s + lambda L_sup, supervised contrastive loss (Khosla et al. 2020; see
    `supervised_contrastive_loss`) on z, trained jointly with the softmax rather than in the
    paper's two stages, so that every arm shares one network and one recipe."""

    name = "supcon"
    extra_key = "supcon_loss"

    def loss(self, z, logits, y, weights):
        l_s = weighted_cross_entropy(logits, y, weights)
        l_sup = supervised_contrastive_loss(z, y, weights, self.cfg.supcon_temperature)
        return {"softmax_loss": l_s, "supcon_loss": l_sup, "total_loss": l_s + self.cfg.lam * l_sup}


_CLASSES: dict[str, type[Objective]] = {
    c.name: c for c in (CenterAlpha, CenterLearned, AmSoftmax, TripletPlusSoftmax, SupConPlusSoftmax)
}


def make_objective(cfg: ObjectiveConfig, n_classes: int, feature_dim: int, device: torch.device | str = "cpu") -> Objective:
    """The objective named by cfg.name, on `device`."""
    cfg.validate()
    return _CLASSES[cfg.name](cfg, n_classes, feature_dim, torch.device(device))


def model_options(cfg: ObjectiveConfig) -> dict:
    """ModelConfig fields an objective needs: AM-Softmax classifies by scaled cosine."""
    return {"head": "cosine", "cosine_scale": cfg.am_scale} if cfg.name == "amsoftmax" else {}
