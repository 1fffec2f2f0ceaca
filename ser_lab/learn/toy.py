"""A 2-D toy of softmax vs center loss, small enough to train live on the Learn page.

Four Gaussian classes (named after the paper's emotions, so they get the app's colors) go
through a tiny MLP whose feature layer has 2 units, then a linear classifier: the same shape as
the paper's network (features z -> FC -> logits) with z in 2-D, so it can be drawn as is. The
losses are the project's own: `weighted_cross_entropy` for L_s, `CenterLoss` for L_c with the
paper's α update after every mini-batch, L = L_s + λ L_c. With λ = 0 the classes end up as
long spokes from the origin (softmax only needs them separable by angle); with λ > 0 each class
is pulled toward its center into a compact cluster.

The other objectives of the trainer (objectives.py) train here too, through the same
`trainer.train_step`: learned centers (Wen et al. 2016) next to the paper's α rule, and the
additive-margin softmax (the toy's classifier then is a cosine one, as in the real network).
`center_loss` of a frame is always L_c to the objective's centers: a compactness measure that
every arm can be read by, whether or not its loss contains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ser_lab.config import AM_MARGIN, AM_SCALE, CENTER_LR, SUPCON_TEMPERATURE, TRIPLET_MARGIN, ObjectiveConfig
from ser_lab.data.corpora.base import PAPER_EMOTIONS
from ser_lab.errors import ConfigError
from ser_lab.learn.losses import class_weights, weighted_cross_entropy
from ser_lab.learn.model import CosineLinear
from ser_lab.learn.objectives import Objective, center_term, make_objective, model_options
from ser_lab.learn.trainer import train_step


@dataclass
class ToyConfig:
    lam: float = 0.0  # weight of the center loss (0 = softmax only)
    alpha: float = 0.5  # center update rate
    objective: str = "center"  # see config.OBJECTIVES; lam weighs the extra term
    center_lr: float = CENTER_LR
    am_scale: float = AM_SCALE
    am_margin: float = AM_MARGIN
    triplet_margin: float = TRIPLET_MARGIN
    supcon_temperature: float = SUPCON_TEMPERATURE
    n_classes: int = 4
    n_per_class: int = 120
    input_dim: int = 8  # the classes overlap in this space; the network must find a 2-D view
    spread: float = 1.2  # std of each class around its mean
    steps: int = 300
    batch_size: int = 64
    lr: float = 0.01
    frames: int = 30  # feature snapshots kept for the animation
    seed: int = 0

    def validate(self) -> ToyConfig:
        if not np.isfinite(self.lam) or self.lam < 0:
            raise ConfigError(f"lambda must be a finite number >= 0, got {self.lam}")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        self.objective_config().validate()
        if not 2 <= self.n_classes <= len(PAPER_EMOTIONS) + 6:
            raise ConfigError(f"n_classes must be between 2 and 10, got {self.n_classes}")
        for name in ("n_per_class", "input_dim", "steps", "batch_size", "frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        return self

    def objective_config(self) -> ObjectiveConfig:
        return ObjectiveConfig(
            self.objective, self.lam, self.alpha, self.center_lr, self.am_scale, self.am_margin,
            self.triplet_margin, self.supcon_temperature,
        )


@dataclass
class ToyFrame:
    step: int
    z: np.ndarray  # (N, 2) features of every point
    centers: np.ndarray  # (C, 2) the objective's centers at that step
    softmax_loss: float
    center_loss: float
    accuracy: float


@dataclass
class ToyResult:
    config: ToyConfig
    labels: np.ndarray  # (N,) class ids
    label_names: list[str]
    frames: list[ToyFrame] = field(default_factory=list)

    @property
    def final(self) -> ToyFrame:
        return self.frames[-1]

    def intra_inter(self, frame: ToyFrame | None = None) -> tuple[float, float]:
        """Mean distance of a point to its class mean, and mean distance between class means."""
        frame = frame or self.final
        means = np.stack([frame.z[self.labels == j].mean(0) for j in range(len(self.label_names))])
        intra = float(np.linalg.norm(frame.z - means[self.labels], axis=1).mean())
        d = np.linalg.norm(means[:, None] - means[None], axis=2)
        k = len(means)
        return intra, float(d.sum() / (k * (k - 1)))


class ToyNet(nn.Module):
    """input -> 32 -> 32 -> z (2-D, PReLU like the paper's FC1) -> logits (linear or cosine)."""

    def __init__(self, input_dim: int, n_classes: int, head: str = "linear", cosine_scale: float = AM_SCALE) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(input_dim, 32),
            nn.ReLU(),
            nn.Linear(32, 32),
            nn.ReLU(),
            nn.Linear(32, 2),
            nn.PReLU(),
        )
        self.head = CosineLinear(2, n_classes, cosine_scale) if head == "cosine" else nn.Linear(2, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.body(x)  # (B, 2)
        return z, self.head(z)


def toy_data(cfg: ToyConfig) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, input_dim) float32, labels (N,)): Gaussian classes with means on a circle in the
    first two dimensions (so neighbouring classes overlap) and noise in the others."""
    rng = np.random.default_rng(cfg.seed)
    angles = 2 * np.pi * np.arange(cfg.n_classes) / cfg.n_classes
    means = np.zeros((cfg.n_classes, cfg.input_dim))
    means[:, 0], means[:, 1] = 2.0 * np.cos(angles), 2.0 * np.sin(angles)
    labels = np.repeat(np.arange(cfg.n_classes), cfg.n_per_class)
    x = means[labels] + cfg.spread * rng.standard_normal((len(labels), cfg.input_dim))
    return x.astype(np.float32), labels


def class_names(n_classes: int) -> list[str]:
    extra = [f"class {i}" for i in range(len(PAPER_EMOTIONS), n_classes)]
    return list(PAPER_EMOTIONS[:n_classes]) + extra


def train_toy(cfg: ToyConfig) -> ToyResult:
    """Train the toy network with L = L_s + λ L_c; keep `frames` snapshots of every z.

    Runs on one torch thread: for a network this small, thread start-up costs more than it
    saves (and the app process may be busy with other work); the caller's setting is restored.
    """
    cfg.validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: ToyConfig) -> ToyResult:
    torch.manual_seed(cfg.seed)
    x_np, y_np = toy_data(cfg)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    net = ToyNet(cfg.input_dim, cfg.n_classes, **model_options(cfg.objective_config()))
    objective = make_objective(cfg.objective_config(), cfg.n_classes, feature_dim=2)
    weights = class_weights(y, cfg.n_classes)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed + 1)
    keep = set(
        np.linspace(0, cfg.steps, min(cfg.frames, cfg.steps + 1)).round().astype(int).tolist()
    )
    result = ToyResult(cfg, y_np, class_names(cfg.n_classes))
    cpu = torch.device("cpu")
    for step in range(cfg.steps + 1):
        if step in keep:
            result.frames.append(_frame(net, objective, x, y, weights, step))
        if step == cfg.steps:
            break
        idx = torch.from_numpy(rng.choice(len(y_np), cfg.batch_size, replace=False))
        train_step(net, objective, optimiser, x[idx], None, y[idx], weights, cpu)
    return result


@torch.no_grad()
def _frame(net: ToyNet, objective: Objective, x, y, weights, step: int) -> ToyFrame:
    z, logits = net(x)
    return ToyFrame(
        step=step,
        z=z.numpy().copy(),
        centers=objective.centers.numpy().copy(),
        softmax_loss=float(weighted_cross_entropy(logits, y, weights)),
        center_loss=float(center_term(z, objective.centers, y, weights)),
        accuracy=float((logits.argmax(1) == y).float().mean()),
    )
