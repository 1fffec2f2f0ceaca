"""Split protocols: disjoint covering parts, no speaker leakage, stratification, determinism."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_lab.data.corpora import load_corpus
from ser_lab.data.corpora.base import PAPER_EMOTIONS, Manifest, Utterance
from ser_lab.data.splits import Fold, fold_summary, make_folds
from ser_lab.errors import ConfigError

EMODB = Path(__file__).resolve().parents[1].parent / "shared/datasets/emodb"

# Tolerance of the paper protocol: each test fold's share of every class is within this
# many percentage points of the whole corpus's share (StratifiedKFold keeps counts within 1).
PROPORTION_TOLERANCE = 0.03


def manifest_from(
    rows: list[tuple[str, str, str]], labels: tuple[str, ...] = PAPER_EMOTIONS
) -> Manifest:
    """A manifest of (label, speaker, group) rows; paths are never opened by the splitter."""
    utts = [
        Utterance(f"u{i:05d}", f"/nowhere/u{i:05d}.wav", label, spk, grp, 2.0, "test")
        for i, (label, spk, grp) in enumerate(rows)
    ]
    return Manifest("test", "/nowhere", labels, utts)


def corpus(
    n_speakers: int = 10, per_class: tuple[int, ...] = (9, 6, 5, 3), sessions: int = 0
) -> Manifest:
    """Imbalanced classes; every speaker has every class; optional sessions of 2 speakers."""
    rows = []
    for s in range(n_speakers):
        speaker = f"spk{s:02d}"
        group = f"Session{s // 2 + 1}" if sessions else speaker
        for label, n in zip(PAPER_EMOTIONS, per_class, strict=True):
            rows += [(label, speaker, group)] * (n + s % 3)
    return manifest_from(rows)


def assert_partition(manifest: Manifest, folds: list[Fold]) -> None:
    """Each fold's parts are sorted, disjoint, non-empty and cover the corpus exactly."""
    n = len(manifest)
    for fold in folds:
        parts = [fold.train, fold.val, fold.test]
        for part in parts:
            assert part.dtype == np.int64 and len(part) > 0
            assert np.all(np.diff(part) > 0)  # sorted, no duplicates
        for a, b in combinations(parts, 2):
            assert np.intersect1d(a, b).size == 0
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def assert_no_shared(values: np.ndarray, folds: list[Fold]) -> None:
    """No value (speaker or group) occurs in two different parts of any fold."""
    for fold in folds:
        sets = [set(values[p].tolist()) for p in (fold.train, fold.val, fold.test)]
        for a, b in combinations(sets, 2):
            assert not a & b


def assert_tests_cover_once(manifest: Manifest, folds: list[Fold]) -> None:
    tests = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(manifest)))


# ---------------------------------------------------------------- paper protocol


def test_paper_partition_and_stratification() -> None:
    m = corpus()
    folds = make_folds(m, "paper", n_folds=5, seed=0)
    assert [f.index for f in folds] == list(range(5))
    assert_partition(m, folds)
    assert_tests_cover_once(m, folds)
    y = m.label_ids()
    whole = np.bincount(y) / len(y)
    for fold in folds:
        share = np.bincount(y[fold.test], minlength=4) / len(fold.test)
        assert np.all(np.abs(share - whole) <= PROPORTION_TOLERANCE)
        # Validation comes from the training part, stratified, about val_fraction of it.
        non_test = len(fold.train) + len(fold.val)
        assert set(y[fold.val].tolist()) == {0, 1, 2, 3}
        assert abs(len(fold.val) / non_test - 0.15) < 0.03


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=5, max_value=40), min_size=2, max_size=5),
    n_folds=st.integers(min_value=2, max_value=5),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_paper_invariants_hold_for_any_class_sizes(
    counts: list[int], n_folds: int, seed: int
) -> None:
    labels = tuple(f"c{i}" for i in range(len(counts)))
    m = manifest_from(
        [(labels[c], "s", "s") for c, n in enumerate(counts) for _ in range(n)], labels
    )
    folds = make_folds(m, "paper", n_folds=n_folds, seed=seed)
    assert len(folds) == n_folds
    assert_partition(m, folds)
    assert_tests_cover_once(m, folds)
    y = m.label_ids()
    for fold in folds:
        per_class = np.bincount(y[fold.test], minlength=len(counts))
        assert np.all(np.abs(per_class - np.array(counts) / n_folds) <= 1)


# ---------------------------------------------------------------- speaker protocol


def test_speaker_folds_share_no_speaker() -> None:
    m = corpus(n_speakers=10)
    folds = make_folds(m, "speaker", n_folds=5, seed=3)
    assert_partition(m, folds)
    assert_tests_cover_once(m, folds)
    assert_no_shared(m.speakers(), folds)
    y = m.label_ids()
    for fold in folds:
        assert len(set(m.speakers()[fold.test].tolist())) == 2
        assert set(y[fold.val].tolist()) == {0, 1, 2, 3}
        assert set(y[fold.train].tolist()) == {0, 1, 2, 3}


