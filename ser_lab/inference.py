"""Clip inference: one audio clip in, the run's view of it out.

`Predictor.from_run(run, fold)` loads a trained fold once (weights with torch's safe
`weights_only` loader, normalisation statistics, trained class centers, label names, feature
settings); `predictor.predict(clip)` then runs the exact training pipeline on one clip:

    load_audio (checked decode, 16 kHz mono, cut at 14 s)   -> samples
    compute_features with the run's own FeatureConfig       -> log spectrogram (T, F)
    NormStats of the fold's training part                   -> normalised features
      (a model trained with per-speaker statistics: the clip's own, one clip = one speaker)
    CnnBiGru forward                                        -> z (64,), softmax probabilities
    ||z - c_j|| for every trained class center c_j          -> center distances (C,)
    the run's PCA and UMAP maps (`transform` only)          -> position on each map
    brute-force Euclidean search among the training z      -> k nearest training utterances

Because it is the same pipeline, a training utterance's own file gets back the probabilities
and z stored in the fold's embeddings.npz (up to float rounding) — for a model trained with
the training part's statistics. A model trained per speaker saw each utterance standardised
with its speaker's statistics; a lone clip has only its own, so its z is near, not equal to,
the stored one.

Loading is split so the first answer is quick: the model is loaded by `from_run`; the fold's
embeddings and the maps (through `ser_lab.analysis.maps.project_fold`, which caches them on disk)
are loaded on the first call that needs them, and the corpus manifest (for the neighbours'
audio paths) on the first neighbour search. Each is loaded once and kept. `warm_up()` loads
everything in advance (e.g. in a background thread while the user picks a file).

Ensemble mode (`fold="ensemble"`): the probabilities are the mean of the softmax outputs of
every finished fold (each fold normalising the features with its own statistics); the
prediction is their argmax. z, the center distances, the map positions and the neighbours
come from ONE fold, the reference fold: fold 0, or the lowest finished fold if fold 0 was not
trained. (z spaces of different folds are unrelated, so averaging them would mean nothing.)

Upload bounds are checked BEFORE anything is decoded: at most `DEFAULT_MAX_UPLOAD_MB` MiB
(the app's `.streamlit/config.toml` server.maxUploadSize) and at most
`DEFAULT_MAX_INPUT_SECONDS` of declared input duration; both can be changed with the
environment variables SER_LAB_MAX_UPLOAD_MB / SER_LAB_MAX_INPUT_SECONDS or per call. Clips
longer than 14 s (the paper's cut) are cut, not refused (`truncated` says so). Unusable audio
raises the specific `ser_lab.errors.AudioError` subclass of `load_audio`, unchanged.

No NaN is ever returned as a result: `load_audio` bounds the samples, the features are checked
finite, a model with NaN or infinite weights is refused when loaded (`load_fold_model`), and a
forward pass whose z or probabilities are not finite raises `NonFiniteError` instead.

Speed (bench/inference.py; `timings` in every result says where the time went): one tensor
under `torch.inference_mode`; conv weights stored channels-last on the CPU (~1.5x faster
convolutions and pools); torch limited to `DEFAULT_THREADS` = 1 intra-op thread per forward
(with 2 threads on 2 shared cores it was 4-20x slower);
window and Mel filterbank cached by `ser_lab.data.features`; the training z kept as one contiguous
float32 array (an exact brute-force search is well under a millisecond for a corpus of this
size). Warm, a 5 s clip costs about 25 ms of CPU end to end.

Cold start: the PCA and UMAP maps are read from the run's disk cache; a UMAP map places a new
clip from the training z and their cached map positions (`ser_lab.analysis.projection.umap_place`), so
no umap model, numba (not even its import, ~2 s) or refit is needed. Only a map never computed
before is fitted on first use (then cached; the demo pair ships with its maps).
`warm_up(background=True)` right after `from_run` loads all of it while the user picks a file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ser_lab.config import TrainConfig
from ser_lab.data.audio import load_audio
from ser_lab.data.features import FeatureConfig, NormStats, compute_features, normalise
from ser_lab.errors import (
    ConfigError,
    InvalidSamplesError,
    NonFiniteError,
    RunError,
    SerLabError,
    TooShortAudioError,
)
from ser_lab.learn.model import CnnBiGru, min_frames, to_channels_last

DEFAULT_MAX_UPLOAD_MB = 20  # = server.maxUploadSize in .streamlit/config.toml (MiB)
DEFAULT_MAX_INPUT_SECONDS = 600.0  # declared duration of an input, before the cut at 14 s
ENV_MAX_UPLOAD_MB = "SER_LAB_MAX_UPLOAD_MB"
ENV_MAX_INPUT_SECONDS = "SER_LAB_MAX_INPUT_SECONDS"
MAP_METHODS = ("pca", "umap")
ENSEMBLE = "ensemble"
# torch intra-op threads for one clip on the CPU. One clip is a handful of small convolutions:
# a second thread gains little on an idle machine and costs a lot when the cores are shared
# (2 shared cores, 5 s clip: about 24 ms of CPU with 1 thread, about 90 ms with 2).
DEFAULT_THREADS = 1

log = logging.getLogger(__name__)
# Serialises the CPU forwards that change torch's (process-wide) thread count.
_THREADS_LOCK = threading.Lock()

Source = str | Path | bytes


# ----------------------------------------------------------------------------- limits


def _env_number(name: str, default: float) -> float:
    """A positive number from the environment variable `name`, else `default`."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def upload_limits() -> tuple[int, float]:
    """(max bytes, max input seconds) from the environment, else the defaults."""
    megabytes = _env_number(ENV_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB)
    seconds = _env_number(ENV_MAX_INPUT_SECONDS, DEFAULT_MAX_INPUT_SECONDS)
    return int(megabytes * 1024 * 1024), seconds


