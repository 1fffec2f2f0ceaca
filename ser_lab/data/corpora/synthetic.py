"""The built-in synthetic emotional-speech corpus (the default dataset: no download needed).

THIS CORPUS IS SYNTHETIC. Every file is produced by the source-filter voice model below, not
recorded from a person. It exists so that the app, the command line and the tests work on a
fresh machine with no data; scores on it say whether the pipeline works, not how well a model
recognises emotion in real speech (use a real corpus such as EmoDB or IEMOCAP for that).

How an utterance is made (each rule with its source)
----------------------------------------------------
Voice (Peterson & Barney 1952; Titze 1994; pulse shape Rosenberg 1971; resonators Klatt 1980):
- Source: a Rosenberg glottal-flow pulse per pitch period (opening and closing phases set by
  an open quotient and a speed quotient), differentiated for lip radiation; the pulse shape
  gives roughly the -12 dB/octave glottal tilt. Jitter (0.5-1 % cycle-to-cycle period
  perturbation) and shimmer (3-5 % amplitude perturbation) are drawn per speaker.
- Aspiration noise, modulated by the glottal cycle, is added in proportion to breathiness;
  a breathier voice also has a higher open quotient, a pressed voice a lower one.
- Filter: a cascade of second-order (Klatt) resonators, F1-F3 from the Peterson & Barney vowel
  table (/i/ /E/ /a/ /O/ /u/, adult male values, +/-4 % per vowel token), F4 = 3500 Hz and
  F5 = 4500 Hz fixed, all scaled by a per-speaker vocal-tract-length factor (0.95-1.05 for
  low, 1.12-1.22 for high voices); bandwidths 60-120 Hz growing with frequency. F1-F3 glide
  between segment targets (coarticulation), updated every 0.5 ms.
- Speech is a sequence of syllables (about 4-5 syllables/s in neutral speech, 150-300 ms
  each): an optional onset consonant (fricative /s/ /S/ /f/ /h/ noise, plosive closure + burst
  /p/ /t/ /k/, or voiced /m/ /n/ /l/ with their own formants), a vowel, an optional coda.
  Syllables form phrases separated by pauses, with phrase-final lengthening; F0 declines over
  each phrase (declination) with local accents; loudness falls over the phrase and rises on
  accented syllables.
- Speakers (ids spk01, spk02, ...): odd ids low (male-like, mean F0 100-140 Hz), even ids high
  (female-like, 180-240 Hz); each speaker also has its own F0 range, vocal-tract length,
  open quotient, breathiness, tilt, jitter, shimmer, speech rate, loudness and expressiveness.

Emotions, relative to the speaker's neutral voice (Banse & Scherer 1996; Juslin & Laukka 2003):
| cue | angry | happy | sad | neutral |
|---|---|---|---|---|
| F0 mean | +30 % | +25 % | -10 % | baseline |
| F0 std (semitones) | 3.5 | 4.5 | 1.25 | 2 |
| F0 accents (60 % of them; the rest mixed) | sharp, falling | rising | small, flat | mild |
| declination over a phrase | 3 st | 1 st | 2.5 st | 2 st |
| intensity | +7.5 dB | +3 dB | -5 dB | baseline |
| speech rate | +15 % | +10 % | -20 % | baseline |
| tilt above 500 Hz | +5 dB/oct (flatter) | +2.5 dB/oct | -4 dB/oct (steeper) | 0 |
| voice onsets (attack) | abrupt, ~12 ms | fairly abrupt, ~22 ms | slow, ~90 ms | ~40 ms |
| pauses | short (~0.15 s) | short (~0.17 s) | longer (~0.55 s), more | ~0.3 s |
| voice quality (open quot.) | tense (0.42), rough | bright (0.52) | breathy (0.72) | modal (0.60) |
| jitter and shimmer | 1.5x the speaker's | 1x | 1.6x (irregular) | 1x |

These are centres, not constants. Every utterance draws its own values: an expression strength
(the speaker's expressiveness 0.8-1.2 times a per-utterance factor around 1, sd 0.2) scales
its distance from neutral, and each cue gets its own spread (F0 mean +/-6 %, F0 std +/-0.35 st,
intensity +/-1.5 dB, rate +/-7 %, tilt +/-1.2 dB/oct, onsets and pauses +/-35 %, ...). The
accent shape is drawn per accent, so a shape is a tendency of an emotion, never its label.
Neighbouring emotions therefore overlap the way acted speech does: angry <-> happy share high
arousal, neutral <-> sad low arousal, angry <-> sad are far apart.

Recording conditions, drawn per utterance: the active-speech level is set to -34 dBFS plus the
speaker's habitual loudness plus the emotion's intensity plus a random recording gain of
+/-6 dB (so loudness alone does not give the emotion away, while the level difference relative
to the speaker remains); additive white or pink noise at 15-40 dB SNR; a length of 1.5-8 s
(mean about 4 s, loosely longer for slower speech); a limiter that scales the rare clip whose
peak would exceed 0.98. Files are 16 kHz mono 16-bit PCM WAV.

Determinism: a speaker's voice comes from numpy's generator seeded with (seed, 0, speaker) and
an utterance from (seed, 1, speaker, emotion, k), so the same seed and size give byte-identical
files whatever the number of worker processes (and a smaller size is a subset of a larger one).

Difficulty (calibration): a logistic regression on per-utterance mean and std of the 128-band
log-Mel spectrogram, cross-validated by speaker, scores about 70 % UA on the default size, with
the errors mostly angry <-> happy and neutral <-> sad (tests/test_synthetic.py keeps it <= 95 %).

References: R. Banse & K. R. Scherer, "Acoustic profiles in vocal emotion expression", J. Pers.
Soc. Psychol. 70(3), 1996; P. N. Juslin & P. Laukka, "Communication of emotions in vocal
expression and music performance: different channels, same code?", Psychol. Bull. 129(5), 2003;
G. E. Peterson & H. L. Barney, "Control methods used in a study of the vowels", JASA 24(2),
1952; I. R. Titze, "Principles of Voice Production", Prentice Hall, 1994; A. E. Rosenberg,
"Effect of glottal pulse shape on the quality of natural vowels", JASA 49(2B), 1971;
D. H. Klatt, "Software for a cascade/parallel formant synthesizer", JASA 67(3), 1980.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np

from ser_lab import procs
from ser_lab.data.corpora.base import PAPER_EMOTIONS, Manifest, Utterance
from ser_lab.data.corpora.voice import SAMPLE_RATE, draw_params, make_speaker, synthesize, wav_bytes
from ser_lab.errors import ConfigError, CorpusError
from ser_lab.paths import cache_dir

# Bumped whenever a change to the generator changes the audio it writes.
GENERATOR_VERSION = 3

SYNTHETIC_NOTICE = (
    "The built-in corpus is synthetic: every clip is generated by a source-filter voice model "
    "whose emotions follow published acoustic profiles, not recorded from real people. "
    "Results on it show that the pipeline works, not how well a model recognises emotion in "
    "real speech; use a real corpus (e.g. EmoDB, IEMOCAP) for that."
)


@dataclass(frozen=True)
class CorpusSize:
    """How many speakers, and how many utterances each speaker says per emotion."""

    speakers: int
    per_emotion: int

    @property
    def utterances(self) -> int:
        return self.speakers * len(PAPER_EMOTIONS) * self.per_emotion


SIZES: dict[str, CorpusSize] = {
    "default": CorpusSize(speakers=12, per_emotion=12),  # 576 utterances, ~38 min of audio
    "medium": CorpusSize(speakers=8, per_emotion=6),  # 192: the difficulty test
    "small": CorpusSize(speakers=4, per_emotion=4),  # 64: tests
    "tiny": CorpusSize(speakers=4, per_emotion=2),  # 32: smoke tests
}

METADATA_FIELDS = ("utt_id", "file", "label", "speaker", "group", "duration")
_PARTIAL_TAG = ".partial-"

# ---------------------------------------------------------------------------------------------
# Corpus generation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    seed: int
    speaker: int
    emotion: int
    k: int

    @property
    def speaker_name(self) -> str:
        return f"spk{self.speaker + 1:02d}"

    @property
    def utt_id(self) -> str:
        return f"{self.speaker_name}_{PAPER_EMOTIONS[self.emotion]}_{self.k + 1:03d}"


def _plan(spec: CorpusSize, seed: int) -> list[_Job]:
    """Every utterance of the corpus, in its metadata order."""
    return [_Job(seed, s, e, k) for s in range(spec.speakers)
            for e in range(len(PAPER_EMOTIONS)) for k in range(spec.per_emotion)]


def render_utterance(seed: int, speaker: int, emotion: str, k: int) -> np.ndarray:
    """Samples of utterance k of `emotion` by speaker `speaker` (0-based): pure function of args."""
    spk = make_speaker(speaker, seed)
    rng = np.random.default_rng([seed, 1, speaker, PAPER_EMOTIONS.index(emotion), k])
    return synthesize(spk, draw_params(spk, emotion, rng), rng)


def _render_chunk(jobs: list[_Job], wav_dir: str) -> list[dict]:
    rows = []
    for job in jobs:
        x = render_utterance(job.seed, job.speaker, PAPER_EMOTIONS[job.emotion], job.k)
        with open(Path(wav_dir) / f"{job.utt_id}.wav", "wb") as f:
            f.write(wav_bytes(x))
        speaker = job.speaker_name
        rows.append({"utt_id": job.utt_id, "file": f"wav/{job.utt_id}.wav",
                     "label": PAPER_EMOTIONS[job.emotion], "speaker": speaker,
                     "group": speaker, "duration": f"{len(x) / SAMPLE_RATE:.4f}"})
    return rows


def _check_size(size: str) -> CorpusSize:
    if size not in SIZES:
        raise ConfigError(f"unknown synthetic corpus size {size!r}; expected one of {list(SIZES)}")
    return SIZES[size]


def _check_classes(classes: str) -> None:
    if classes not in ("paper", "all"):
        raise ConfigError(f"classes must be 'paper' or 'all', got {classes!r}")


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _is_complete(root: Path) -> bool:
    return (root / "corpus.json").is_file() and (root / "metadata.csv").is_file()


def _clean_stale_partials(out_dir: Path) -> None:
    """Remove temporary folders left by generators on this host that died before finishing."""
    prefix = f".{out_dir.name}{_PARTIAL_TAG}{socket.gethostname()}-"
    if not out_dir.parent.is_dir():
        return
    for entry in out_dir.parent.iterdir():
        if not (entry.is_dir() and entry.name.startswith(prefix)):
            continue
        # "<pid>-t<start time in ms>-<random>" (older folders: "<pid>-<random>")
        parts = entry.name[len(prefix):].split("-")
        started = parts[1][1:] if len(parts) > 2 and parts[1][:1] == "t" else ""
        if parts[0].isdigit() and not procs.is_alive(
            int(parts[0]), int(started) / 1000 if started.isdigit() else None
        ):
            shutil.rmtree(entry, ignore_errors=True)


def generate_synthetic(out_dir: Path, *, size: str = "default", seed: int = 0,
                       workers: int | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the corpus to out_dir (wav/, metadata.csv, corpus.json) and return out_dir.

    Generation happens in a temporary sibling folder renamed into place when complete, so a
    half-written corpus is never seen. If out_dir already holds this exact corpus it is reused.
    """
    spec = _check_size(size)
    seed = _check_seed(seed)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if _is_complete(out_dir) and _describes(out_dir, size, seed):
            return out_dir
        if out_dir.is_file() or any(out_dir.iterdir()):
            raise CorpusError(f"{out_dir} already exists and is not the synthetic corpus "
                              f"(size={size}, seed={seed}); choose an empty or new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_partials(out_dir)
    started = round(1000 * (procs.start_time(os.getpid()) or 0))
    tmp = out_dir.parent / (f".{out_dir.name}{_PARTIAL_TAG}{socket.gethostname()}-{os.getpid()}"
                            f"-t{started}-{uuid.uuid4().hex[:8]}")
    (tmp / "wav").mkdir(parents=True)
    try:
        rows = _render_all(spec, seed, tmp / "wav", workers, progress)
        _write_metadata(tmp, rows)
        counts = {"utterances": len(rows), "speakers": spec.speakers,
                  "per_emotion": spec.per_emotion,
                  "by_label": {e: sum(r["label"] == e for r in rows) for e in PAPER_EMOTIONS}}
        info = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
                "sample_rate": SAMPLE_RATE, "counts": counts,
                "total_seconds": round(sum(float(r["duration"]) for r in rows), 3),
                "synthetic": True, "notice": SYNTHETIC_NOTICE}
        (tmp / "corpus.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if _is_complete(out_dir):  # another process finished the same corpus first
                shutil.rmtree(tmp, ignore_errors=True)
                return out_dir
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _describes(root: Path, size: str, seed: int) -> bool:
    try:
        info = json.loads((root / "corpus.json").read_text())
    except (OSError, ValueError):
        return False
    return (info.get("generator_version") == GENERATOR_VERSION and info.get("size") == size
            and info.get("seed") == seed)


def _render_all(spec: CorpusSize, seed: int, wav_dir: Path, workers: int | None,
                progress: Callable[[int, int], None] | None) -> list[dict]:
    jobs = _plan(spec, seed)
    total = len(jobs)
    workers = min(workers or os.cpu_count() or 1, total)
    chunk = max(1, min(8, total // (workers * 4) or 1))
    chunks = [jobs[i:i + chunk] for i in range(0, total, chunk)]
    rows: list[dict] = []
    if progress:
        progress(0, total)
    if workers == 1:
        for c in chunks:
            rows += _render_chunk(c, str(wav_dir))
            if progress:
                progress(len(rows), total)
    else:
        with ProcessPoolExecutor(workers, mp_context=_mp_context()) as pool:
            futures = [pool.submit(_render_chunk, c, str(wav_dir)) for c in chunks]
            for fut in as_completed(futures):
                rows += fut.result()
                if progress:
                    progress(len(rows), total)
    order = {job.utt_id: i for i, job in enumerate(jobs)}
    return sorted(rows, key=lambda r: order[r["utt_id"]])


def _mp_context() -> BaseContext:
    """fork on Linux, spawn elsewhere.

    Workers run only numpy, scipy and soundfile, so fork is safe for them even in a threaded
    caller, and unlike spawn it does not re-import the caller's main module (which breaks
    scripts without an `if __name__ == "__main__"` guard).
    """
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _write_metadata(root: Path, rows: list[dict]) -> None:
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def default_root(size: str = "default", seed: int = 0) -> Path:
    """Where the generated corpus of this size and seed lives in the cache."""
    _check_size(size)
    return cache_dir() / "synthetic" / f"v{GENERATOR_VERSION}-{size}-seed{_check_seed(seed)}"


def load_synthetic(root: str | Path | None = None, *, classes: str = "paper",
                   size: str = "default", seed: int = 0,
                   progress: Callable[[int, int], None] | None = None,
                   **_ignored: object) -> Manifest:
    """The synthetic corpus as a Manifest; with root None it is generated in the cache if missing.

    `classes` may be "paper" or "all": the corpus has exactly the paper's four emotions.
    """
    _check_classes(classes)
    if root is None:
        root = default_root(size, seed)
        if root.exists() and not _is_complete(root):
            shutil.rmtree(root)  # our own cache, damaged by hand: rebuild it
        if not root.exists():
            generate_synthetic(root, size=size, seed=seed, progress=progress)
    root = Path(root).expanduser().resolve()
    if not (root / "metadata.csv").is_file():
        raise CorpusError(f"{root} is not a synthetic corpus (no metadata.csv); generate one "
                          "with generate_synthetic() or leave the root empty to use the cache")
    return Manifest(corpus="synthetic", root=str(root), labels=PAPER_EMOTIONS,
                    utterances=_read_metadata(root))


def list_synthetic(root: str | Path | None = None, *, classes: str = "paper",
                   size: str = "default", seed: int = 0, **_ignored: object) -> Manifest:
    """The listing `load_synthetic` would return (ids, labels, speakers), without generating
    audio: read from `root` when one is given, else planned from the size. Lets a split that
    the corpus cannot give (more folds than speakers) be refused before a run folder exists.
    Durations of a planned listing are 0: the clips do not exist yet."""
    if root is not None:
        return load_synthetic(root, classes=classes)
    _check_classes(classes)
    planned = default_root(size, seed)
    utterances = [
        Utterance(utt_id=job.utt_id, path=str(planned / "wav" / f"{job.utt_id}.wav"),
                  label=PAPER_EMOTIONS[job.emotion], speaker=job.speaker_name,
                  group=job.speaker_name, duration=0.0, corpus="synthetic")
        for job in _plan(_check_size(size), _check_seed(seed))
    ]
    return Manifest(corpus="synthetic", root=str(planned), labels=PAPER_EMOTIONS,
                    utterances=utterances)


def _read_metadata(root: Path) -> list[Utterance]:
    utterances = []
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(METADATA_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(f"{root / 'metadata.csv'} lacks columns {sorted(missing)}")
        for row in reader:
            if row["label"] not in PAPER_EMOTIONS:
                raise CorpusError(f"{root / 'metadata.csv'}: unknown label {row['label']!r}")
            utterances.append(Utterance(
                utt_id=row["utt_id"], path=str(root / row["file"]), label=row["label"],
                speaker=row["speaker"], group=row["group"], duration=float(row["duration"]),
                corpus="synthetic"))
    if not utterances:
        raise CorpusError(f"{root / 'metadata.csv'} lists no utterances")
    return utterances


__all__ = [
    "GENERATOR_VERSION", "SIZES", "SYNTHETIC_NOTICE", "CorpusSize", "default_root",
    "generate_synthetic", "load_synthetic", "render_utterance",
]
