"""Evaluation protocols: which utterances train, select (validate) and test each fold.

- "paper": the paper's protocol. Stratified k-fold over utterances keeping the emotion
  distribution in every fold; validation is a stratified slice of the fold's training part.
  Speakers are shared between parts (as in the paper), so scores are speaker-dependent.
- "speaker": speaker-independent k-fold. Whole speakers go to one test fold, assigned so the
  class balance of the folds stays as even as possible (sklearn StratifiedGroupKFold);
  validation is a set of whole training speakers, chosen to contain every class if possible.
- "session": leave-one-group-out (IEMOCAP sessions); n_folds is ignored (one fold per group);
  validation is a set of whole training speakers.

The validation part only ever comes from the training part, never from the test fold, so
epoch selection cannot peek at the test data (see method.md, "What the paper leaves open").
Everything is deterministic for a given seed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ser_lab.choices import PROTOCOLS
from ser_lab.data.corpora.base import Manifest
from ser_lab.errors import ConfigError

PARTS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class Fold:
    """One fold: sorted int64 index arrays into `manifest.utterances`."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def part(self, name: str) -> np.ndarray:
        if name not in PARTS:
            raise ConfigError(f"fold part must be one of {', '.join(PARTS)}; got {name!r}")
        return getattr(self, name)


def make_folds(
    manifest: Manifest,
    protocol: str = "paper",
    n_folds: int = 5,
    seed: int = 0,
    val_fraction: float = 0.15,
) -> list[Fold]:
    """Split `manifest` into folds for cross-validation under `protocol`."""
    _check_args(manifest, protocol, n_folds, val_fraction)
    y = manifest.label_ids()
    if protocol == "paper":
        _check_class_sizes(manifest, y, n_folds)
        folds = _paper_folds(y, n_folds, seed, val_fraction)
    elif protocol == "speaker":
        speakers = manifest.speakers()
        _check_enough(speakers, n_folds, "speakers", "speaker")
        _check_class_sizes(manifest, y, n_folds)
        folds = _speaker_folds(y, speakers, n_folds, seed, val_fraction)
    else:
        groups = manifest.groups()
        _check_enough(groups, 2, "groups (sessions)", "session")
        folds = _session_folds(y, groups, manifest.speakers(), seed, val_fraction)
    _check_training_classes(manifest, y, folds)
    return folds


# ---------------------------------------------------------------- protocols


def _paper_folds(y: np.ndarray, n_folds: int, seed: int, val_fraction: float) -> list[Fold]:
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    for k, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        rng = np.random.default_rng([seed, k])
        val = _stratified_slice(train, y, val_fraction, rng)
        folds.append(_fold(k, np.setdiff1d(train, val), val, test))
    return folds


def _speaker_folds(
    y: np.ndarray, speakers: np.ndarray, n_folds: int, seed: int, val_fraction: float
) -> list[Fold]:
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    for k, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y, speakers)):
        if len(test) == 0:
            raise ConfigError(f"could not give each of {n_folds} folds a speaker; use fewer folds")
        rng = np.random.default_rng([seed, k])
        val = _group_slice(train, y, speakers, val_fraction, rng)
        folds.append(_fold(k, np.setdiff1d(train, val), val, test))
    return folds


def _session_folds(
    y: np.ndarray, groups: np.ndarray, speakers: np.ndarray, seed: int, val_fraction: float
) -> list[Fold]:
    folds = []
    everything = np.arange(len(y))
    for k, group in enumerate(sorted(set(groups.tolist()))):
        test = everything[groups == group]
        train = everything[groups != group]
        rng = np.random.default_rng([seed, k])
        val = _group_slice(train, y, speakers, val_fraction, rng)
        folds.append(_fold(k, np.setdiff1d(train, val), val, test))
    return folds


# ---------------------------------------------------------------- validation carving


