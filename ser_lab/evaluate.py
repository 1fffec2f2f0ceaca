"""Re-score a finished run: reload each fold's saved model and predict its test utterances again.

This checks a run folder end to end (weights, normalisation, label names, the data it was
trained on) instead of trusting the numbers stored in results.json.
"""

from __future__ import annotations

import numpy as np
import torch

from ser_lab.errors import RunError
from ser_lab.features import NormStats
from ser_lab.metrics import scores
from ser_lab.model import CnnBiGru, ModelConfig


def load_fold_model(run, fold: int, device: torch.device | str = "cpu") -> tuple[CnnBiGru, dict]:
    """The fold's network (eval mode) and its saved payload (centers, norm, labels, configs)."""
    payload = run.load_model(fold)
    model = CnnBiGru(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload


def rescore_run(run, device: str = "auto") -> dict:
    from ser_lab import classical
    from ser_lab.trainer import TrainConfig, load_data, pool_results, predict, select_device

    if classical.is_classical(run):  # the eGeMAPS + SVM baseline re-scores from its arrays
        return classical.rescore_run(run)

    folds_done = run.folds_done()
    if not folds_done:
        raise RunError(f"run {run.run_id} has no finished fold to evaluate")
    cfg = TrainConfig.from_dict(run.config["train"])
    dev = select_device(device)
    manifest, feats, _ = load_data(cfg)
    position = {u.utt_id: i for i, u in enumerate(manifest.utterances)}
    labels = manifest.label_ids()
    fold_results = []
    for k in folds_done:
        model, payload = load_fold_model(run, k, dev)
        norm = NormStats.from_dict(payload["norm"])
        emb = run.load_embeddings(k)
        test_ids = emb["utt_ids"][emb["split"] == "test"]
        missing = [u for u in test_ids if u not in position]
        if missing:
            raise RunError(
                f"{len(missing)} test utterances of fold {k} are not in the corpus any more "
                f"(e.g. {missing[0]}): the data changed since the run was trained"
            )
        idx = np.array([position[u] for u in test_ids])
        normalised = {i: norm.apply(feats[i]) for i in idx}
        feats_k = [normalised.get(i) for i in range(len(feats))]
        _, probs = predict(model, feats_k, idx, dev)
        s = scores(labels[idx], probs.argmax(1), tuple(payload["label_names"]))
        fold_results.append({"fold": k, **s, "best_epoch": int(payload.get("best_epoch", 0)), "n_test": len(idx)})
    return pool_results(fold_results, tuple(payload["label_names"]))
