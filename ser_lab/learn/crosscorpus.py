"""Cross-corpus: a finished run's fold models on another corpus, and that corpus on the run's map.

    python -m ser_lab eval RUN --corpus NAME --root PATH [--classes paper] [--fold K]

Each finished fold model of the run scores every usable utterance of the other corpus (nothing
of it was seen in training: there is no split to make), with the run's own settings: the fold's
feature configuration and normalisation statistics of its training part (a CNN run), or the
fold's standardisation and SVM (an eGeMAPS + SVM run). The result lists each fold model's UA /
WA / recall / confusion, their mean ± std over fold models, and the confusion pooled over them
(`trainer.pool_results`, the shape of results.json); `--fold K` scores with fold K's model only.
It is written atomically beside the run, in RUN/cross/<corpus>-<fingerprint>[-fold<K>].json
(the fingerprint is the other manifest's, so a changed corpus gets a new file), with each fold
model's z, probabilities and predictions in RUN/cross/<corpus>-<fingerprint>/fold_<k>.npz,
which the app's overlay reuses.

The label maps must agree: the other corpus, loaded with the run's class set (or `classes`),
must have exactly the run's classes (matched by name); otherwise CorpusError, never a silent
remapping. `corpus_map` places the other corpus's z on a fold's map (`analysis.project_fold`,
the same PCA / UMAP the Compare page draws), so "where does Italian speech land on an
EmoDB-trained map?" is one call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ser_lab import fileio
from ser_lab.errors import CorpusError, RunError

CROSS_DIR = "cross"
OUTPUT_KEYS = ("z", "probs", "preds", "labels", "utt_ids", "speakers")


@dataclass
class OtherCorpus:
    """Another corpus's usable utterances, ready for one run's fold models."""

    manifest: Any  # ser_lab.data.corpora.base.Manifest, after dropping unusable files
    labels: np.ndarray  # (N,) class ids in the run's label order
    label_names: list[str]  # the run's
    features: list[np.ndarray] | None  # spectrograms (CNN run), un-normalised
    functionals: np.ndarray | None  # (N, 88) eGeMAPS functionals (SVM run)

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint()


def run_labels(run) -> list[str]:
    """The classes of a finished run, from results.json."""
    results = run.read_results()
    if not results:
        raise RunError(f"run {run.run_id} has no results.json: only a finished run can be scored on another corpus")
    labels = results.get("labels")
    if not isinstance(labels, list) or not labels:
        raise RunError(f"run {run.run_id}: results.json has no labels")
    return [str(n) for n in labels]


def _feature_config(run, fold: int):
    from ser_lab.data.features import FeatureConfig

    payload = run.load_model(fold)
    try:
        return FeatureConfig.from_dict(payload["feature_config"])
    except KeyError:
        raise RunError(f"run {run.run_id}: fold {fold} model.pt has no feature_config") from None


def load_other_corpus(
    run,
    corpus: str,
    root: str | None = None,
    *,
    classes: str | None = None,
    corpus_options: dict | None = None,
    workers: int | None = None,
) -> OtherCorpus:
    """Another corpus, checked against the run's label map and featurised the run's way.

    Unusable files are dropped as training drops them (decoding errors, clips too short for
    the CNN), so the CNN and the SVM baseline score the same utterances of it.
    """
    from ser_lab.data.corpora import load_corpus
    from ser_lab.data.features import FeatureCache, FeatureConfig, extract_corpus
    from ser_lab.learn import classical
    from ser_lab.learn.model import min_frames

    names = run_labels(run)
    done = run.folds_done()
    if not done:
        raise RunError(f"run {run.run_id} has no finished fold")
    train = run.config.get("train") or {}
    manifest = load_corpus(corpus, root, classes=classes or train.get("classes", "paper"), **(corpus_options or {}))
    if set(manifest.labels) != set(names):
        raise CorpusError(
            f"corpus {corpus!r} has the classes {list(manifest.labels)} but run {run.run_id} was "
            f"trained on {names}: the label maps differ, so its fold models cannot score it"
            + ("" if classes == "paper" else " (the 4 paper classes: --classes paper)")
        )
    svm = classical.is_classical(run)
    feature_cfg = FeatureConfig() if svm else _feature_config(run, done[0])
    extracted = extract_corpus(manifest, feature_cfg, cache=FeatureCache(), workers=workers)
    manifest, feats = extracted.manifest, extracted.features
    keep = [i for i, f in enumerate(feats) if len(f) >= min_frames()]
    if len(keep) < len(feats):
        manifest, feats = manifest.subset(keep), [feats[i] for i in keep]
    if not feats:
        raise CorpusError(f"corpus {corpus!r} in {manifest.root} has no usable utterance of the classes {names}")
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[u.label] for u in manifest.utterances], dtype=np.int64)
    if svm:
        x = classical.extract_functionals(manifest, cache=classical.FunctionalsCache(), workers=workers)
        return OtherCorpus(manifest, labels, names, None, x)
    return OtherCorpus(manifest, labels, names, feats, None)


def fold_outputs(run, fold: int, other: OtherCorpus, device: str = "cpu") -> dict[str, np.ndarray]:
    """z, probabilities and predictions of fold `fold`'s model for every utterance of `other`."""
    from ser_lab.learn import classical

    if other.functionals is not None:
        svm, _ = classical.load_svm(run, fold)
        z, probs, preds = svm.outputs(other.functionals)
    else:
        from ser_lab.data.features import NormStats, normalise
        from ser_lab.learn.evaluate import load_fold_model, normalisation
        from ser_lab.learn.trainer import predict, select_device

        dev = select_device(device)
        model, payload = load_fold_model(run, fold, dev)
        # the fold's own training statistics, or the other corpus's speakers' own
        feats = normalise(other.features, normalisation(payload), NormStats.from_dict(payload["norm"]),
                          other.manifest.speakers())
        z, probs = predict(model, feats, np.arange(len(feats)), dev)
        preds = probs.argmax(1)
    return {
        "z": np.asarray(z, dtype=np.float32),
        "probs": np.asarray(probs, dtype=np.float32),
        "preds": np.asarray(preds, dtype=np.int64),
        "labels": other.labels,
        "utt_ids": np.array([u.utt_id for u in other.manifest.utterances]),
        "speakers": np.array([u.speaker for u in other.manifest.utterances]),
    }


