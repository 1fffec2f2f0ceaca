"""The classical baseline as a first-class arm: openSMILE eGeMAPS functionals + a linear SVM.

Why it is here. A learned feature space is worth showing only next to what hand-crafted
features do on the same folds. This module trains the standard reference of speech emotion
recognition, the 88 eGeMAPSv02 functionals (Eyben et al., IEEE TAC 2016) with a linear SVM,
on exactly the lab's folds (same corpus loader, `trainer.load_data`, same seed and protocol),
and writes a run folder of the same shape as a CNN run, so `compare`, `runs`, the report and
the app's pages read it unchanged:

    config.json           {"model": "egemaps-svm", "train": ClassicalConfig, ...}
    status.json, results.json (per fold: UA, WA, recall, confusion, the chosen C and its search)
    fold_k/svm.npz        the standardisation (mean, scale) and the SVM's coef / intercept as
                          plain arrays (read with allow_pickle=False; no pickle anywhere)
    fold_k/embeddings.npz z = the standardised 88-d functionals (the "feature space"), labels,
                          preds, probs, utt_ids, split, centers = class means of the
                          standardised training features

Per fold: the functionals are standardised with the mean and std of the fold's training part;
for each C of a small grid a LinearSVC (class_weight="balanced": inverse class frequency, like
the CNN's loss weights) is fitted on the training part and scored on the validation part; the C
with the best validation UA is kept (ties: the smaller C), the model fitted on the training part
with it is the fold's model. The test fold is never used to choose anything.

Probabilities are the softmax of the SVM's decision values (one-vs-rest margins): not
calibrated, but monotone in them, so argmax(probs) is the SVM's prediction. (Calibration with
CalibratedClassifierCV would need an inner split of the small training part and could change
the predicted class; the lab uses probs only to show confidence.)

openSMILE is an optional dependency (requirements-classical.txt): without it, everything else
in SER Lab works, and asking for this arm says in one line what to install.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from ser_lab import fileio, paths
from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, CorpusError, RunError, SerLabError
from ser_lab.learn.metrics import scores
from ser_lab.runs import read_npz

MODEL = "egemaps-svm"
FEATURE_SET = "eGeMAPSv02"
FEATURE_LEVEL = "Functionals"
N_FUNCTIONALS = 88
C_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0)  # decades; a first run (EmoDB, synthetic) often chose the then-smallest 0.001
MAX_ITER = 20_000
SVM_KEYS = ("mean", "scale", "coef", "intercept", "C", "label_names")
CACHE_VERSION = 1  # bump when the extraction changes in a way that makes cached functionals stale
INSTALL_HINT = "pip install -r requirements-classical.txt"
PROBABILITIES = "softmax of the LinearSVC decision values (not calibrated)"


# ----------------------------------------------------------------------------- openSMILE


def require_opensmile():
    """The `opensmile` module, or a ConfigError saying which extra to install."""
    try:
        import opensmile
    except (ImportError, OSError):  # not installed, or its native library does not load
        raise ConfigError(
            "the eGeMAPS + SVM baseline needs the optional package 'opensmile', which is not "
            f"installed: {INSTALL_HINT}"
        ) from None
    return opensmile


_SMILE_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _smile():
    opensmile = require_opensmile()
    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, FEATURE_SET),
        feature_level=getattr(opensmile.FeatureLevel, FEATURE_LEVEL),
    )


def opensmile_version() -> str:
    return str(require_opensmile().__version__)


def feature_names() -> list[str]:
    """The 88 functionals' names, in column order."""
    return list(_smile().feature_names)