def _stratified_slice(
    train: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """About `fraction` of each class of `train`, at least one and never the whole class."""
    chosen = []
    for c in np.unique(y[train]):
        members = rng.permutation(train[y[train] == c])
        n = min(max(1, round(fraction * len(members))), len(members) - 1)
        chosen.append(members[:n])
    return np.concatenate(chosen) if chosen else np.array([], dtype=np.int64)


def _group_slice(
    train: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Whole groups (speakers) of `train` holding about `fraction` of it, for validation.

    Greedy: while validation lacks a class that training has, add the speaker bringing the
    most missing classes; then add speakers while that brings the size closer to the target.
    A speaker whose removal would leave training without a class is taken only if nothing
    else is left; at least one speaker always stays in training.
    """
    names = sorted(set(groups[train].tolist()))
    if len(names) < 2:
        raise ConfigError(
            "a validation split needs at least 2 speakers in the training part; "
            f"got {len(names)} ({', '.join(names)})"
        )
    order = [names[i] for i in rng.permutation(len(names))]
    counts_of = {g: Counter(y[train][groups[train] == g].tolist()) for g in order}
    train_counts = Counter(y[train].tolist())
    target = fraction * len(train)
    chosen: list[str] = []
    taken: Counter[int] = Counter()
    while len(chosen) < len(order) - 1:
        missing = set(train_counts) - set(taken)
        size = sum(taken.values())
        candidates = [g for g in order if g not in chosen]
        scores = [_val_score(counts_of[g], taken, train_counts, target) for g in candidates]
        best = candidates[scores.index(max(scores))]
        closer = abs(size + sum(counts_of[best].values()) - target) < abs(size - target)
        if chosen and not (missing & set(counts_of[best])) and not closer:
            break
        chosen.append(best)
        taken += counts_of[best]
    return train[np.isin(groups[train], chosen)]


# ---------------------------------------------------------------- checks


def _val_score(
    counts: Counter[int], taken: Counter[int], train_counts: Counter[int], target: float
) -> tuple[bool, int, float]:
    """Rank a candidate validation speaker: keep every class in training first, then cover
    classes validation still lacks, then land closest to the target size."""
    keeps_all = set(train_counts - taken - counts) == set(train_counts)
    gain = len(set(counts) - set(taken))
    size = sum(taken.values()) + sum(counts.values())
    return keeps_all, gain, -abs(size - target)


def _check_args(manifest: Manifest, protocol: str, n_folds: int, val_fraction: float) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    if protocol != "session" and (not isinstance(n_folds, int) or n_folds < 2):
        raise ConfigError(f"n_folds must be an integer >= 2; got {n_folds!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive); got {val_fraction}")
    if len(manifest) == 0:
        raise ConfigError("cannot split an empty manifest")


def _check_enough(values: np.ndarray, needed: int, what: str, protocol: str) -> None:
    unique = sorted(set(values.tolist()))
    if len(unique) < needed:
        shown = ", ".join(unique[:10]) + (" ..." if len(unique) > 10 else "")
        raise ConfigError(
            f"the {protocol!r} protocol needs at least {needed} {what}; "
            f"the corpus has {len(unique)} ({shown})"
        )


def _check_class_sizes(manifest: Manifest, y: np.ndarray, n_folds: int) -> None:
    counts = np.bincount(y, minlength=len(manifest.labels))
    pairs = zip(manifest.labels, counts, strict=True)
    small = [f"{name} ({n})" for name, n in pairs if n < n_folds]
    if small:
        raise ConfigError(
            f"every class needs at least n_folds={n_folds} utterances; too few: {', '.join(small)}"
        )


def _check_training_classes(manifest: Manifest, y: np.ndarray, folds: list[Fold]) -> None:
    """A fold whose training part lacks a class cannot learn it: refuse it clearly."""
    for fold in folds:
        absent = set(range(len(manifest.labels))) - set(y[fold.train].tolist())
        if absent:
            names = ", ".join(manifest.labels[c] for c in sorted(absent))
            raise ConfigError(
                f"fold {fold.index} would train without any {names} utterance "
                "(the class lives in too few speakers or groups for this protocol)"
            )


def _fold(k: int, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> Fold:
    def clean(a: np.ndarray) -> np.ndarray:
        return np.sort(np.asarray(a, dtype=np.int64))

    return Fold(index=k, train=clean(train), val=clean(val), test=clean(test))


# ---------------------------------------------------------------- summary


def fold_summary(manifest: Manifest, folds: list[Fold]) -> list[dict]:
    """One row per fold and part: size, counts per class, speakers and groups (CLI / app)."""
    labels = np.array(manifest.labels)
    y = manifest.label_ids()
    speakers = manifest.speakers()
    groups = manifest.groups()
    rows = []
    for fold in folds:
        for part in PARTS:
            idx = fold.part(part)
            counts = np.bincount(y[idx], minlength=len(labels))
            rows.append(
                {
                    "fold": fold.index,
                    "part": part,
                    "utterances": int(len(idx)),
                    "counts": {str(name): int(n) for name, n in zip(labels, counts, strict=True)},
                    "n_speakers": len(set(speakers[idx].tolist())),
                    "speakers": sorted(set(speakers[idx].tolist())),
                    "groups": sorted(set(groups[idx].tolist())),
                }
            )
    return rows
