"""The Explore page's lookups: whether a run's corpus is the one in use, the audio and
spectrogram of an utterance, the default run, and the context of an uploaded clip.

Nothing here imports Streamlit; pages stay thin (read inputs, call ser_lab, draw).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ser_lab.app.corpus import CorpusChoice
from ser_lab.app.run_tables import is_finished
from ser_lab.data.corpora.base import Manifest
from ser_lab.errors import SerLabError
from ser_lab.runs import Run, RunStore, RunSummary

# ----------------------------------------------------------------------------- audio lookups


def corpus_matches(run: Run, fold: int, manifest: Manifest) -> bool:
    """Whether `manifest` still holds the data the run was trained on.

    The trainer records a fingerprint of the utterances it used (ids, labels, speakers,
    groups, durations). The same fingerprint of the manifest's utterances that appear in the
    fold's embeddings must match it; it does not when the corpus was regenerated (e.g. a new
    version of the synthetic generator) or edited, and then its audio is not what the model
    heard. True when the run recorded no fingerprint (nothing to check).
    """
    recorded = (run.config.get("data") or {}).get("fingerprint")
    if not recorded:
        return True
    used = set(np.asarray(run.load_embeddings(fold)["utt_ids"]).astype(str).tolist())
    keep = [i for i, u in enumerate(manifest.utterances) if u.utt_id in used]
    return len(keep) == len(used) and manifest.subset(keep).fingerprint() == recorded


CORPUS_CHANGED = (
    "The corpus on this machine differs from the one this run was trained on (regenerated or "
    "edited since: its fingerprint does not match), so this audio may not be what the model heard."
)


def utterance_paths(manifest: Manifest) -> dict[str, str]:
    return {u.utt_id: u.path for u in manifest.utterances}


def spectrogram(path: str | os.PathLike | bytes, kind: str = "mel") -> tuple[np.ndarray, float]:
    """(log spectrogram (frames, bins), duration s) of an audio file, as the model sees it
    (before normalisation)."""
    from ser_lab.data.audio import load_audio
    from ser_lab.data.features import FeatureConfig, compute_features

    clip = load_audio(path if isinstance(path, bytes) else str(path))
    return compute_features(clip.samples, FeatureConfig(kind=kind)), clip.duration


def read_bytes(path: str | os.PathLike | None) -> bytes | None:
    """The file's bytes for an audio player, or None if it is gone."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


# ----------------------------------------------------------------------------- explore


def corpus_matches_choice(run_choice: CorpusChoice, current: CorpusChoice) -> bool:
    """Whether a run's corpus (`CorpusChoice.from_run`) is the corpus in use: same adapter,
    same folder, same class set (and the same size of the built-in corpus)."""
    if run_choice.name != current.name or run_choice.classes != current.classes:
        return False
    if run_choice.is_synthetic:
        size = lambda c: c.options.get("size", "default")  # noqa: E731
        return size(run_choice) == size(current)

    def where(c: CorpusChoice) -> str:
        return str(Path(c.root).expanduser().resolve()) if c.root else ""

    return where(run_choice) == where(current)


def default_explore_run(
    store: RunStore, rows: Iterable[RunSummary], current: CorpusChoice
) -> str | None:
    """The Explore page's default run: the finished center-loss run (λ > 0) with the best UA
    on the corpus in use; else the demo center-loss run; else the best center-loss run of any
    corpus; else the newest finished run. A run of another objective (objectives.py) is not
    a center-loss run, whatever its λ."""
    done = [r for r in rows if is_finished(r)]
    centers = [
        r for r in done if r.lam is not None and r.lam > 0 and (r.objective or "center") == "center"
    ]

    def on_current(r: RunSummary) -> bool:
        try:
            return corpus_matches_choice(CorpusChoice.from_run(Run(Path(store.root) / r.run_id)), current)
        except SerLabError:
            return False

    for pool in ([r for r in centers if on_current(r)], [r for r in centers if r.is_demo], centers):
        if pool:
            return max(pool, key=lambda r: r.UA or 0.0).run_id
    return done[0].run_id if done else None