def functionals(samples: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals (float32) of one mono clip."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ConfigError(f"samples must be a non-empty 1-D mono signal, got shape {x.shape}")
    with _SMILE_LOCK:  # one openSMILE instance per process; the app may call from threads
        values = _smile().process_signal(x, sample_rate).to_numpy(dtype=np.float32)
    if values.shape != (1, N_FUNCTIONALS):
        raise ConfigError(f"openSMILE returned {values.shape} values, expected (1, {N_FUNCTIONALS})")
    return values[0]


# ----------------------------------------------------------------------------- cache


class FunctionalsCache:
    """eGeMAPS functionals on disk, keyed like `features.FeatureCache`: the audio file's content
    fingerprint and the feature set (name, level, openSMILE version, decoding settings).

    Layout under `root` (default: paths.cache_dir() / "egemaps"): <set key>/<fp[:2]>/<fp>.npy,
    one (88,) float32 array per file, written atomically. File fingerprints come from the
    spectrogram cache's path index when it knows the file unchanged (the corpus was just
    featurised by `trainer.load_data`), so a warm pass hashes nothing.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.cache_dir() / "egemaps"

    @staticmethod
    def key() -> str:
        from ser_lab.data.features import FeatureConfig

        payload = {
            "version": CACHE_VERSION,
            "feature_set": FEATURE_SET,
            "level": FEATURE_LEVEL,
            "opensmile": opensmile_version(),
            "max_seconds": float(FeatureConfig().max_seconds),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _entry(self, fingerprint: str) -> Path:
        return self.root / self.key() / fingerprint[:2] / f"{fingerprint}.npy"

    def get(self, fingerprint: str) -> np.ndarray | None:
        """The cached functionals, or None (missing or damaged: a miss)."""
        try:
            x = np.load(self._entry(fingerprint), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if x.shape != (N_FUNCTIONALS,) or x.dtype != np.float32 or not np.isfinite(x).all():
            return None
        return x

    def put(self, fingerprint: str, values: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(values, dtype=np.float32), allow_pickle=False)
        fileio.atomic_write_bytes(self._entry(fingerprint), buf.getvalue())


def extract_functionals(
    manifest,
    *,
    cache: FunctionalsCache | None = None,
    workers: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, 88) float32 functionals of every utterance of `manifest`, in manifest order.

    Decoded exactly as the spectrograms are (`audio.load_audio`: 16 kHz mono, cut at 14 s). The
    manifest is expected to hold usable files only (as `trainer.load_data` returns it); a file
    that cannot be decoded or gives non-finite functionals is a CorpusError naming it, never a
    silently dropped utterance (that would change the folds). Cache misses are computed in
    `workers` processes (None: one per core; openSMILE runs about 2-3 files/s on one busy core).
    """
    import os

    from ser_lab.data.audio import audio_fingerprint
    from ser_lab.data.features import FeatureCache, _indexed_fingerprint

    require_opensmile()
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    index = FeatureCache().load_index(manifest.root) if cache is not None else {}
    total = len(manifest.utterances)
    out = np.zeros((total, N_FUNCTIONALS), dtype=np.float32)
    done = 0
    todo: list[tuple[int, str]] = []  # (position, fingerprint) of the cache misses
    for i, utt in enumerate(manifest.utterances):
        try:
            st = os.stat(utt.path)
        except OSError:
            st = None
        try:
            fingerprint = _indexed_fingerprint(index, utt.path, st) or audio_fingerprint(utt.path)
        except SerLabError as exc:
            raise CorpusError(f"{utt.path}: cannot compute eGeMAPS functionals ({exc})") from None
        values = cache.get(fingerprint) if cache is not None else None
        if values is None:
            todo.append((i, fingerprint))
            continue
        out[i] = values
        done += 1
        if progress is not None:
            progress(done, total)
    paths_ = [manifest.utterances[i].path for i, _ in todo]
    for (i, fingerprint), (values, reason) in zip(todo, _compute_functionals(paths_, workers)):
        path = manifest.utterances[i].path
        if values is None:
            raise CorpusError(f"{path}: cannot compute eGeMAPS functionals ({reason})")
        if cache is not None:
            cache.put(fingerprint, values)
        out[i] = values
        done += 1
        if progress is not None:
            progress(done, total)
    return out


def _functionals_of_file(path: str) -> tuple[np.ndarray | None, str | None]:
    """(values, None) or (None, why not): one file, in this process or a worker."""
    from ser_lab.data.audio import load_audio
    from ser_lab.data.features import FeatureConfig

    try:
        values = functionals(load_audio(path, max_seconds=FeatureConfig().max_seconds).samples)
    except SerLabError as exc:
        return None, str(exc)
    if not np.isfinite(values).all():
        bad = [n for n, v in zip(feature_names(), values) if not np.isfinite(v)]
        return None, f"openSMILE gave non-finite functionals ({', '.join(bad[:3])})"
    return values, None


def _compute_functionals(paths_: list[str], workers: int):
    """`_functionals_of_file` over the paths, in order; a process pool when workers > 1."""
    if workers == 1 or len(paths_) <= 1:
        yield from map(_functionals_of_file, paths_)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver, not fork, for the reason features._run_jobs gives (a threaded caller).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ser_lab.learn.classical"])
    with ProcessPoolExecutor(max_workers=min(workers, len(paths_)), mp_context=ctx) as pool:
        yield from pool.map(_functionals_of_file, paths_, chunksize=4)


# ----------------------------------------------------------------------------- config


@dataclass
class ClassicalConfig:
    """What an eGeMAPS + SVM run needs: the data fields of `config.TrainConfig` (same names,
    same meaning, so the folds are the CNN's) and the SVM's C grid."""

    corpus: str = "synthetic"
    root: str | None = None
    corpus_options: dict = field(default_factory=dict)
    classes: str = "paper"
    n_folds: int = 5
    folds: list[int] | None = None
    protocol: str = "speaker"
    val_fraction: float = 0.15
    seed: int = 0
    workers: int | None = None  # processes for spectrograms (to find usable files) and functionals
    c_grid: list[float] = field(default_factory=lambda: list(C_GRID))
    sweep_id: str | None = None
    demo: bool = False

    def train_config(self):
        """The TrainConfig whose `load_data` gives this run its manifest and folds."""
        return TrainConfig(
            corpus=self.corpus, root=self.root, corpus_options=dict(self.corpus_options),
            classes=self.classes, n_folds=self.n_folds, folds=self.folds, protocol=self.protocol,
            val_fraction=self.val_fraction, seed=self.seed, workers=self.workers,
        )

    def validate(self) -> ClassicalConfig:
        self.train_config().validate()
        grid = list(self.c_grid)
        if not grid or any(
            isinstance(c, bool) or not isinstance(c, (int, float)) or not np.isfinite(c) or c <= 0
            for c in grid
        ):
            raise ConfigError(f"the SVM's C grid must be positive finite numbers, got {self.c_grid!r}")
        self.c_grid = sorted(float(c) for c in grid)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClassicalConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def is_classical(run) -> bool:
    """Whether a run folder holds this baseline (config.json "model": "egemaps-svm")."""
    try:
        config = run.config
    except Exception:  # noqa: BLE001 - a broken config is not a classical run
        return False
    return isinstance(config, dict) and config.get("model") == MODEL


def new_classical_run(cfg: ClassicalConfig, store=None, name: str | None = None):
    """A queued run folder for the baseline; train it with `train_classical_run`."""
    from ser_lab.learn.trainer import check_data
    from ser_lab.runs import RunStore

    cfg.validate()
    require_opensmile()  # fail before creating a folder that could never be trained
    check_data(cfg.train_config())  # the CNN's checks on the same corpus and folds
    store = store or RunStore()
    config = {
        "model": MODEL,
        "train": cfg.to_dict(),
        "classical": {
            "feature_set": FEATURE_SET,
            "feature_level": FEATURE_LEVEL,
            "n_features": N_FUNCTIONALS,
            "opensmile": opensmile_version(),
            "classifier": "sklearn LinearSVC, class_weight='balanced', squared hinge, one-vs-rest",
            "c_selection": "best validation UA over c_grid (ties: smaller C), fitted on the training part",
            "standardisation": "mean and std of the fold's training part",
            "probabilities": PROBABILITIES,
        },
        # flat copies for listings and filters (no λ, α or epochs: none apply)
        "corpus": cfg.corpus,
        "root": cfg.root,
        "features": "egemaps",
        "n_folds": cfg.n_folds,
        "protocol": cfg.protocol,
        "seed": cfg.seed,
        "sweep_id": cfg.sweep_id,
        "demo": cfg.demo,
    }
    return store.create(config, name=name)


# ----------------------------------------------------------------------------- one fold


@dataclass
class SvmFold:
    """A fitted fold: standardisation, the linear decision function and how C was chosen."""

    mean: np.ndarray  # (88,) float64, training-part mean
    scale: np.ndarray  # (88,) float64, training-part std (1 where constant)
    coef: np.ndarray  # (C, 88) float64
    intercept: np.ndarray  # (C,) float64
    C: float
    search: list[dict]  # per C: train_UA, val_UA, converged

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def decision(self, z: np.ndarray) -> np.ndarray:
        """(N, C) one-vs-rest margins of standardised features."""
        return np.asarray(z, dtype=np.float64) @ self.coef.T + self.intercept

    def outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z (standardised), class probabilities and predictions for raw functionals x."""
        z = self.standardise(x)
        d = self.decision(z)
        return z, softmax(d), d.argmax(axis=1)


def softmax(d: np.ndarray) -> np.ndarray:
    e = np.exp(d - d.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def standardisation(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the training rows; a constant column gets scale 1 (as sklearn's
    StandardScaler does), so it standardises to 0 instead of dividing by 0."""
    x = np.asarray(x_train, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean, std


def _linear_parts(clf, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, F) coef and (C,) intercept; sklearn's binary case (one margin d) becomes [-d, d]."""
    coef, intercept = np.asarray(clf.coef_, dtype=np.float64), np.asarray(clf.intercept_, dtype=np.float64)
    if n_classes == 2 and coef.shape[0] == 1:
        coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept


def fit_fold(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    n_classes: int,
    c_grid=C_GRID,
    seed: int = 0,
) -> SvmFold:
    """Standardise on `train`, fit one LinearSVC per C on `train`, keep the best on `val`.

    Only rows `train` and `val` of x and y are read: the test fold cannot influence anything.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    if len(train) == 0 or len(val) == 0:
        raise ConfigError(f"a fold needs training and validation utterances, got {len(train)} and {len(val)}")
    names = tuple(str(i) for i in range(n_classes))
    mean, scale = standardisation(x[train])
    z_train, z_val = (x[train] - mean) / scale, (x[val] - mean) / scale
    best, search = None, []
    for c in sorted(float(c) for c in c_grid):
        clf = LinearSVC(
            C=c, class_weight="balanced", dual=False, max_iter=MAX_ITER, random_state=seed
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(z_train, y[train])
        coef, intercept = _linear_parts(clf, n_classes)
        fold = SvmFold(mean, scale, coef, intercept, c, search)
        train_ua = scores(y[train], fold.decision(z_train).argmax(1), names)["UA"]
        val_ua = scores(y[val], fold.decision(z_val).argmax(1), names)["UA"]
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        search.append({"C": c, "train_UA": train_ua, "val_UA": val_ua, "converged": converged})
        if best is None or val_ua > best[0]:  # strict: ties keep the smaller C
            best = (val_ua, fold)
    assert best is not None
    return best[1]


def save_svm(run, k: int, fold: SvmFold, label_names) -> None:
    fileio.atomic_save_npz(
        run.fold_dir(k) / "svm.npz",
        mean=fold.mean, scale=fold.scale, coef=fold.coef, intercept=fold.intercept,
        C=np.float64(fold.C), label_names=np.array([str(n) for n in label_names]),
    )


def load_svm(run, k: int) -> tuple[SvmFold, list[str]]:
    """Fold k's saved SVM (plain arrays, read without pickle) and its label names."""
    path = Path(run.dir) / f"fold_{int(k)}" / "svm.npz"
    what = f"run {run.run_id}: fold {k} svm.npz"
    if not path.is_file():
        raise RunError(f"{what} missing (fold not trained yet?)")
    arrays = read_npz(path, SVM_KEYS, what)
    names = [str(n) for n in arrays["label_names"]]
    coef = np.asarray(arrays["coef"], dtype=np.float64)
    mean, scale = np.asarray(arrays["mean"], np.float64), np.asarray(arrays["scale"], np.float64)
    intercept = np.asarray(arrays["intercept"], np.float64)
    if (
        coef.shape != (len(names), N_FUNCTIONALS) or intercept.shape != (len(names),)
        or mean.shape != (N_FUNCTIONALS,) or scale.shape != (N_FUNCTIONALS,) or not (scale > 0).all()
    ):
        raise RunError(
            f"{what} is inconsistent: coef {coef.shape}, intercept {intercept.shape}, "
            f"mean {mean.shape}, scale {scale.shape} for {len(names)} classes"
        )
    return SvmFold(mean, scale, coef, intercept, float(arrays["C"]), []), names


# ----------------------------------------------------------------------------- the whole run


def train_classical_run(
    run,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Fit every fold of a run created by `new_classical_run`; returns the results dict.

    The caller holds the run's lock. Folds already saved are reused (a re-launch finishes the
    rest). `progress(stage, done, total)` reports "spectrograms", "functionals" and "folds".
    """
    from ser_lab.learn.trainer import load_data, pool_results, record_data

    if not is_classical(run):
        raise RunError(f"run {run.run_id} is not an eGeMAPS + SVM run (config model {run.config.get('model')!r})")
    cfg = ClassicalConfig.from_dict(run.config["train"]).validate()
    require_opensmile()
    run.update_status(state="running", pid=_pid(), started=time.time(), error=None, device="cpu")
    try:
        manifest, _, folds = load_data(
            cfg.train_config(), (lambda d, t: progress("spectrograms", d, t)) if progress else None
        )
        fold_ids = cfg.folds if cfg.folds is not None else list(range(len(folds)))
        if any(k >= len(folds) for k in fold_ids):
            raise ConfigError(f"fold indices {fold_ids} out of range: the split has {len(folds)} folds")
        record_data(run, manifest, folds, fold_ids)
        x = extract_functionals(
            manifest, cache=FunctionalsCache(), workers=cfg.workers,
            progress=(lambda d, t: progress("functionals", d, t)) if progress else None,
        )
        y = manifest.label_ids()
        utt_ids = np.array([u.utt_id for u in manifest.utterances])
        fold_results = []
        for n, k in enumerate(fold_ids):
            if k in run.folds_done():
                fold_results.append(fold_result_from_disk(run, k, manifest.labels))
            else:
                fold_results.append(_train_fold(run, k, folds[k], x, y, utt_ids, manifest.labels, cfg))
            run.update_status(fold=k, n_folds=len(fold_ids), progress=(n + 1) / len(fold_ids))
            if progress:
                progress("folds", n + 1, len(fold_ids))
        results = pool_results(fold_results, manifest.labels)
        run.write_results(results)
        run.update_status(state="done", progress=1.0, finished=time.time(), eta_s=0)
        return results
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded in the run folder
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        run.update_status(
            state=state, finished=time.time(),
            error=None if state == "interrupted" else f"{type(exc).__name__}: {exc}",
        )
        raise


def _pid() -> int:
    import os

    return os.getpid()


def _train_fold(run, k, fold, x, y, utt_ids, labels, cfg: ClassicalConfig) -> dict:
    fit = fit_fold(x, y, fold.train, fold.val, len(labels), cfg.c_grid, cfg.seed)
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    order = np.concatenate(list(parts.values()))
    split = np.concatenate([[name] * len(idx) for name, idx in parts.items()])
    z, probs, preds = fit.outputs(x[order])
    z_train = z[split == "train"]
    centers = np.stack([z_train[y[fold.train] == c].mean(axis=0) for c in range(len(labels))])
    save_svm(run, k, fit, labels)
    run.save_embeddings(
        k, z=z, labels=y[order], preds=preds, probs=probs, utt_ids=utt_ids[order], split=split,
        centers=centers, label_names=np.array(labels),
    )
    test = split == "test"
    s = scores(y[order][test], preds[test], labels)
    return {"fold": k, **s, "n_test": int(test.sum()), "C": fit.C, "c_search": fit.search}


def fold_result_from_disk(run, k: int, labels) -> dict:
    """A saved fold's test scores (its C search is kept from an earlier results.json if any)."""
    emb = run.load_embeddings(k)
    test = emb["split"] == "test"
    svm, _ = load_svm(run, k)
    s = scores(emb["labels"][test], emb["preds"][test], labels)
    return {"fold": k, **s, "n_test": int(test.sum()), "C": svm.C}


def rescore_run(run) -> dict:
    """Recompute every fold's test predictions from the corpus and the saved arrays (what
    `python -m ser_lab eval RUN` does for a CNN run): a check of the run folder end to end."""
    from ser_lab.learn.trainer import load_data, pool_results

    done = run.folds_done()
    if not done:
        raise RunError(f"run {run.run_id} has no finished fold to evaluate")
    cfg = ClassicalConfig.from_dict(run.config["train"])
    manifest, _, _ = load_data(cfg.train_config())
    position = {u.utt_id: i for i, u in enumerate(manifest.utterances)}
    labels = manifest.label_ids()
    x = extract_functionals(manifest, cache=FunctionalsCache(), workers=cfg.workers)
    fold_results = []
    for k in done:
        svm, names = load_svm(run, k)
        idx = run.test_positions(k, position)
        _, _, preds = svm.outputs(x[idx])
        s = scores(labels[idx], preds, tuple(names))
        fold_results.append({"fold": k, **s, "n_test": len(idx), "C": svm.C})
    return pool_results(fold_results, tuple(names))
