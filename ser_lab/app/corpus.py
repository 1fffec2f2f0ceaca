"""The corpus the app works on (`CorpusChoice`), kept in the session and in a small settings file
(<cache>/app_settings.json) so every page and every new tab uses the same one, and the tables
of the Corpus page.

The other modules of `ser_lab.app` hold the rest of what the pages need that is not drawing:
`pages` (the page registry), `run_tables`, `comparison`, `explore`, `sweeps`; figures are in
`ser_lab.app.figures`. Nothing here imports Streamlit, so all of it is tested without it.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ser_lab import fileio, paths
from ser_lab.data.corpora import CORPORA, REGISTRY
from ser_lab.data.corpora.base import Manifest
from ser_lab.data.corpora.labels import CLASS_SETS
from ser_lab.errors import ConfigError, CorpusError, SerLabError
from ser_lab.runs import Run

SETTINGS_NAME = "app_settings.json"
DEFAULT_SYNTHETIC_SIZE = "default"  # the size of the demo runs and of the quick start (launcher.QUICK_START)
SESSION_KEY = "corpus"

# ----------------------------------------------------------------------------- the corpus in use


@dataclass
class CorpusChoice:
    """Which corpus the app works on: an adapter name, its root, the class set, options."""

    name: str = "synthetic"
    root: str | None = None
    classes: str = "paper"
    options: dict = field(default_factory=lambda: {"size": DEFAULT_SYNTHETIC_SIZE})

    def validate(self) -> CorpusChoice:
        if self.name not in CORPORA:
            raise ConfigError(f"unknown corpus {self.name!r}; valid names: {', '.join(CORPORA)}")
        if self.classes not in CLASS_SETS:
            raise ConfigError(f"classes must be one of {', '.join(CLASS_SETS)}, got {self.classes!r}")
        if REGISTRY[self.name].needs_root and not (self.root or "").strip():
            raise CorpusError(
                f"corpus {self.name!r} needs a root folder (only 'synthetic' has none)"
            )
        if not isinstance(self.options, dict):
            raise ConfigError(f"corpus options must be a dict, got {type(self.options).__name__}")
        return self

    @property
    def is_synthetic(self) -> bool:
        return self.name == "synthetic"

    def label(self) -> str:
        """One line for captions: what the corpus is and where it is."""
        if self.is_synthetic:
            size = self.options.get("size", "default")
            where = f" at {self.root}" if self.root else ""
            return f"built-in synthetic corpus (size {size}){where}: SYNTHETIC speech"
        classes = "4 paper classes" if self.classes == "paper" else "all classes"
        return f"{self.name} at {self.root} ({classes})"

    def train_fields(self) -> dict[str, Any]:
        """The TrainConfig fields that select this corpus."""
        return {
            "corpus": self.name,
            "root": str(Path(self.root).expanduser().resolve()) if self.root else None,
            "classes": self.classes,
            "corpus_options": dict(self.options),
        }

    def key(self) -> str:
        """A stable string for cache keys."""
        return json.dumps(asdict(self), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CorpusChoice:
        if not isinstance(d, dict):
            raise ConfigError(f"a corpus choice must be a dict, got {type(d).__name__}")
        return cls(
            name=str(d.get("name", "synthetic")),
            root=d.get("root") or None,
            classes=str(d.get("classes", "paper")),
            options=dict(d.get("options") or {}),
        ).validate()

    @classmethod
    def from_run(cls, run: Run) -> CorpusChoice:
        """The corpus a run was trained on (from its config.json)."""
        train = run.config.get("train") or {}
        return cls(
            name=str(train.get("corpus", "synthetic")),
            root=train.get("root"),
            classes=str(train.get("classes", "paper")),
            options=dict(train.get("corpus_options") or {}),
        )

    def load(self) -> Manifest:
        """The manifest (the synthetic corpus is generated into the cache on first use)."""
        from ser_lab.data.corpora import load_corpus

        self.validate()
        return load_corpus(self.name, self.root, classes=self.classes, **self.options)

    def available(self) -> bool:
        """Whether loading needs no generation (a synthetic corpus already in the cache, or a
        real corpus root that exists)."""
        if self.is_synthetic and not self.root:
            from ser_lab.data.corpora.synthetic import default_root

            try:
                root = default_root(
                    self.options.get("size", "default"), self.options.get("seed", 0)
                )
            except SerLabError:
                return False
            return (root / "metadata.csv").is_file()
        return bool(self.root) and Path(self.root).expanduser().exists()


def settings_path() -> Path:
    return paths.cache_dir() / SETTINGS_NAME


def load_corpus_choice() -> CorpusChoice:
    """The saved corpus choice, or the built-in corpus if none (or an unreadable one) is saved."""
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
        return CorpusChoice.from_dict(data["corpus"])
    except (OSError, ValueError, KeyError, TypeError, SerLabError):
        return CorpusChoice()


def save_corpus_choice(choice: CorpusChoice) -> None:
    fileio.atomic_write_json(settings_path(), {"corpus": choice.validate().to_dict()})


def current_corpus(state: MutableMapping) -> CorpusChoice:
    """The corpus of this session (a page's st.session_state), read from the settings file the
    first time so a new tab starts with the last choice."""
    raw = state.get(SESSION_KEY)
    if isinstance(raw, dict):
        try:
            return CorpusChoice.from_dict(raw)
        except SerLabError:
            pass
    choice = load_corpus_choice()
    state[SESSION_KEY] = choice.to_dict()
    return choice


def set_corpus(state: MutableMapping, choice: CorpusChoice) -> None:
    """Make `choice` the corpus of this session and of new sessions."""
    save_corpus_choice(choice)
    state[SESSION_KEY] = choice.to_dict()


def corpus_tables(manifest: Manifest) -> dict[str, pd.DataFrame]:
    """The Corpus page's tables: utterances, counts per class and per speaker, problems."""
    utts = pd.DataFrame(
        [
            {
                "utt_id": u.utt_id,
                "label": u.label,
                "speaker": u.speaker,
                "group": u.group,
                "duration_s": round(u.duration, 2),
                "path": u.path,
            }
            for u in manifest.utterances
        ]
    )
    by_class = pd.DataFrame(
        {
            "label": list(manifest.counts_by_label()),
            "count": list(manifest.counts_by_label().values()),
        }
    )
    by_speaker = (
        utts.groupby(["speaker", "label"]).size().reset_index(name="count")
        if len(utts)
        else pd.DataFrame(columns=["speaker", "label", "count"])
    )
    problems = pd.DataFrame(
        [{"path": p.path, "reason": p.reason} for p in manifest.problems],
        columns=["path", "reason"],
    )
    return {
        "utterances": utts,
        "by_class": by_class,
        "by_speaker": by_speaker,
        "problems": problems,
    }
