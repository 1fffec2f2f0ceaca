"""The settings of a run, as plain dataclasses that import neither torch nor scikit-learn.

`TrainConfig` is everything `ser_lab.learn.trainer` needs to train a run (recorded in the run's
config.json as its `train` dict, read back with `TrainConfig.from_dict`); `ObjectiveConfig` is
the part the training objective reads (`ser_lab.learn.objectives.make_objective`). Both are
checked by `validate()` before any run folder is made. Kept apart from the trainer so that the
command line, the launcher, the sweeps and the app build and check settings without importing
torch; the objectives' names and defaults are defined here, once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ser_lab.choices import DEVICES, KINDS, LR_SCHEDULES, NORMALISATIONS, PROTOCOLS
from ser_lab.errors import ConfigError

OBJECTIVES = ("center", "center_learned", "amsoftmax", "triplet", "supcon")

# One definition of each default (TrainConfig and ToyConfig take theirs from here).
CENTER_LR = 0.5  # SGD learning rate of learned centers (pytorch-center-loss's lr_cent)
AM_SCALE = 30.0  # s of AM-Softmax (Wang et al. 2018 use s = 30)
AM_MARGIN = 0.35  # m of AM-Softmax (0.35 in Wang et al. 2018)
TRIPLET_MARGIN = 0.3  # m of the batch-hard triplet loss, on Euclidean distances of z
SUPCON_TEMPERATURE = 0.1  # tau of the supervised contrastive loss (Khosla et al. 2020)


@dataclass(frozen=True)
class ObjectiveConfig:
    """Which objective, and its hyper-parameters (each arm reads only its own)."""

    name: str = "center"
    lam: float = 0.0  # weight of the extra term (center, triplet or contrastive); unused by amsoftmax
    alpha: float = 0.5  # alpha rule rate: the paper's centers, and the tracked centers of other arms
    center_lr: float = CENTER_LR
    am_scale: float = AM_SCALE
    am_margin: float = AM_MARGIN
    triplet_margin: float = TRIPLET_MARGIN
    supcon_temperature: float = SUPCON_TEMPERATURE

    def validate(self) -> ObjectiveConfig:
        if self.name not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {OBJECTIVES}, got {self.name!r}")
        checks = (
            ("center_lr", lambda v: v > 0, "a finite number > 0"),
            ("am_scale", lambda v: v > 0, "a finite number > 0"),
            ("am_margin", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("triplet_margin", lambda v: v >= 0, "a finite number >= 0"),
            ("supcon_temperature", lambda v: v > 0, "a finite number > 0"),
        )
        for name, ok, expected in checks:
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not np.isfinite(value) or not ok(value):
                raise ConfigError(f"{name} must be {expected}, got {value!r}")
        return self


@dataclass
class TrainConfig:
    corpus: str = "synthetic"
    root: str | None = None  # corpus folder (None: the built-in synthetic corpus)
    corpus_options: dict = field(default_factory=dict)  # e.g. {"size": "small"} or {"improvised_only": True}
    classes: str = "paper"  # "paper" = neutral/angry/happy/sad, "all" = the corpus's own classes
    features: str = "mel"  # "mel" (128 bands) or "stft" (513 bins)
    lam: float = 0.0  # lambda, weight of the center loss; 0 = softmax-only baseline
    alpha: float = 0.5  # center update rate
    # The training objective (objectives.py): "center" (the paper), "center_learned",
    # "amsoftmax", "triplet" or "supcon"; lam weighs the extra term of every arm but amsoftmax.
    objective: str = "center"
    center_lr: float = CENTER_LR  # center_learned: SGD learning rate of the centers
    am_scale: float = AM_SCALE  # amsoftmax: scale s
    am_margin: float = AM_MARGIN  # amsoftmax: additive cosine margin m
    triplet_margin: float = TRIPLET_MARGIN  # triplet: margin m on Euclidean distances of z
    supcon_temperature: float = SUPCON_TEMPERATURE  # supcon: temperature tau
    epochs: int = 100  # the most epochs a fold trains (early stopping usually ends it sooner)
    patience: int = 20  # stop a fold after this many epochs without a better validation UA (0 = never)
    # After choosing the epoch count on validation, train the fold again from the same start on
    # train + validation for that many epochs, and keep that model (trainer.refit_fold).
    refit: bool = False
    n_folds: int = 5
    folds: list[int] | None = None  # train only these folds (e.g. [0] for a quick run)
    protocol: str = "speaker"  # "paper" (stratified), "speaker" (speaker-independent), "session"
    val_fraction: float = 0.15
    seed: int = 0
    device: str = "auto"
    batch_size: int = 32
    lr: float = 3e-4
    # "constant" (the paper's) or "plateau": the rate halved after `lr_patience` epochs without
    # a better validation UA (trainer.epoch_lr). "constant" by measurement on the validation
    # parts (README, Choices the paper leaves open).
    lr_schedule: str = "constant"
    lr_patience: int = 5
    augment: bool = True  # SpecAugment-style time and frequency masks on training batches
    # Per-bin standardisation of the spectrograms: "speaker" (statistics of each speaker's own
    # utterances; ser_lab.data.features.normalise) or "corpus" (of the fold's training part).
    # "speaker" by measurement on the validation parts (README, Choices the paper leaves open).
    normalise: str = "speaker"
    # Conv weights stored channels-last when training on a CPU: a step is 1.4-1.9x faster
    # (docs/performance.md); results differ from the default layout only by float rounding.
    channels_last: bool = True
    snapshot_every: int = 0  # save z of a fixed subset every N epochs (0 = never)
    snapshot_size: int = 300
    workers: int | None = None  # feature extraction processes (None: all cores)
    # Folds trained at once, each in its own process with the run's threads divided between
    # them (ser_lab.learn.parallel): an int, "auto" (one per thread on a CPU) or None (the default:
    # one after another until bench/parallel_folds.py shows parallel pays).
    parallel_folds: int | str | None = None
    precompute_maps: bool = True  # compute and cache each fold's PCA and UMAP maps when it ends
    sweep_id: str | None = None
    demo: bool = False

    def validate(self) -> TrainConfig:
        """Check the type and range of every field (ConfigError naming the field).

        Runs before any run folder is created, so a NaN or infinite number, a bool or a string
        where a number is meant, or a seed outside numpy's 0 <= seed < 2**32 never leaves a
        failed folder behind.
        """
        _text(self.corpus, "corpus")
        if self.root is not None:
            _text(self.root, "root")
        if not isinstance(self.corpus_options, dict):
            raise ConfigError(f"corpus options must be a dict, got {self.corpus_options!r}")
        if self.classes not in ("paper", "all"):
            raise ConfigError(f"classes must be 'paper' or 'all', got {self.classes!r}")
        if self.features not in KINDS:
            raise ConfigError(f"features must be 'mel' or 'stft', got {self.features!r}")
        if _number(self.lam, "lambda") < 0:
            raise ConfigError(f"lambda must be a finite number >= 0, got {self.lam}")
        if not 0 <= _number(self.alpha, "alpha") <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        self.objective_config().validate()
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.normalise not in NORMALISATIONS:
            raise ConfigError(f"normalise must be one of {NORMALISATIONS}, got {self.normalise!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, got {self.device!r}")
        if _integer(self.epochs, "epochs") < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 0:
            raise ConfigError(f"patience must be an int >= 0 (0 = no early stopping), got {self.patience!r}")
        if _integer(self.n_folds, "folds") < 2 and self.protocol != "session":
            raise ConfigError(f"folds must be >= 2, got {self.n_folds}")
        if not 0 <= _number(self.val_fraction, "val_fraction") < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= _integer(self.seed, "seed") < 2**32:
            raise ConfigError(f"seed must be an integer with 0 <= seed < 2**32, got {self.seed}")
        if _integer(self.batch_size, "batch size") < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if not _number(self.lr, "learning rate") > 0:
            raise ConfigError(f"learning rate must be a finite number > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if _integer(self.lr_patience, "lr_patience") < 1:
            raise ConfigError(f"lr_patience must be >= 1, got {self.lr_patience}")
        for name in ("augment", "refit", "channels_last", "demo", "precompute_maps"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if _integer(self.snapshot_every, "snapshot_every") < 0:
            raise ConfigError(f"snapshot_every must be >= 0, got {self.snapshot_every}")
        if _integer(self.snapshot_size, "snapshot_size") < 1:
            raise ConfigError(f"snapshot_size must be >= 1, got {self.snapshot_size}")
        if self.workers is not None and _integer(self.workers, "workers") < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.parallel_folds is not None and self.parallel_folds != "auto":
            if _integer(self.parallel_folds, "parallel_folds") < 1:
                raise ConfigError(f"parallel_folds must be >= 1 or 'auto', got {self.parallel_folds}")
        if self.sweep_id is not None:
            _text(self.sweep_id, "sweep_id")
        if self.folds is not None:
            if not isinstance(self.folds, (list, tuple)):
                raise ConfigError(f"fold indices must be a list of integers, got {self.folds!r}")
            for k in self.folds:
                _integer(k, "fold index")
            if any(not 0 <= k < max(self.n_folds, 1) for k in self.folds):
                if self.protocol != "session":
                    raise ConfigError(f"fold indices {self.folds} out of range 0..{self.n_folds - 1}")
        return self

    def objective_config(self) -> ObjectiveConfig:
        return ObjectiveConfig(
            self.objective, self.lam, self.alpha, self.center_lr, self.am_scale, self.am_margin,
            self.triplet_margin, self.supcon_temperature,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        # Runs created before early stopping trained every epoch, and before the choice of
        # normalisation with the training part's statistics, and before channels-last weights
        # in the default layout: resuming one keeps that (and so repeats its arithmetic).
        values.setdefault("patience", 0)
        values.setdefault("normalise", "corpus")
        values.setdefault("channels_last", False)
        return cls(**values)


def _number(value, what: str) -> float:
    """A finite real number (int or float, not bool), else ConfigError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value}")
    return float(value)


def _integer(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _text(value, what: str) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ConfigError(f"{what} must be text without NUL bytes, got {value!r}")
    return value
