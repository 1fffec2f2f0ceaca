"""The corpus registry: one way to load any corpus into the common `Manifest`.

`load_corpus(name, root, classes=...)` checks the inputs at the boundary, then hands over to
that corpus's own small adapter module (SpeechBrain style: `emodb.py`, `iemocap.py`, ...).
Adapters only read file names, label files and audio headers (never decode audio), so loading
a corpus takes seconds. Every file an adapter cannot use is recorded as a `Problem` with the
reason; utterances left out on purpose (a label outside the 4-class subset) are counted in
`CorpusManifest.excluded`. `describe(manifest)` turns all of that into the text shown by
`python -m ser_lab data describe`.

Only regular files are ever opened: a FIFO, socket or device found in a corpus (or named by a
CSV list) is a listed problem, decided from `os.stat` alone, so a scan never blocks on it. A
file name that is not valid UTF-8 is a listed problem too (shown with its odd bytes escaped),
so every id, path and message downstream is plain text.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from ser_lab.data.corpora.base import Manifest, Problem, Utterance
from ser_lab.data.corpora.labels import NOT_IN_SUBSET, check_classes, keeps, ordered_labels
from ser_lab.errors import ConfigError, CorpusError
from ser_lab.fileio import display_path, not_regular_reason


@dataclass(frozen=True)
class CorpusEntry:
    """One corpus SER Lab can read: its name, its adapter (module and loader function,
    imported lazily so one corpus's module never slows another) and what its root must be.

    The one list of corpora: `python -m ser_lab --corpus` offers its names, the app's corpus
    choice and the command line's --root help show its `help`, and a test checks that the
    README's corpus table lists exactly these names. Adding a corpus = its adapter module,
    its label map (ser_lab.data.corpora.labels) and one entry here."""

    name: str
    module: str
    loader: str
    help: str  # what `root` must point to
    needs_root: bool = True


REGISTRY: dict[str, CorpusEntry] = {
    e.name: e
    for e in (
        CorpusEntry(
            "synthetic", "ser_lab.data.corpora.synthetic", "load_synthetic",
            "built-in: generated on first use into the cache, no download", needs_root=False,
        ),
        CorpusEntry(
            "emodb", "ser_lab.data.corpora.emodb", "load_emodb",
            "Berlin EmoDB: the folder holding wav/ (e.g. ../shared/datasets/emodb)",
        ),
        CorpusEntry(
            "iemocap", "ser_lab.data.corpora.iemocap", "load_iemocap",
            "IEMOCAP: the folder holding Session1 ... Session5",
        ),
        CorpusEntry(
            "ravdess", "ser_lab.data.corpora.ravdess", "load_ravdess",
            "RAVDESS: the folder holding the Actor_xx folders",
        ),
        CorpusEntry(
            "cremad", "ser_lab.data.corpora.cremad", "load_cremad",
            "CREMA-D: the folder holding AudioWAV (or the wav files)",
        ),
        CorpusEntry(
            "folder", "ser_lab.data.corpora.folder", "load_folder",
            "any folder with one sub-folder per emotion (neutral/, angry/, ...)",
        ),
        CorpusEntry(
            "csv", "ser_lab.data.corpora.csvlist", "load_csv",
            "a CSV file with path,label[,speaker] columns",
        ),
    )
}
CORPORA: tuple[str, ...] = tuple(REGISTRY)

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")


# Kept as a name for the adapters: every Manifest now carries `excluded` itself.
CorpusManifest = Manifest


def load_corpus(
    name: str,
    root: str | Path | None = None,
    *,
    classes: str = "paper",
    **options: Any,
) -> Manifest:
    """Load corpus `name` from `root` into a Manifest.

    classes="paper" keeps the paper's four emotions (neutral, angry, happy, sad);
    classes="all" keeps every class the corpus has. `options` are the adapter's own settings
    (e.g. `improvised_only=True` for IEMOCAP).
    """
    path = check_corpus_source(name, root, classes=classes, **options)
    entry = REGISTRY[name]
    loader = getattr(importlib.import_module(entry.module), entry.loader)
    if path is None:
        return loader(root, classes=classes, **options)
    return loader(path, classes=classes, **options)


def check_corpus_source(
    name: str,
    root: str | Path | None = None,
    *,
    classes: str = "paper",
    **options: Any,
) -> Path | None:
    """Every check of `load_corpus` that needs no reading of the corpus: the name, the classes,
    the options and the root folder. Returns the resolved root (None for a corpus without one).
    Run before a run folder is made, so a mistyped path leaves no failed run behind."""
    if name not in REGISTRY:
        raise CorpusError(f"unknown corpus {name!r}; valid names: {', '.join(CORPORA)}")
    check_classes(classes)
    entry = REGISTRY[name]
    loader = getattr(importlib.import_module(entry.module), entry.loader)
    _check_options(name, loader, options)
    if not entry.needs_root:
        return None
    if root is None:
        raise CorpusError(f"corpus {name!r} needs a root folder (only 'synthetic' has none)")
    path = Path(root).expanduser()
    if not path.exists():
        raise CorpusError(f"{name} root does not exist: {path}")
    if name != "csv" and not path.is_dir():
        raise CorpusError(f"{name} root must be a folder, got a file: {path}")
    return path.resolve()


def check_corpus_listing(
    name: str,
    root: str | Path | None = None,
    *,
    classes: str = "paper",
    **options: Any,
) -> Manifest | None:
    """`check_corpus_source`, then, for a corpus on disk, its listing as `load_corpus` makes it
    (file names, labels, audio headers; nothing decoded): a folder without one usable labelled
    file, or a CSV that cannot be found or read, is refused here, before a run folder is made,
    so it leaves no failed run behind. Returns that manifest; for the built-in corpus, the
    listing it will have, planned from its size without generating audio."""
    if check_corpus_source(name, root, classes=classes, **options) is None:
        if name != "synthetic":
            return None
        from ser_lab.data.corpora.synthetic import list_synthetic

        return list_synthetic(root, classes=classes, **options)
    return load_corpus(name, root, classes=classes, **options)


def _check_options(name: str, loader: Any, options: dict[str, Any]) -> None:
    """Turn a misspelt option into a clear error instead of a TypeError deep inside."""
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in ("root", "classes")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        valid = ", ".join(accepted) or "none"
        raise ConfigError(
            f"corpus {name!r} has no option {', '.join(map(repr, unknown))}; its options: {valid}"
        )


# ---------------------------------------------------------------- helpers shared by adapters


def iter_files(folder: Path, *, recursive: bool = False) -> Iterator[Path]:
    """Entries under `folder` that are not folders, sorted, skipping hidden ones (.DS_Store,
    ._AppleDouble). FIFOs, sockets, devices and dangling links are yielded too, so that the
    adapter lists them as problems (`audio_duration` refuses them without opening them)."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(paths):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if not path.is_dir():
            yield path


def is_text_name(path: Path | str) -> bool:
    """Whether a path is valid UTF-8 text (not a name holding undecodable bytes)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def audio_duration(path: Path) -> tuple[float | None, str]:
    """Duration in seconds from the file header (no decoding), or None and the reason why not.

    Anything but a regular file is refused from `os.stat` before libsndfile sees it."""
    try:
        st = os.stat(os.fsencode(path))
    except FileNotFoundError:
        return None, "audio file missing"
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        return None, f"unreadable audio ({getattr(err, 'strerror', None) or err})"
    kind = not_regular_reason(st)
    if kind:
        return None, f"not a regular file ({kind}): never opened"
    from ser_lab.data.audio import looks_like_audio, quiet_decoder

    try:
        with quiet_decoder(path):
            info = sf.info(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        detail = getattr(err, "error_string", "") or type(err).__name__
        if not looks_like_audio(path):  # libsndfile's "possibly a pipe?" would mislead
            detail = "unknown format: not a WAV, FLAC, OGG, MP3, AIFF, AU or CAF file"
        return None, f"unreadable audio ({detail})"
    except OSError as err:
        return None, f"unreadable audio ({err.strerror or type(err).__name__})"
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "empty audio (no samples)"
    return info.frames / info.samplerate, ""


class ManifestBuilder:
    """Collects an adapter's findings and turns them into a `CorpusManifest`.

    Adapters call `add` for every labelled file, `problem` for files they cannot use and
    `exclude` for valid files left out on purpose; the builder applies the class selection,
    rejects duplicate ids, reads durations from headers and sorts the result by utt_id.
    """

    def __init__(self, corpus: str, root: Path, classes: str) -> None:
        check_classes(classes)
        self.corpus = corpus
        self.root = root
        self.classes = classes
        self.utterances: dict[str, Utterance] = {}
        self.problems: list[Problem] = []
        self.excluded: dict[str, Counter[str]] = defaultdict(Counter)

    def problem(self, path: Path | str, reason: str) -> None:
        self.problems.append(Problem(path=display_path(path), reason=reason))

    def exclude(self, reason: str, label: str) -> None:
        self.excluded[reason][label] += 1

    def named_wav(self, path: Path, name: re.Pattern[str], scheme: str) -> re.Match[str] | None:
        """The match of a .wav file's stem against a corpus's file-naming scheme, or None after
        recording why the file is skipped (not a .wav, or a name not of the `scheme`)."""
        if path.suffix.lower() != ".wav":
            self.problem(path, "not a .wav file")
            return None
        match = name.match(path.stem)
        if match is None:
            self.problem(path, f"name does not match {scheme}")
        return match

    def add_coded(
        self, path: Path, code: str, codes: dict[str, str], speaker: str, what: str = "emotion code"
    ) -> None:
        """Add the file under the emotion its name's `code` stands for (`codes`), or record an
        unknown code (`what` names it in the message)."""
        if code not in codes:
            self.problem(path, f"unknown {what} {code!r}")
            return
        self.add(path.stem, path, codes[code], speaker)

    def add(
        self, utt_id: str, path: Path, label: str, speaker: str, group: str | None = None
    ) -> None:
        """Add one labelled file (its label already mapped to an emotion name)."""
        if not is_text_name(path):
            self.problem(path, "file name is not valid UTF-8 (odd bytes shown as \\xNN): rename it")
            return
        if not keeps(label, self.classes):
            self.exclude(NOT_IN_SUBSET, label)
            return
        if utt_id in self.utterances:
            self.problem(path, f"duplicate utterance id {utt_id!r}")
            return
        duration, reason = audio_duration(path)
        if duration is None:
            self.problem(path, reason)
            return
        self.utterances[utt_id] = Utterance(
            utt_id=utt_id,
            path=str(path),
            label=label,
            speaker=speaker,
            group=group if group is not None else speaker,
            duration=float(duration),
            corpus=self.corpus,
        )

    def build(self) -> CorpusManifest:
        if not self.utterances:
            raise CorpusError(
                f"no usable audio for corpus {self.corpus!r} in {self.root}{self._why()}"
            )
        utterances = [self.utterances[k] for k in sorted(self.utterances)]
        return CorpusManifest(
            corpus=self.corpus,
            root=str(self.root),
            labels=ordered_labels(u.label for u in utterances),
            utterances=utterances,
            problems=list(self.problems),
            excluded={r: dict(sorted(c.items())) for r, c in sorted(self.excluded.items())},
        )

    def _why(self) -> str:
        parts = []
        if self.problems:
            top = Counter(p.reason for p in self.problems).most_common(3)
            parts.append(
                f"{len(self.problems)} unusable file(s): "
                + "; ".join(f"{reason} ×{n}" for reason, n in top)
            )
        for reason, counts in self.excluded.items():
            parts.append(f"{sum(counts.values())} {reason} ({_fmt_counts(counts)})")
        if not parts:
            return " (no labelled audio files found)"
        return " (" + "; ".join(parts) + ")"


# ---------------------------------------------------------------- describe


def describe(manifest: Manifest, *, max_problems: int = 10) -> str:
    """Human-readable summary of a loaded corpus: what is in it and what was left out."""
    n = len(manifest)
    durations = [u.duration for u in manifest.utterances]
    total = sum(durations)
    speakers = manifest.counts_by_speaker()
    groups = sorted(set(u.group for u in manifest.utterances))
    lines = [
        f"corpus: {manifest.corpus}",
        f"root: {manifest.root}",
        f"classes: {', '.join(manifest.labels)}",
        f"utterances: {n}",
        f"speakers: {len(speakers)}",
    ]
    if groups != sorted(speakers):
        lines.append(f"groups: {len(groups)} ({', '.join(groups)})")
    if n:
        lines.append(
            f"duration: {total:.1f} s total ({_hms(total)}); per utterance mean "
            f"{total / n:.2f} s, min {min(durations):.2f} s, max {max(durations):.2f} s"
        )
    lines += ["", "per class:"]
    counts = manifest.counts_by_label()
    width = max([len(name) for name in counts] + [5])
    for name, count in counts.items():
        share = 100.0 * count / n if n else 0.0
        lines.append(f"  {name:<{width}}  {count:>6}  ({share:4.1f} %)")
    lines += ["", "per speaker:"]
    lines += ["  " + row for row in _speaker_table(manifest)]
    lines += [""] + _excluded_lines(manifest) + _problem_lines(manifest, max_problems)
    return "\n".join(lines)


def _speaker_table(manifest: Manifest) -> list[str]:
    by_speaker: dict[str, Counter[str]] = defaultdict(Counter)
    for u in manifest.utterances:
        by_speaker[u.speaker][u.label] += 1
    header = ["speaker", *manifest.labels, "total"]
    rows = [
        [spk, *(str(c[name]) for name in manifest.labels), str(sum(c.values()))]
        for spk, c in sorted(by_speaker.items())
    ]
    totals = manifest.counts_by_label()
    rows.append(["total", *(str(totals[name]) for name in manifest.labels), str(len(manifest))])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return [fmt(header), *(fmt(r) for r in rows)]


def _excluded_lines(manifest: Manifest) -> list[str]:
    excluded = getattr(manifest, "excluded", {}) or {}
    lines = []
    for reason, counts in excluded.items():
        lines.append(f"{reason}: {sum(counts.values())} ({_fmt_counts(counts)})")
    if not excluded:
        lines.append("left out on purpose: none")
    return lines


def _problem_lines(manifest: Manifest, max_problems: int) -> list[str]:
    problems = manifest.problems
    lines = [f"problems: {len(problems)}"]
    for reason, count in Counter(p.reason for p in problems).most_common():
        lines.append(f"  {reason}: {count}")
    if problems:
        shown = problems[:max_problems]
        lines.append(f"first {len(shown)}:")
        root = Path(manifest.root)
        root = root.parent if root.is_file() else root
        for p in shown:
            lines.append(f"  {_relative(Path(p.path), root)}: {p.reason}")
    return lines


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
