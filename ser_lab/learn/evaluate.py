"""Re-score a finished run: reload each fold's saved model and predict its test utterances again.

This checks a run folder end to end (weights, normalisation, label names, the data it was
trained on) instead of trusting the numbers stored in results.json.
"""

from __future__ import annotations

import torch

from ser_lab.config import TrainConfig
from ser_lab.data.features import NormStats, normalise
from ser_lab.errors import RunError
from ser_lab.learn.metrics import scores
from ser_lab.learn.model import CnnBiGru, ModelConfig


def normalisation(payload: dict) -> str:
    """How a fold model's inputs were standardised ("corpus" for models saved before the choice
    existed)."""
    return str(payload.get("normalise", "corpus"))


def load_fold_model(run, fold: int, device: torch.device | str = "cpu") -> tuple[CnnBiGru, dict]:
    """The fold's network (eval mode) and its saved payload (centers, norm, labels, configs).

    RunError (never a KeyError) for a model.pt that lacks a key, does not fit the network, or
    holds NaN / infinite weights (a run that diverged): nothing it would predict means anything.
    """
    from ser_lab.runs import MODEL_KEYS

    payload = run.load_model(fold)
    where = f"run {run.run_id}: fold {fold} model.pt"
    missing = [key for key in MODEL_KEYS if key not in payload]
    if missing:
        raise RunError(f"{where} lacks {', '.join(missing)} (not a SER Lab model)")
    try:
        model = CnnBiGru(ModelConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise RunError(f"{where} does not fit the network ({type(e).__name__}: {e})") from None
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad or not torch.isfinite(torch.as_tensor(payload["centers"]).float()).all():
        what = f"weights ({', '.join(bad[:3])})" if bad else "centers"
        raise RunError(f"{where} holds NaN or infinite {what}: the training diverged")
    return model.to(device).eval(), payload


def expected_folds(run) -> list[int]:
    """The folds a finished run should hold: those its results.json reports (else none)."""
    try:
        results = run.read_results() or {}
    except RunError:
        return []
    folds = [f.get("fold") for f in results.get("folds") or [] if isinstance(f, dict)]
    return sorted({k for k in folds if isinstance(k, int) and not isinstance(k, bool)})


def rescore_run(run, device: str = "auto") -> dict:
    from ser_lab.learn import classical
    from ser_lab.learn.trainer import load_data, pool_results, predict, select_device

    if classical.is_classical(run):  # the eGeMAPS + SVM baseline re-scores from its arrays
        return classical.rescore_run(run)

    folds_done = run.folds_done()
    if not folds_done:
        raise RunError(f"run {run.run_id} has no finished fold to evaluate")
    missing = [k for k in expected_folds(run) if k not in folds_done]
    if missing:
        raise RunError(
            f"run {run.run_id}: fold {', '.join(map(str, missing))} has no saved model "
            f"(model.pt and embeddings.npz); only fold {', '.join(map(str, folds_done))} could be "
            "re-scored, so nothing is reported"
        )
    train = run.config.get("train")
    if not isinstance(train, dict):
        raise RunError(f"run {run.run_id}: config.json holds no training settings to re-score with")
    cfg = TrainConfig.from_dict(train).validate()
    dev = select_device(device)
    models = {k: load_fold_model(run, k, dev) for k in folds_done}  # refused before any data
    manifest, feats, _ = load_data(cfg)
    position = {u.utt_id: i for i, u in enumerate(manifest.utterances)}
    labels = manifest.label_ids()
    fold_results = []
    by_speaker = None  # per-speaker statistics do not depend on the fold: computed once
    for k in folds_done:
        model, payload = models[k]
        idx = run.test_positions(k, position)
        if normalisation(payload) == "speaker":
            if by_speaker is None:
                by_speaker = normalise(feats, "speaker", None, manifest.speakers())
            feats_k = by_speaker
        else:
            norm = NormStats.from_dict(payload["norm"])
            normalised = {i: norm.apply(feats[i]) for i in idx}
            feats_k = [normalised.get(i) for i in range(len(feats))]
        _, probs = predict(model, feats_k, idx, dev)
        s = scores(labels[idx], probs.argmax(1), tuple(payload["label_names"]))
        fold_results.append({"fold": k, **s, "best_epoch": int(payload.get("best_epoch", 0)), "n_test": len(idx)})
    return pool_results(fold_results, tuple(payload["label_names"]))
