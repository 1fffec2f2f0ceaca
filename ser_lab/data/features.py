"""Spectrogram features exactly as the paper specifies, their normalisation and their cache.

The paper (../shared/docs/method.md, "Features"): 16 kHz audio, 40 ms window (640 samples),
10 ms hop (160 samples), DFT length 1024, either the STFT magnitude spectrogram (513 bins) or a
128-band Mel spectrogram; utterances cut at 14 s. Where the paper is silent we choose:

- Window: periodic Hann of 640 samples, zero-padded to 1024 (as librosa centres it; the position
  of the zero padding only changes the phase, so we let the FFT pad at the end).
- Framing: `center=True` like librosa: frame t is centred on sample t * hop, the signal is
  zero-padded at both ends (librosa's default pad mode since 0.10), so an n-sample clip gives
  exactly 1 + n // 160 frames.
- Mel: a 128-band filterbank from 0 to 8000 Hz on the Slaney mel scale with Slaney (area)
  normalisation, i.e. `librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=0, fmax=8000,
  htk=False, norm="slaney")`. It is computed here by a line-for-line port of that function (a test
  checks equality with librosa) so that the inference path and every worker process do not pay
  the ~2 s import of librosa/scipy. Applied to the power spectrum (|X|^2).
- Log compression: natural log of (power + 1e-10), for both kinds (for STFT this is 2 ln|X|).
  The 1e-10 floor keeps the log finite in digital silence and zero-padded frames (-23 nats, i.e.
  -100 dB) and lies below the power a 16-bit quantisation noise floor leaves in a bin
  (~2e-8 with this window), so real signal is never clipped by it.
- Normalisation: per frequency bin, mean and standard deviation over all frames of the training
  utterances (`NormStats`), std floored at `STD_FLOOR`.

Output of `compute_features`: (frames, n_bins) float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ser_lab import paths
from ser_lab.choices import KINDS, NORMALISATIONS
from ser_lab.data.audio import SAMPLE_RATE, audio_fingerprint, load_audio
from ser_lab.data.corpora.base import Manifest, Problem
from ser_lab.errors import AudioError, ConfigError
from ser_lab.fileio import atomic_write_bytes, atomic_write_json

# Bump when the computation changes in a way that makes cached features stale.
FEATURE_VERSION = 2  # 2: decoding drops exact-zero padding at both ends
LOG_FLOOR = 1e-10
# Smallest std NormStats divides by (log-power units). Speech bins have std ~1-5; the floor only
# matters for bins that are (nearly) constant in the training data, e.g. empty bands of
# upsampled narrow-band audio, which would otherwise blow up tiny test-time deviations.
STD_FLOOR = 1e-2


@dataclass(frozen=True)
class FeatureConfig:
    """How utterances become spectrograms (defaults = the paper's settings)."""

    kind: str = "mel"  # "mel" (128 bands) or "stft" (n_fft // 2 + 1 = 513 bins)
    sample_rate: int = SAMPLE_RATE  # Hz; load_audio always delivers 16 kHz
    win_length: int = 640  # samples, 40 ms
    hop_length: int = 160  # samples, 10 ms
    n_fft: int = 1024  # DFT length; the window is zero-padded to it
    n_mels: int = 128  # Mel bands (kind="mel" only)
    max_seconds: float = 14.0  # utterances are cut here

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"feature kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("sample_rate", "win_length", "hop_length", "n_fft", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.sample_rate != SAMPLE_RATE:
            raise ConfigError(
                f"sample_rate must be {SAMPLE_RATE} (load_audio resamples everything to it), "
                f"got {self.sample_rate}"
            )
        if self.win_length > self.n_fft:
            raise ConfigError(
                f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})"
            )
        if self.kind == "mel" and self.n_mels > self.n_fft // 2 + 1:
            raise ConfigError(f"n_mels ({self.n_mels}) must not exceed n_fft // 2 + 1")
        max_s = self.max_seconds
        if isinstance(max_s, bool) or not isinstance(max_s, (int, float)) or not max_s > 0:
            raise ConfigError(f"max_seconds must be a positive number, got {max_s!r}")

    @property
    def n_bins(self) -> int:
        """Feature dimension: n_mels for "mel", n_fft // 2 + 1 for "stft"."""
        return self.n_mels if self.kind == "mel" else self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """Build from `to_dict()` output; missing keys take defaults, unknown keys are refused."""
        if not isinstance(data, dict):
            raise ConfigError(f"feature config must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown feature config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def key(self) -> str:
        """Short stable hash of the settings (and FEATURE_VERSION): the cache's config key."""
        payload = {"version": FEATURE_VERSION, **self.to_dict()}
        payload["max_seconds"] = float(payload["max_seconds"])
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- spectrograms


def compute_features(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log power spectrogram (frames, n_bins) float32 of 16 kHz mono samples.

    A strided view of the frames, scipy's float32 rfft (numpy's float32 rfft is ~8x slower) and
    the Mel filterbank as a sparse matrix (each FFT bin feeds at most two bands; this also keeps
    BLAS threads out of it): about 3-4 ms for a 5 s clip on one idle core. Window and filterbank
    are built once per process (the first call also imports scipy.fft, ~0.5 s).
    """
    import scipy.fft

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ConfigError(f"samples must be a 1-D mono signal, got shape {x.shape}")
    n_frames = 1 + x.size // cfg.hop_length
    # Frame t covers the window centred on sample t * hop (librosa's center=True framing).
    left = cfg.n_fft // 2 - (cfg.n_fft - cfg.win_length) // 2
    right = max(0, (n_frames - 1) * cfg.hop_length + cfg.win_length - left - x.size)
    padded = np.pad(x, (left, right))
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.win_length)
    frames = frames[:: cfg.hop_length][:n_frames]  # (T, win)
    spec = scipy.fft.rfft(frames * _window(cfg.win_length), n=cfg.n_fft, axis=1)  # (T, n_fft/2+1)
    power = spec.real**2 + spec.imag**2
    if cfg.kind == "mel":
        mel_basis = _sparse_mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels)
        power = (mel_basis @ power.T).T  # (T, n_mels)
    out = np.log(power + np.float32(LOG_FLOOR), dtype=np.float32)
    return np.ascontiguousarray(out)


@lru_cache(maxsize=8)
def _window(win_length: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window("hann", N), as librosa uses)."""
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    window = window.astype(np.float32)
    window.flags.writeable = False
    return window


@lru_cache(maxsize=8)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32: librosa.filters.mel(..., fmin=0, fmax=sr/2,
    htk=False, norm="slaney"), ported line for line (see the module docstring for why)."""
    fmin, fmax = 0.0, sample_rate / 2.0
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    mel_f = _mel_to_hz(mel_edges)  # band edges in Hz
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])  # Slaney: equal area per band
    weights *= enorm[:, np.newaxis]
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=8)
def _sparse_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> Any:
    """The filterbank as a scipy CSR matrix (about 2 non-zeros per FFT bin)."""
    import scipy.sparse

    return scipy.sparse.csr_matrix(_mel_filterbank(sample_rate, n_fft, n_mels))


_F_SP = 200.0 / 3  # Slaney mel scale: linear below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0  # ... logarithmic above


def _hz_to_mel(hz: float) -> float:
    if hz >= _MIN_LOG_HZ:
        return _MIN_LOG_MEL + math.log(hz / _MIN_LOG_HZ) / _LOGSTEP
    return hz / _F_SP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    hz = _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    hz[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return hz


# --------------------------------------------------------------------------- normalisation


@dataclass
class NormStats:
    """Per-frequency-bin mean and std of the training frames; `apply` standardises features."""

    mean: np.ndarray  # (n_bins,) float32
    std: np.ndarray  # (n_bins,) float32, >= STD_FLOOR

    @classmethod
    def fit(cls, features: Sequence[np.ndarray]) -> NormStats:
        """Statistics over every frame of the given (training) utterances.

        Merges per-utterance moments (Chan et al.'s parallel variance) in float64, so a large
        corpus is never concatenated in memory and the result does not depend on float32 sums.
        """
        if len(features) == 0:
            raise ConfigError("NormStats.fit needs at least one utterance, got none")
        n_bins = np.asarray(features[0]).shape[-1]
        count, mean, m2 = 0, np.zeros(n_bins), np.zeros(n_bins)
        for i, feats in enumerate(features):
            x = np.asarray(feats, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != n_bins:
                raise ConfigError(
                    f"utterance {i}: expected (frames, {n_bins}) features, got shape {x.shape}"
                )
            n = x.shape[0]
            if n == 0:
                continue
            x_mean = x.mean(axis=0)
            x_m2 = ((x - x_mean) ** 2).sum(axis=0)
            delta = x_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + x_m2 + delta**2 * (count * n / total)
            count = total
        if count == 0:
            raise ConfigError("NormStats.fit: the utterances hold no frames")
        std = np.maximum(np.sqrt(m2 / count), STD_FLOOR)
        return cls(mean=mean.astype(np.float32), std=std.astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(frames, n_bins) -> standardised float32 of the same shape."""
        x = np.asarray(x)
        if x.shape[-1] != self.mean.shape[0]:
            raise ConfigError(
                f"features have {x.shape[-1]} bins but the statistics {self.mean.shape[0]}"
            )
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormStats:
        try:
            mean = np.asarray(data["mean"], dtype=np.float32)
            std = np.asarray(data["std"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"normalisation stats need 'mean' and 'std' lists ({exc})") from exc
        if mean.ndim != 1 or mean.shape != std.shape or mean.size == 0:
            raise ConfigError(
                f"normalisation stats: mean {mean.shape} and std {std.shape} must be equal 1-D"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ConfigError("normalisation stats must be finite with a positive std")
        return cls(mean=mean, std=std)


def normalise(
    features: Sequence[np.ndarray], how: str, norm: NormStats | None, speakers: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Standardise every utterance per frequency bin: `how` = "corpus" with `norm` (the
    statistics of a fold's training part), "speaker" with the statistics of all the utterances
    of the same speaker (`speakers[i]` is utterance i's), computed here. The one definition used
    by training, re-scoring, cross-corpus scoring and (one clip = one speaker) inference."""
    if how == "corpus":
        if norm is None:
            raise ConfigError("corpus normalisation needs the training statistics")
        return [norm.apply(f) for f in features]
    if how != "speaker":
        raise ConfigError(f"normalise must be one of {NORMALISATIONS}, got {how!r}")
    if speakers is None or len(speakers) != len(features):
        raise ConfigError("per-speaker normalisation needs one speaker per utterance")
    by_speaker: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(str(speaker), []).append(i)
    out: list[np.ndarray] = [np.empty(0)] * len(features)
    for members in by_speaker.values():
        stats = NormStats.fit([features[i] for i in members])
        for i in members:
            out[i] = stats.apply(features[i])
    return out


# --------------------------------------------------------------------------- cache


class FeatureCache:
    """Features on disk, keyed by (audio content fingerprint, FeatureConfig.key()).

    Layout under `root` (default: paths.cache_dir() / "features"):
      <cfg key>/<fp[:2]>/<fp>.npy          one file's features, written atomically
      <cfg key>/<fp[:2]>/<fp>.error.json   why a file could not be used (a warm pass does not
                                           decode known-bad files again either)
      index/<hash of corpus root>.json     {abs path: [size, mtime_ns, fingerprint]}
      <cfg key>/packs/<hash of paths>.json the last extraction of one manifest: per utterance
      <cfg key>/packs/<content hash>.npy   its fingerprint and frame count (or the reason it
                                           failed), and all its features in one array

    Why three parts. Entries are content-addressed, so renamed or duplicated files share them
    and a changed file only recomputes itself. The index lets a warm pass skip hashing: a file
    whose size and mtime_ns are unchanged keeps its fingerprint (a file changed in place gets a
    new mtime and is re-hashed). The pack makes a warm pass over an unchanged manifest one stat
    per file plus one sequential read, instead of hundreds of small-file opens (each ~0.2-0.7 ms
    on a busy machine, which would cap the warm speed-up far below 20x). It costs a second copy
    of the features on disk. Writers only ever replace whole files atomically, so concurrent
    runs can at worst redo work, never read a half-written entry.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.cache_dir() / "features"

    def _entry(self, fingerprint: str, cfg: FeatureConfig, suffix: str) -> Path:
        return self.root / cfg.key() / fingerprint[:2] / f"{fingerprint}{suffix}"

    def get(self, fingerprint: str, cfg: FeatureConfig) -> np.ndarray | None:
        """The cached features, or None (missing, or unreadable/wrong shape: treated as a miss)."""
        try:
            x = np.load(self._entry(fingerprint, cfg, ".npy"), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if x.ndim != 2 or x.shape[1] != cfg.n_bins or x.dtype != np.float32:
            return None
        return x

    def put(self, fingerprint: str, cfg: FeatureConfig, features: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(features, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self._entry(fingerprint, cfg, ".npy"), buf.getvalue())

    def get_error(self, fingerprint: str, cfg: FeatureConfig) -> str | None:
        """The recorded reason a file with this content could not be used, if any."""
        try:
            data = json.loads(self._entry(fingerprint, cfg, ".error.json").read_text("utf-8"))
            return str(data["reason"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put_error(self, fingerprint: str, cfg: FeatureConfig, reason: str) -> None:
        atomic_write_json(self._entry(fingerprint, cfg, ".error.json"), {"reason": reason})

    # -- path index: (path, size, mtime_ns) -> fingerprint

    def _index_path(self, corpus_root: str) -> Path:
        digest = hashlib.sha256(os.path.abspath(corpus_root).encode()).hexdigest()[:16]
        return self.root / "index" / f"{digest}.json"

    def load_index(self, corpus_root: str) -> dict[str, list]:
        """{abs path: [size, mtime_ns, fingerprint]} for files under one corpus root."""
        try:
            data = json.loads(self._index_path(corpus_root).read_text("utf-8"))
            files = data["files"]
            return files if isinstance(files, dict) else {}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def save_index(self, corpus_root: str, files: dict[str, list]) -> None:
        payload = {"root": os.path.abspath(corpus_root), "files": files}
        atomic_write_json(self._index_path(corpus_root), payload)

    # -- packs: one manifest's features in one file

    def _pack_meta_path(self, paths_: Sequence[str], cfg: FeatureConfig) -> Path:
        digest = hashlib.sha256("\n".join(paths_).encode()).hexdigest()[:16]
        return self.root / cfg.key() / "packs" / f"{digest}.json"

    def load_pack(
        self, paths_: Sequence[str], fingerprints: Sequence[str | None], cfg: FeatureConfig
    ) -> list[tuple[np.ndarray | None, str | None]] | None:
        """(features, None) or (None, reason) per file if the pack of exactly these files with
        exactly these fingerprints (None: file missing) exists; otherwise None."""
        meta_path = self._pack_meta_path(paths_, cfg)
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            if meta["fingerprints"] != list(fingerprints):
                return None
            frames, reasons = meta["frames"], meta["reasons"]
            data = np.load(meta_path.parent / meta["data"], allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            return None
        lengths = [max(int(n), 0) for n in frames]
        if data.dtype != np.float32 or data.shape != (sum(lengths), cfg.n_bins):
            return None
        pieces = np.split(data, np.cumsum(lengths)[:-1]) if lengths else []
        return [
            (piece, None) if n >= 0 else (None, str(reason))
            for piece, n, reason in zip(pieces, frames, reasons, strict=True)
        ]

    def save_pack(
        self,
        paths_: Sequence[str],
        fingerprints: Sequence[str | None],
        cfg: FeatureConfig,
        results: Sequence[tuple[np.ndarray | None, str | None]],
    ) -> None:
        """Store one manifest's results: the data file first, then the metadata naming it."""
        frames = [-1 if feats is None else int(feats.shape[0]) for feats, _ in results]
        meta = {
            "fingerprints": list(fingerprints),
            "frames": frames,
            "reasons": [reason if feats is None else None for feats, reason in results],
        }
        # The data file is named by its content, so concurrent writers write the same bytes.
        content = json.dumps([cfg.key(), meta["fingerprints"], frames]).encode()
        meta["data"] = hashlib.sha256(content).hexdigest()[:16] + ".npy"
        meta_path = self._pack_meta_path(paths_, cfg)
        old_data = None
        try:
            old_data = json.loads(meta_path.read_text("utf-8")).get("data")
        except (OSError, ValueError, AttributeError):
            pass
        arrays = [feats for feats, _ in results if feats is not None]
        _atomic_save_rows(meta_path.parent / meta["data"], arrays, cfg.n_bins)
        atomic_write_json(meta_path, meta)
        if isinstance(old_data, str) and old_data != meta["data"]:
            with contextlib.suppress(OSError):
                (meta_path.parent / Path(old_data).name).unlink()


def _atomic_save_rows(path: Path, arrays: Sequence[np.ndarray], n_bins: int) -> None:
    """Write the row-concatenation of `arrays` as one float32 .npy, streamed (never building
    the concatenated array in memory), then fsync and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    total = sum(a.shape[0] for a in arrays)
    header = {"descr": "<f4", "fortran_order": False, "shape": (total, n_bins)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            for a in arrays:
                f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- corpus extraction


@dataclass
class CorpusFeatures:
    """Features of every usable utterance, in the order of `manifest.utterances`."""

    manifest: Manifest  # the input manifest minus unusable files (added to its `problems`)
    features: list[np.ndarray]  # (frames, n_bins) float32 each


@dataclass(frozen=True)
class _Outcome:
    fingerprint: str | None  # None when the file could not be read at all
    features: np.ndarray | None
    reason: str | None  # why the file is unusable, when features is None


def extract_corpus(
    manifest: Manifest,
    cfg: FeatureConfig,
    *,
    cache: FeatureCache | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CorpusFeatures:
    """Features for every utterance of `manifest`, in manifest order.

    Files that cannot be used (an AudioError: unreadable, too short, silent...) are dropped from
    the returned manifest and recorded in its `problems` with the error message, never silently.
    `cache=None` computes everything and stores nothing; pass `FeatureCache()` to use the
    on-disk cache (a warm pass then hashes, decodes and transforms nothing). `workers` > 1
    (default os.cpu_count()) decodes in a process pool; `progress(done, total)` is called as
    files finish (cache hits included).
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    paths_ = [u.path for u in manifest.utterances]
    if cache is None:
        outcomes = _compute_all(paths_, cfg, None, [None] * len(paths_), workers, progress)
    else:
        outcomes = _extract_cached(manifest.root, paths_, cfg, cache, workers, progress)
    kept, features, problems = [], [], list(manifest.problems)
    for utt, outcome in zip(manifest.utterances, outcomes, strict=True):
        if outcome.features is None:
            problems.append(Problem(path=utt.path, reason=outcome.reason or "unusable audio"))
        else:
            kept.append(utt)
            features.append(outcome.features)
    # replace() keeps a Manifest subclass and its extra fields (e.g. CorpusManifest.excluded).
    out = dataclasses.replace(manifest, utterances=kept, problems=problems)
    return CorpusFeatures(manifest=out, features=features)


def _extract_cached(
    corpus_root: str,
    paths_: list[str],
    cfg: FeatureConfig,
    cache: FeatureCache,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> list[_Outcome]:
    """Pack if the manifest is unchanged, else per-file entries, else compute; then update the
    index and the pack."""
    index = cache.load_index(corpus_root)
    stats: list[os.stat_result | None] = []
    known: list[str | None] = []  # fingerprint from the index, None if unknown or missing
    for path in paths_:
        try:
            st = os.stat(path)
        except OSError:
            st = None
        stats.append(st)
        known.append(_indexed_fingerprint(index, path, st))
    unknown = any(fp is None and st is not None for fp, st in zip(known, stats, strict=True))
    packed = None if unknown else cache.load_pack(paths_, known, cfg)
    if packed is not None:
        outcomes = [_Outcome(fp, feats, reason) for fp, (feats, reason) in zip(known, packed)]
        for done in range(1, len(outcomes) + 1):
            if progress is not None:
                progress(done, len(outcomes))
        return outcomes

    outcomes = _compute_all(paths_, cfg, cache, known, workers, progress)
    changed = False
    for path, st, outcome in zip(paths_, stats, outcomes, strict=True):
        if st is not None and outcome.fingerprint is not None:
            entry = [st.st_size, st.st_mtime_ns, outcome.fingerprint]
            if index.get(path) != entry:
                index[path] = entry
                changed = True
    if changed:
        cache.save_index(corpus_root, index)
    fingerprints = [o.fingerprint if st is not None else None for o, st in zip(outcomes, stats)]
    if all(fp is not None or st is None for fp, st in zip(fingerprints, stats, strict=True)):
        cache.save_pack(paths_, fingerprints, cfg, [(o.features, o.reason) for o in outcomes])
    return outcomes


def _indexed_fingerprint(
    index: dict[str, list], path: str, st: os.stat_result | None
) -> str | None:
    """The fingerprint recorded for `path`, if its size and mtime are unchanged."""
    entry = index.get(path)
    if st is None or not (isinstance(entry, list) and len(entry) == 3):
        return None
    size, mtime_ns, fingerprint = entry
    if size != st.st_size or mtime_ns != st.st_mtime_ns or not isinstance(fingerprint, str):
        return None
    return fingerprint


def _compute_all(
    paths_: list[str],
    cfg: FeatureConfig,
    cache: FeatureCache | None,
    known: list[str | None],
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> list[_Outcome]:
    """Per-file cache hits in this process, the rest through `_extract_one` (maybe a pool)."""
    total = len(paths_)
    outcomes: list[_Outcome | None] = [None] * total
    done = 0

    def finish(i: int, outcome: _Outcome) -> None:
        nonlocal done
        outcomes[i] = outcome
        done += 1
        if progress is not None:
            progress(done, total)

    todo = []
    for i, fingerprint in enumerate(known):
        hit = _cached_entry(cache, fingerprint, cfg) if cache and fingerprint else None
        if hit is not None:
            finish(i, hit)
        else:
            todo.append(i)
    cache_root = str(cache.root) if cache is not None else None
    jobs = [(paths_[i], cfg, cache_root) for i in todo]
    for k, outcome in _run_jobs(jobs, workers):
        finish(todo[k], outcome)
    return [o for o in outcomes if o is not None]


def _cached_entry(cache: FeatureCache, fingerprint: str, cfg: FeatureConfig) -> _Outcome | None:
    features = cache.get(fingerprint, cfg)
    if features is not None:
        return _Outcome(fingerprint, features, None)
    reason = cache.get_error(fingerprint, cfg)
    if reason is not None:
        return _Outcome(fingerprint, None, reason)
    return None


def _run_jobs(
    jobs: list[tuple[str, FeatureConfig, str | None]], workers: int
) -> Iterator[tuple[int, _Outcome]]:
    """Run `_extract_one` over the jobs, in a process pool when workers > 1.

    Yields (job index, outcome) as each job finishes, so the caller can report progress.
    """
    if workers == 1 or len(jobs) <= 1:
        for k, job in enumerate(jobs):
            yield k, _extract_one(*job)
        return
    # forkserver, not fork: the caller may be multi-threaded (the app, torch), and fork()ing a
    # threaded process can deadlock the child. The server preloads this module once.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ser_lab.data.features"])
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        pending: dict[Future, int] = {
            pool.submit(_extract_one, *job): k for k, job in enumerate(jobs)
        }
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield pending.pop(fut), fut.result()
        finally:  # on an error (or an abandoned generator) do not run the remaining jobs
            for fut in pending:
                fut.cancel()


def _extract_one(path: str, cfg: FeatureConfig, cache_root: str | None) -> _Outcome:
    """Fingerprint, then cache lookup, else decode + features (+ store). Runs in a worker."""
    try:
        fingerprint = audio_fingerprint(path)
    except AudioError as exc:
        return _Outcome(None, None, str(exc))
    cache = FeatureCache(cache_root) if cache_root is not None else None
    if cache is not None:
        hit = _cached_entry(cache, fingerprint, cfg)
        if hit is not None:
            return hit
    try:
        clip = load_audio(path, max_seconds=cfg.max_seconds)
    except AudioError as exc:
        if cache is not None:
            cache.put_error(fingerprint, cfg, str(exc))
        return _Outcome(fingerprint, None, str(exc))
    features = compute_features(clip.samples, cfg)
    if cache is not None:
        cache.put(fingerprint, cfg, features)
    return _Outcome(fingerprint, features, None)