# File-name schemes of the corpora whose names carry the emotion: (corpus, the adapter's own
# name pattern, its code table, the pattern group holding the code).
def _name_schemes() -> list[tuple[str, Any, dict[str, str], str]]:
    from ser_lab.data.corpora import cremad, emodb, ravdess
    from ser_lab.data.corpora.labels import CREMAD_CODES, EMODB_CODES, RAVDESS_CODES

    return [
        ("emodb", emodb.NAME, EMODB_CODES, "emotion"),
        ("ravdess", ravdess.NAME, RAVDESS_CODES, "emotion"),
        ("cremad", cremad.NAME, CREMAD_CODES, "emotion"),
    ]


def label_from_file_name(name: str) -> tuple[str, str] | None:
    """(corpus, emotion) when a file name follows EmoDB's, RAVDESS's or CREMA-D's naming
    scheme (parsed with the adapters' own patterns and code tables), else None."""
    stem = Path(name).stem
    for corpus, pattern, codes, group in _name_schemes():
        match = pattern.match(stem)
        if match is not None and match[group] in codes:
            return corpus, codes[match[group]]
    return None


@dataclass(frozen=True)
class ClipContext:
    """What is known about a clip on the Explore page: where it comes from (a corpus name,
    "recording" or None if unknown), its true label if known, and a warning when it does not
    come from the run's training corpus."""

    origin: str | None
    true_label: str | None
    how: str  # how the label is known ("" if it is not)
    warning: str | None


REAL_ON_SYNTHETIC = (
    "This run was trained on the built-in SYNTHETIC corpus, and this clip is {what}. A model "
    "trained on synthetic voices has never heard real speech: its answer says little about "
    "the clip's emotion. Train on a real corpus (e.g. EmoDB) to explore real speech."
)
OTHER_CORPUS = (
    "This clip is {what}, not from the run's training corpus ({corpus}): other speakers, "
    "recording conditions and perhaps language, so expect a weaker answer than the test UA."
)


def clip_context(
    name: str | None,
    kind: str,
    run_corpus: str,
    corpus_labels: dict[str, str] | None = None,
) -> ClipContext:
    """Where a clip on the Explore page comes from, its true label if known, and whether to
    warn that it is not from the run's training corpus.

    kind: "upload", "record" or "test" (a held-out test utterance of the run's own corpus);
    run_corpus: the adapter name the run was trained on; corpus_labels: {utt_id: label} of
    the run's corpus when it is on this machine (an uploaded file named like one of its
    utterances is taken to be that utterance)."""
    stem = Path(name).stem if name else ""
    if kind == "test" and corpus_labels and stem in corpus_labels:
        return ClipContext(run_corpus, corpus_labels[stem], "a held-out test utterance", None)
    if kind == "record":
        what = "a recording of real speech"
        warning = (
            REAL_ON_SYNTHETIC.format(what=what)
            if run_corpus == "synthetic"
            else OTHER_CORPUS.format(what=what, corpus=run_corpus)
        )
        return ClipContext("recording", None, "", warning)
    if corpus_labels and stem in corpus_labels:
        return ClipContext(
            run_corpus, corpus_labels[stem], f"its name is an utterance of {run_corpus}", None
        )
    parsed = label_from_file_name(name or "")
    if parsed is not None:
        corpus, label = parsed
        how = f"its name follows the {corpus} naming scheme"
        if corpus == run_corpus:
            return ClipContext(corpus, label, how, None)
        what = f"from {corpus} (real speech, by its name)"
        warning = (
            REAL_ON_SYNTHETIC.format(what=what)
            if run_corpus == "synthetic"
            else OTHER_CORPUS.format(what=what, corpus=run_corpus)
        )
        return ClipContext(corpus, label, how, warning)
    if run_corpus == "synthetic":
        return ClipContext(
            None,
            None,
            "",
            REAL_ON_SYNTHETIC.format(what="not an utterance of the built-in corpus (by its name)"),
        )
    return ClipContext(None, None, "", None)