# ----------------------------------------------------------------------------- results


@dataclass
class ClipPrediction:
    """What a run makes of one clip (see the module docstring for each step)."""

    label_names: list[str]
    probabilities: np.ndarray  # (C,) float32, sums to 1 (ensemble: mean over folds)
    predicted: str  # label_names[argmax(probabilities)]
    z: np.ndarray  # (64,) float32, the learned feature (reference fold)
    center_distances: np.ndarray  # (C,) float32, ||z - c_j|| to each trained class center
    truncated: bool  # the clip was longer than the feature config's max_seconds and was cut
    duration: float  # seconds of audio used (after the cut)
    samples: np.ndarray  # (n,) float32 at 16 kHz, the audio used (for a waveform plot)
    features: np.ndarray  # (T, F) float32 log spectrogram BEFORE normalisation
    # (2,) position on the run's PCA / UMAP map; None without projection or when the run
    # cannot have that map (see Predictor.map_problems)
    pca_xy: np.ndarray | None = None
    umap_xy: np.ndarray | None = None
    # [{"utt_id", "label", "distance", "path"}], nearest first; path None if not available
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage, "total" included
    fold: int | str = 0  # the fold asked for (an int or "ensemble")
    reference_fold: int = 0  # the fold z, distances, maps and neighbours come from
    original_duration: float = 0.0  # seconds of the whole input (before the cut)


@dataclass
class _Fold:
    """One fold's trained network and what it needs at inference time."""

    index: int
    model: CnnBiGru
    norm: NormStats
    centers: np.ndarray  # (C, 64) float32
    label_names: list[str]
    feature_config: FeatureConfig
    normalise: str = "corpus"  # "speaker": a clip is standardised with its own statistics

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return normalise([features], self.normalise, self.norm, ["clip"])[0]


@dataclass
class _TrainingSet:
    """The reference fold's training utterances in z space (the neighbour index)."""

    z: np.ndarray  # (N, 64) float32, C-contiguous
    utt_ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) int


