"""The common manifest every corpus adapter produces.

Downstream code (features, splits, trainer, app) sees only `Manifest` and `Utterance`,
never a corpus's own layout (SpeechBrain-style one-preparation-function-per-corpus).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# The paper's four classes, in the order used for class ids everywhere.
PAPER_EMOTIONS: tuple[str, ...] = ("neutral", "angry", "happy", "sad")


@dataclass(frozen=True)
class Utterance:
    utt_id: str  # unique within a corpus
    path: str  # absolute path to the audio file
    label: str  # emotion name after the label map (e.g. "angry")
    speaker: str
    group: str  # session (IEMOCAP) or another grouping; speaker when the corpus has none
    duration: float  # seconds, as read from the file header
    corpus: str


@dataclass(frozen=True)
class Problem:
    """A file the adapter could not use, and why (unknown label, bad name, unreadable...)."""

    path: str
    reason: str


@dataclass
class Manifest:
    corpus: str
    root: str
    labels: tuple[str, ...]  # class names; class id = index in this tuple
    utterances: list[Utterance]
    problems: list[Problem] = field(default_factory=list)
    # Valid utterances left out on purpose (e.g. "not in the 4-class subset"): reason -> label -> n.
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.utterances)

    def label_ids(self) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.labels)}
        return np.array([index[u.label] for u in self.utterances], dtype=np.int64)

    def speakers(self) -> np.ndarray:
        return np.array([u.speaker for u in self.utterances])

    def groups(self) -> np.ndarray:
        return np.array([u.group for u in self.utterances])

    def counts_by_label(self) -> dict[str, int]:
        counts = Counter(u.label for u in self.utterances)
        return {name: counts.get(name, 0) for name in self.labels}

    def counts_by_speaker(self) -> dict[str, int]:
        return dict(sorted(Counter(u.speaker for u in self.utterances).items()))

    def subset(self, indices: list[int] | np.ndarray) -> Manifest:
        return Manifest(
            corpus=self.corpus,
            root=self.root,
            labels=self.labels,
            utterances=[self.utterances[int(i)] for i in indices],
            problems=list(self.problems),
            excluded=dict(self.excluded),
        )

    def fingerprint(self) -> str:
        """A hash of what was loaded (ids, labels, speakers, groups, durations).

        Recorded in every run's config so a run can be tied to the exact data it saw.
        File contents are fingerprinted separately by the feature cache.
        """
        h = hashlib.sha256()
        h.update(repr(self.labels).encode())
        for u in self.utterances:
            line = f"{u.utt_id}|{u.label}|{u.speaker}|{u.group}|{u.duration:.3f}\n"
            h.update(line.encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]