def _slug(corpus: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", corpus)[:40] or "corpus"


def cross_dir(run) -> Path:
    return Path(run.dir) / CROSS_DIR


def outputs_path(run, corpus: str, fingerprint: str, fold: int) -> Path:
    return cross_dir(run) / f"{_slug(corpus)}-{fingerprint}" / f"fold_{int(fold)}.npz"


def result_path(run, corpus: str, fingerprint: str, folds: list[int] | None = None) -> Path:
    suffix = "" if folds is None else "-fold" + "-".join(str(k) for k in folds)
    return cross_dir(run) / f"{_slug(corpus)}-{fingerprint}{suffix}.json"


def cached_fold_outputs(run, fold: int, other: OtherCorpus, corpus: str, device: str = "cpu") -> dict:
    """`fold_outputs`, from RUN/cross/ when computed before for this very corpus content."""
    path = outputs_path(run, corpus, other.fingerprint, fold)
    utt_ids = np.array([u.utt_id for u in other.manifest.utterances])
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                cached = {key: data[key] for key in data.files}
            if all(k in cached for k in OUTPUT_KEYS) and np.array_equal(cached["utt_ids"], utt_ids):
                return cached
        except (OSError, ValueError, EOFError):
            pass  # damaged: computed again and replaced
    out = fold_outputs(run, fold, other, device)
    fileio.atomic_save_npz(path, **out)
    return out


def cross_evaluate(
    run,
    corpus: str,
    root: str | None = None,
    *,
    classes: str | None = None,
    corpus_options: dict | None = None,
    folds: list[int] | None = None,
    device: str = "auto",
    workers: int | None = None,
) -> dict:
    """Score every finished fold model of `run` (or only `folds`) on the whole other corpus;
    writes and returns the result (see the module docstring)."""
    from ser_lab.learn.metrics import scores
    from ser_lab.learn.trainer import pool_results

    done = run.folds_done()
    if folds is not None:
        absent = [k for k in folds if k not in done]
        if absent:
            raise RunError(
                f"run {run.run_id} has no finished fold {absent[0]} (finished: {', '.join(map(str, done)) or 'none'})"
            )
    other = load_other_corpus(run, corpus, root, classes=classes, corpus_options=corpus_options, workers=workers)
    names = tuple(other.label_names)
    fold_results = []
    for k in folds if folds is not None else done:
        out = cached_fold_outputs(run, k, other, corpus, device)
        fold_results.append({"fold": k, **scores(other.labels, out["preds"], names), "n_test": len(other.labels)})
    result = pool_results(fold_results, names)
    result.update({
        "run_id": run.run_id,
        "trained_on": {key: (run.config.get("train") or {}).get(key) for key in ("corpus", "root", "classes")},
        "corpus": corpus,
        "root": str(Path(root).resolve()) if root else None,
        "fingerprint": other.fingerprint,
        "same_data_as_training": other.fingerprint == (run.config.get("data") or {}).get("fingerprint"),
        "n_utterances": len(other.labels),
        "counts": other.manifest.counts_by_label(),
        "n_speakers": len(other.manifest.counts_by_speaker()),
        "n_problems": len(other.manifest.problems),
        "fold_models": [r["fold"] for r in fold_results],
        "how": "each fold model scores every usable utterance of the corpus with its own "
               "normalisation; mean = over fold models, pooled = their confusions summed",
    })
    path = result_path(run, corpus, other.fingerprint, folds)
    fileio.atomic_write_json(path, result)
    result["path"] = str(path)
    return result


@dataclass
class CorpusOutputs:
    """Another corpus's utterances through one fold model of a run: z, predictions, scores."""

    z: np.ndarray  # (N, dim) in the run's feature space
    utt_ids: np.ndarray
    labels: np.ndarray  # ids in the run's label order
    preds: np.ndarray
    speakers: np.ndarray
    label_names: list[str]
    corpus: str
    fingerprint: str

    @property
    def scores(self) -> dict:
        """UA, WA, recall and confusion of this fold model on the corpus (ser_lab.learn.metrics)."""
        from ser_lab.learn.metrics import scores

        return scores(self.labels, self.preds, tuple(self.label_names))

    def frame(self, xy: np.ndarray) -> Any:
        """utt_id, speaker, label, pred, correct, x, y: one row per utterance, placed at `xy`."""
        import pandas as pd

        names = np.asarray(self.label_names)
        xy = np.asarray(xy, dtype=np.float64)
        return pd.DataFrame({
            "utt_id": self.utt_ids, "speaker": self.speakers, "label": names[self.labels],
            "pred": names[self.preds], "correct": self.labels == self.preds,
            "x": xy[:, 0], "y": xy[:, 1],
        })


def corpus_outputs(
    run,
    fold: int,
    corpus: str,
    root: str | None = None,
    *,
    classes: str | None = None,
    corpus_options: dict | None = None,
    device: str = "cpu",
) -> CorpusOutputs:
    """Another corpus's z through fold `fold` of `run` (cached in RUN/cross/), for overlays:
    place it on any map of that fold with the map's `transform`."""
    if fold not in run.folds_done():
        raise RunError(f"run {run.run_id} has no finished fold {fold}")
    other = load_other_corpus(run, corpus, root, classes=classes, corpus_options=corpus_options)
    out = cached_fold_outputs(run, fold, other, corpus, device)
    return CorpusOutputs(
        np.asarray(out["z"], dtype=np.float64), out["utt_ids"].astype(str), out["labels"].astype(np.int64),
        out["preds"].astype(np.int64), out["speakers"].astype(str), other.label_names, corpus,
        other.fingerprint,
    )


@dataclass
class CorpusMap:
    """Another corpus's utterances placed on one fold's map of a run."""

    fold_map: Any  # analysis.FoldMap of the run's fold (fitted on the run's training z)
    outputs: CorpusOutputs
    xy: np.ndarray  # (N, 2)

    def to_dataframe(self) -> Any:
        return self.outputs.frame(self.xy)


def corpus_map(
    run,
    fold: int,
    corpus: str,
    root: str | None = None,
    method: str = "pca",
    *,
    classes: str | None = None,
    corpus_options: dict | None = None,
    device: str = "cpu",
) -> CorpusMap:
    """Another corpus on fold `fold`'s map of `run` (`analysis.project_fold`: fitted on the
    run's own training z, so the run's classes and centers sit where Compare shows them)."""
    from ser_lab.analysis.maps import project_fold

    outputs = corpus_outputs(
        run, fold, corpus, root, classes=classes, corpus_options=corpus_options, device=device
    )
    fold_map = project_fold(run, fold, method)
    return CorpusMap(fold_map, outputs, np.asarray(fold_map.transform(outputs.z), dtype=np.float64))