class _Timer:
    """Collects ms per named stage."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + 1000.0 * (now - self._t)
        self._t = now


# ----------------------------------------------------------------------------- predictor


class Predictor:
    """A trained fold (or all folds, `fold="ensemble"`) ready to classify clips.

    Build it with `Predictor.from_run`; it is safe to share between threads (the app keeps one
    per run behind `st.cache_resource`): each lazily loaded part is loaded once, under its own
    lock, so a slow part (a UMAP map) never holds up the others.
    """

    def __init__(
        self,
        run: Any,
        folds: list[_Fold],
        fold: int | str,
        device: torch.device,
        threads: int | None = DEFAULT_THREADS,
    ) -> None:
        if not folds:
            raise RunError("a predictor needs at least one trained fold")
        if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
            raise ConfigError(f"threads must be an int >= 1 or None, got {threads!r}")
        self.run = run
        self.folds = folds
        self.fold = fold
        self.device = device
        self.threads = None if threads is None else int(threads)
        self.reference = folds[0]
        self.max_bytes, self.max_input_seconds = upload_limits()
        self.load_timings: dict[str, float] = {}  # ms spent loading each part, once
        self.corpus_problem: str | None = None  # why neighbour paths are None, if they are
        self._locks = {name: threading.Lock() for name in ("training", "paths", *MAP_METHODS)}
        self._training: _TrainingSet | None = None
        self._maps: dict[str, Any] = {}
        self._paths: dict[str, str] | None = None
        self._min_frames = min_frames(self.reference.model.cfg)

    # -- construction

    @classmethod
    def from_run(
        cls,
        run: Any,
        fold: int | str = 0,
        device: str = "cpu",
        *,
        threads: int | None = DEFAULT_THREADS,
    ) -> Predictor:
        """Load fold `fold` of `run` (a `ser_lab.runs.Run`), or every finished fold when
        `fold == "ensemble"`, onto `device` ("cpu", "cuda", "mps" or "auto").

        `threads`: torch intra-op threads used for a CPU forward (set around each forward and
        restored after it; None leaves torch's setting alone).
        """
        from ser_lab.learn.evaluate import load_fold_model
        from ser_lab.learn.trainer import select_device

        t0 = time.perf_counter()
        dev = select_device(device)
        indices = _fold_indices(run, fold)
        folds = []
        for k in indices:
            model, payload = load_fold_model(run, k, dev)
            if dev.type == "cpu":
                to_channels_last(model)
            folds.append(_fold_from_payload(run, k, model, payload))
        _check_same_setup(run, folds)
        predictor = cls(run, folds, fold if fold == ENSEMBLE else int(fold), dev, threads)
        predictor.load_timings["load_model"] = 1000.0 * (time.perf_counter() - t0)
        return predictor

    # -- what was loaded

    @property
    def label_names(self) -> list[str]:
        return list(self.reference.label_names)

    @property
    def feature_config(self) -> FeatureConfig:
        return self.reference.feature_config

    @property
    def centers(self) -> np.ndarray:
        """(C, 64) trained class centers of the reference fold."""
        return self.reference.centers

    @property
    def reference_fold(self) -> int:
        """The fold z, center distances, maps and neighbours come from."""
        return self.reference.index

    # -- lazily loaded parts

    def training_set(self) -> _TrainingSet:
        """The reference fold's training z, utt_ids and labels (loaded once)."""
        if self._training is None:
            with self._locks["training"]:
                if self._training is None:
                    self._training = self._timed("load_embeddings", self._load_training)
        return self._training

    def map(self, method: str) -> Any:
        """The run's `ser_lab.analysis.maps.FoldMap` for "pca" or "umap", ready to `transform`
        (loaded once). A map that cannot be made (too few training points, umap not
        installed) raises the same error every time without trying again."""
        if method not in MAP_METHODS:
            raise ConfigError(f"unknown map {method!r} (expected one of {MAP_METHODS})")
        fold_map = self._maps.get(method)
        if fold_map is None:
            with self._locks[method]:
                fold_map = self._maps.get(method)
                if fold_map is None:
                    try:
                        fold_map = self._timed(f"load_{method}", lambda: self._load_map(method))
                    except (RunError, ImportError) as exc:
                        fold_map = exc
                    self._maps[method] = fold_map
        if isinstance(fold_map, Exception):
            raise fold_map
        return fold_map

    def paths(self) -> dict[str, str]:
        """{utt_id: audio path} from the run's corpus; empty if the corpus is gone."""
        if self._paths is None:
            with self._locks["paths"]:
                if self._paths is None:
                    self._paths = self._timed("load_corpus", self._load_paths)
        return self._paths

    def warm_up(
        self, *, projection: bool = True, neighbours: bool = True, background: bool = False
    ) -> threading.Thread | None:
        """Load now what the first `predict` would otherwise load (maps, index, paths).

        background=True does it in a daemon thread (returned) and returns at once, e.g. while
        the user picks a file: a `predict` that needs a part still loading waits for it, one
        that does not goes ahead. A failure there is logged; the `predict` that needs the
        part then tries again and raises it.
        """
        if background:
            thread = threading.Thread(
                target=self._warm_up_quietly,
                args=(projection, neighbours),
                name=f"ser_lab-warm-up-{self.run.run_id}",
                daemon=True,
            )
            thread.start()
            return thread
        if neighbours:
            self.training_set()
            self.paths()
        if projection:
            for method in MAP_METHODS:
                with contextlib.suppress(RunError, ImportError):  # see map_problems
                    self.map(method)
        return None

    def _warm_up_quietly(self, projection: bool, neighbours: bool) -> None:
        try:
            self.warm_up(projection=projection, neighbours=neighbours)
        except Exception as exc:  # noqa: BLE001 - predict() raises it again where it matters
            log.warning("warm-up of run %s failed: %s", self.run.run_id, exc)

    def _timed(self, name: str, load: Any) -> Any:
        t0 = time.perf_counter()
        out = load()
        self.load_timings[name] = 1000.0 * (time.perf_counter() - t0)
        return out

    # -- prediction

    def predict(
        self,
        source: Source,
        *,
        with_projection: bool = True,
        with_neighbours: bool = True,
        k: int = 5,
        max_bytes: int | None = None,
        max_seconds_input: float | None = None,
    ) -> ClipPrediction:
        """Classify one clip (a path or the bytes of an uploaded file).

        `max_bytes` / `max_seconds_input` override the upload bounds (None: the predictor's,
        from the environment or the defaults); both are checked before decoding. Raises the
        `AudioError` subclass of `load_audio` for unusable audio.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k (number of neighbours) must be an int >= 1, got {k!r}")
        timer = _Timer()
        clip = load_audio(
            source,
            max_seconds=self.feature_config.max_seconds,
            max_bytes=self.max_bytes if max_bytes is None else max_bytes,
            max_input_seconds=(
                self.max_input_seconds if max_seconds_input is None else max_seconds_input
            ),
        )
        timer.lap("decode")
        features = compute_features(clip.samples, self.feature_config)
        if not np.isfinite(features).all():
            raise InvalidSamplesError(f"{_name(source)}: the spectrogram holds NaN or infinite values")
        timer.lap("features")
        if len(features) < self._min_frames:
            raise TooShortAudioError(
                f"{_name(source)}: {clip.duration:.3f} s gives {len(features)} frames, the "
                f"network needs at least {self._min_frames}"
            )
        z, probabilities = self._forward(features)
        timer.lap("model")
        center_distances = np.linalg.norm(self.centers - z, axis=1).astype(np.float32)
        timer.lap("distances")
        pca_xy = umap_xy = None
        if with_projection:
            pca_xy, umap_xy = self._positions(z, timer)
        neighbours: list[dict[str, Any]] = []
        if with_neighbours:
            neighbours = self._neighbours(z, int(k), timer)
        names = self.label_names
        return ClipPrediction(
            label_names=names,
            probabilities=probabilities,
            predicted=names[int(np.argmax(probabilities))],
            z=z,
            center_distances=center_distances,
            truncated=clip.truncated,
            duration=clip.duration,
            samples=clip.samples,
            features=features,
            pca_xy=pca_xy,
            umap_xy=umap_xy,
            neighbours=neighbours,
            timings={**timer.ms, "total": sum(timer.ms.values())},
            fold=self.fold,
            reference_fold=self.reference_fold,
            original_duration=clip.original_duration,
        )

    def _forward(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z of the reference fold and the class probabilities (mean over the folds)."""
        lengths = torch.tensor([len(features)])
        probs = []
        z_ref = None
        with self._torch_threads(), torch.inference_mode():
            for f in self.folds:
                x = torch.from_numpy(f.standardise(features)).unsqueeze(0).to(self.device)
                z, logits = f.model(x, lengths)  # (1, 64), (1, C)
                probs.append(torch.softmax(logits.float(), dim=1)[0].cpu().numpy())
                if z_ref is None:
                    z_ref = z[0].float().cpu().numpy()
        mean = np.mean(probs, axis=0, dtype=np.float64) if len(probs) > 1 else probs[0]
        if not (np.isfinite(mean).all() and np.isfinite(z_ref).all()):
            raise NonFiniteError(
                f"run {self.run.run_id}: the network gives NaN or infinite outputs for this clip "
                "(its weights or statistics are not usable); no prediction is reported"
            )
        return z_ref.astype(np.float32), np.asarray(mean, dtype=np.float32)

    @contextlib.contextmanager
    def _torch_threads(self) -> Iterator[None]:
        """torch's intra-op thread count set to `self.threads` for a CPU forward, then put
        back (torch has only a process-wide setting, hence the lock)."""
        if self.threads is None or self.device.type != "cpu":
            yield
            return
        with _THREADS_LOCK:
            before = torch.get_num_threads()
            if before != self.threads:
                torch.set_num_threads(self.threads)
            try:
                yield
            finally:
                if before != self.threads:
                    torch.set_num_threads(before)

    def _positions(
        self, z: np.ndarray, timer: _Timer
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """z on the PCA and the UMAP map; None for a map the run cannot have (its reason is
        in `map_problems`)."""
        out: list[np.ndarray | None] = []
        for method in MAP_METHODS:
            loaded = method in self._maps
            try:
                fold_map = self.map(method)
            except (RunError, ImportError):
                fold_map = None
            if not loaded:
                timer.lap(f"load_{method}")
            if fold_map is None:
                out.append(None)
                continue
            xy = fold_map.transform(z[None, :])
            out.append(np.asarray(xy, dtype=np.float64)[0])
            timer.lap(f"projection_{method}")
        return out[0], out[1]

    @property
    def map_problems(self) -> dict[str, str]:
        """{method: why that map is unavailable} for the maps that failed to load."""
        return {m: str(v) for m, v in self._maps.items() if isinstance(v, Exception)}

    def _neighbours(self, z: np.ndarray, k: int, timer: _Timer) -> list[dict[str, Any]]:
        """The k training utterances nearest to z (Euclidean), nearest first."""
        fresh = self._training is None
        training = self.training_set()
        if fresh:
            timer.lap("load_embeddings")
        fresh = self._paths is None
        paths = self.paths()
        if fresh:
            timer.lap("load_corpus")
        distances = np.sqrt(np.square(training.z - z).sum(axis=1))  # exact, (N,)
        k = min(k, len(distances))
        nearest = np.argpartition(distances, k - 1)[:k] if k < len(distances) else np.arange(k)
        nearest = nearest[np.lexsort((nearest, distances[nearest]))]  # by distance, then index
        names = self.label_names
        out = []
        for i in nearest:
            utt_id = str(training.utt_ids[i])
            path = paths.get(utt_id)
            out.append(
                {
                    "utt_id": utt_id,
                    "label": names[int(training.labels[i])],
                    "distance": float(distances[i]),
                    "path": path if path is not None and os.path.isfile(path) else None,
                }
            )
        timer.lap("neighbours")
        return out

    # -- loaders

    def _load_training(self) -> _TrainingSet:
        emb = self.run.load_embeddings(self.reference_fold)
        train = np.asarray(emb["split"]).astype(str) == "train"
        what = f"run {self.run.run_id}: fold {self.reference_fold} embeddings"
        if not train.any():
            raise RunError(f"{what} hold no training utterance")
        z = np.ascontiguousarray(np.asarray(emb["z"], dtype=np.float32)[train])
        if z.ndim != 2 or z.shape[1] != self.centers.shape[1]:
            raise RunError(f"{what} have z of shape {z.shape}, expected (N, {self.centers.shape[1]})")
        labels = np.asarray(emb["labels"])[train].astype(np.int64)
        if labels.min() < 0 or labels.max() >= len(self.label_names):
            raise RunError(f"{what} hold class ids outside 0..{len(self.label_names) - 1}")
        utt_ids = np.asarray(emb["utt_ids"]).astype(str)[train]
        return _TrainingSet(z=z, utt_ids=utt_ids, labels=labels)

    def _load_map(self, method: str) -> Any:
        """The fold's map through `ser_lab.analysis.maps.project_fold` (its disk cache).

        Loaded once, under this map's lock, so two threads never compute the same map and
        `predict` only ever pays a transform.
        """
        from ser_lab.analysis.maps import project_fold

        fold_map = project_fold(self.run, self.reference_fold, method)
        fold_map.transform(self.centers[:1].astype(np.float64))
        return fold_map

    def _load_paths(self) -> dict[str, str]:
        """{utt_id: path} of the run's corpus; {} (with `corpus_problem` set) if unavailable.

        The synthetic corpus without a root lives in the cache and load_corpus would generate
        it again if it were missing; inference never generates a corpus, so a missing one is
        simply unavailable.
        """
        from ser_lab.data.corpora import load_corpus

        try:
            cfg = TrainConfig.from_dict(self.run.config["train"])
            root = cfg.root
            if cfg.corpus == "synthetic" and root is None:
                root = _synthetic_root(cfg.corpus_options)
                if root is None:
                    self.corpus_problem = "the synthetic corpus is not in the cache any more"
                    return {}
            manifest = load_corpus(cfg.corpus, root, classes=cfg.classes, **cfg.corpus_options)
        except (SerLabError, OSError, KeyError, TypeError, ValueError) as exc:
            self.corpus_problem = f"corpus unavailable: {exc}"
            return {}
        return {u.utt_id: u.path for u in manifest.utterances}


# ----------------------------------------------------------------------------- helpers


def _fold_indices(run: Any, fold: int | str) -> list[int]:
    """The folds to load, the reference fold first; RunError if one is not trained."""
    done = run.folds_done()
    if not done:
        raise RunError(f"run {run.run_id} has no finished fold: nothing to predict with")
    if isinstance(fold, str) and fold == ENSEMBLE:
        return sorted(done, key=lambda k: (k != 0, k))  # fold 0 first when it exists
    if isinstance(fold, (int, np.integer)) and not isinstance(fold, bool):
        if int(fold) not in done:
            raise RunError(
                f"run {run.run_id} has no finished fold {fold} "
                f"(finished: {', '.join(map(str, done))})"
            )
        return [int(fold)]
    raise ConfigError(f"fold must be a fold index or {ENSEMBLE!r}, got {fold!r}")


def _fold_from_payload(run: Any, k: int, model: CnnBiGru, payload: dict) -> _Fold:
    from ser_lab.learn.evaluate import normalisation

    missing = [
        key for key in ("norm", "centers", "label_names", "feature_config") if key not in payload
    ]
    if missing:
        raise RunError(f"run {run.run_id}: fold {k} model.pt lacks {', '.join(missing)}")
    try:
        norm = NormStats.from_dict(payload["norm"])
        feature_config = FeatureConfig.from_dict(payload["feature_config"])
        centers = np.asarray(payload["centers"].float().numpy(), dtype=np.float32)
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunError(f"run {run.run_id}: fold {k} model.pt is inconsistent ({exc})") from None
    names = [str(n) for n in payload["label_names"]]
    if centers.shape != (len(names), model.cfg.feature_dim) or model.cfg.n_classes != len(names):
        raise RunError(
            f"run {run.run_id}: fold {k} has {len(names)} label names, centers of shape "
            f"{centers.shape} and {model.cfg.n_classes} outputs"
        )
    if feature_config.n_bins != model.cfg.n_bins:
        raise RunError(
            f"run {run.run_id}: fold {k} features have {feature_config.n_bins} bins, the "
            f"network expects {model.cfg.n_bins}"
        )
    return _Fold(k, model, norm, centers, names, feature_config, normalisation(payload))


def _check_same_setup(run: Any, folds: list[_Fold]) -> None:
    """Folds averaged together must share their classes and features."""
    first = folds[0]
    for f in folds[1:]:
        if f.label_names != first.label_names or f.feature_config != first.feature_config:
            raise RunError(
                f"run {run.run_id}: folds {first.index} and {f.index} differ in classes or "
                "features and cannot be averaged"
            )


def _synthetic_root(options: dict) -> str | None:
    """The cached synthetic corpus of these options, if it is there."""
    from ser_lab.data.corpora.synthetic import default_root

    root = default_root(options.get("size", "default"), options.get("seed", 0))
    return str(root) if (root / "metadata.csv").is_file() else None


def _name(source: Source) -> str:
    from ser_lab.fileio import display_path

    return "uploaded bytes" if isinstance(source, (bytes, bytearray)) else f"'{display_path(source)}'"


__all__ = [
    "DEFAULT_MAX_INPUT_SECONDS",
    "DEFAULT_MAX_UPLOAD_MB",
    "ClipPrediction",
    "Predictor",
    "upload_limits",
]