def test_speaker_validation_covers_classes_spread_over_speakers() -> None:
    """Each speaker has only two classes: validation must combine speakers to see all four."""
    rows = []
    pairs = [("neutral", "angry"), ("happy", "sad")]
    for s in range(12):
        for label in pairs[s % 2]:
            rows += [(label, f"spk{s:02d}", f"spk{s:02d}")] * 5
    m = manifest_from(rows)
    folds = make_folds(m, "speaker", n_folds=3, seed=1)
    assert_partition(m, folds)
    assert_no_shared(m.speakers(), folds)
    y = m.label_ids()
    for fold in folds:
        assert set(y[fold.val].tolist()) == {0, 1, 2, 3}
        assert set(y[fold.train].tolist()) == {0, 1, 2, 3}


def test_speaker_class_balance_is_kept_roughly() -> None:
    m = corpus(n_speakers=20)
    y = m.label_ids()
    whole = np.bincount(y) / len(y)
    for fold in make_folds(m, "speaker", n_folds=4, seed=0):
        share = np.bincount(y[fold.test], minlength=4) / len(fold.test)
        assert np.all(np.abs(share - whole) <= 0.05)


# ---------------------------------------------------------------- session protocol


def test_session_leave_one_group_out() -> None:
    m = corpus(n_speakers=10, sessions=5)
    folds = make_folds(m, "session", n_folds=99, seed=0)  # n_folds is ignored
    assert len(folds) == 5
    assert_partition(m, folds)
    assert_tests_cover_once(m, folds)
    assert_no_shared(m.speakers(), folds)
    groups = m.groups()
    assert [sorted(set(groups[f.test].tolist())) for f in folds] == [
        [f"Session{k}"] for k in range(1, 6)
    ]
    for fold in folds:
        test_group = set(groups[fold.test].tolist())
        assert not test_group & set(groups[fold.train].tolist())
        assert not test_group & set(groups[fold.val].tolist())


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("protocol", ["paper", "speaker", "session"])
def test_deterministic_per_seed(protocol: str) -> None:
    m = corpus(n_speakers=10, sessions=5)
    a = make_folds(m, protocol, n_folds=5, seed=7)
    b = make_folds(m, protocol, n_folds=5, seed=7)
    for fa, fb in zip(a, b, strict=True):
        for part in ("train", "val", "test"):
            assert np.array_equal(fa.part(part), fb.part(part))


def test_seed_changes_paper_folds() -> None:
    m = corpus()
    a = make_folds(m, "paper", seed=0)
    b = make_folds(m, "paper", seed=1)
    assert any(not np.array_equal(fa.test, fb.test) for fa, fb in zip(a, b, strict=True))


# ---------------------------------------------------------------- errors


def test_errors() -> None:
    m = corpus(n_speakers=4)
    with pytest.raises(ConfigError, match="protocol must be one of paper, speaker, session"):
        make_folds(m, "random")
    with pytest.raises(ConfigError, match="n_folds"):
        make_folds(m, "paper", n_folds=1)
    with pytest.raises(ConfigError, match="at least 5 speakers"):
        make_folds(m, "speaker", n_folds=5)
    with pytest.raises(ConfigError, match="val_fraction"):
        make_folds(m, "paper", val_fraction=0.0)
    with pytest.raises(ConfigError, match="at least 2 groups"):
        make_folds(m.subset(np.flatnonzero(m.speakers() == "spk00")), "session")
    with pytest.raises(ConfigError, match="empty"):
        make_folds(m.subset([]), "paper")


def test_class_with_too_few_members() -> None:
    rows = [("neutral", "a", "a")] * 10 + [("angry", "a", "a")] * 10 + [("sad", "b", "b")] * 3
    m = manifest_from(rows, ("neutral", "angry", "sad"))
    with pytest.raises(ConfigError, match=r"sad \(3\)"):
        make_folds(m, "paper", n_folds=5)


def test_class_in_a_single_group_cannot_be_trained() -> None:
    rows = [
        (lab, f"s{g}", f"G{g}") for g in range(3) for lab in ("neutral", "angry") for _ in range(4)
    ]
    rows += [("sad", "s0", "G0")] * 4
    m = manifest_from(rows, ("neutral", "angry", "sad"))
    with pytest.raises(ConfigError, match="without any sad"):
        make_folds(m, "session")


# ---------------------------------------------------------------- summary and real data


def test_fold_summary_counts() -> None:
    m = corpus(n_speakers=10)
    folds = make_folds(m, "speaker", n_folds=5)
    rows = fold_summary(m, folds)
    assert len(rows) == 15
    assert [(r["fold"], r["part"]) for r in rows[:3]] == [(0, "train"), (0, "val"), (0, "test")]
    for r in rows:
        assert sum(r["counts"].values()) == r["utterances"]
        assert list(r["counts"]) == list(PAPER_EMOTIONS)
        assert r["n_speakers"] == len(r["speakers"])
    for k in range(5):
        assert sum(r["utterances"] for r in rows if r["fold"] == k) == len(m)


@pytest.mark.skipif(not EMODB.is_dir(), reason=f"real EmoDB not available at {EMODB}")
def test_speaker_folds_on_real_emodb() -> None:
    m = load_corpus("emodb", EMODB)
    folds = make_folds(m, "speaker", n_folds=5, seed=0)
    assert_partition(m, folds)
    assert_tests_cover_once(m, folds)
    assert_no_shared(m.speakers(), folds)
