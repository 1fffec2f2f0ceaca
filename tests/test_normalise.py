"""Per-speaker normalisation (TrainConfig.normalise = "speaker"): every utterance standardised
per frequency bin with its own speaker's statistics, the same in training, re-scoring,
cross-corpus scoring, clip inference (one clip = one speaker) and the ONNX graph."""

import json

import numpy as np
import pytest
import torch

from ser_lab.config import TrainConfig
from ser_lab.data.features import NormStats, normalise
from ser_lab.errors import ConfigError
from ser_lab.inference import Predictor
from ser_lab.learn.evaluate import load_fold_model, rescore_run
from ser_lab.learn.trainer import new_run, train_run
from ser_lab.runs import RunStore


def utterances(rng, speakers):
    """Utterances whose level and spread depend on the speaker (as voices and microphones do)."""
    offset = {"a": 5.0, "b": -3.0, "c": 0.5}
    scale = {"a": 2.0, "b": 0.5, "c": 1.0}
    return [(offset[s] + scale[s] * rng.standard_normal((int(rng.integers(20, 60)), 8))).astype(np.float32)
            for s in speakers]


def test_each_speaker_ends_up_standardised_over_its_own_frames():
    rng = np.random.default_rng(0)
    speakers = ["a", "b", "a", "c", "b", "a", "c"]
    feats = utterances(rng, speakers)
    out = normalise(feats, "speaker", None, speakers)
    assert [o.shape for o in out] == [f.shape for f in feats] and all(o.dtype == np.float32 for o in out)
    for s in "abc":
        frames = np.concatenate([o for o, sp in zip(out, speakers) if sp == s])
        np.testing.assert_allclose(frames.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(frames.std(0), 1, atol=1e-4)
        own = NormStats.fit([f for f, sp in zip(feats, speakers) if sp == s])
        i = speakers.index(s)
        np.testing.assert_array_equal(out[i], own.apply(feats[i]))
    corpus = NormStats.fit(feats[:3])
    assert all(np.array_equal(a, corpus.apply(f)) for a, f in zip(normalise(feats, "corpus", corpus), feats))


def test_bad_normalisation_requests_are_clear():
    feats = [np.zeros((5, 3), np.float32)]
    with pytest.raises(ConfigError, match="one speaker per utterance"):
        normalise(feats, "speaker", None, None)
    with pytest.raises(ConfigError, match="needs the training statistics"):
        normalise(feats, "corpus", None)
    with pytest.raises(ConfigError, match="normalise must be one of"):
        normalise(feats, "utterance", None)
    with pytest.raises(ConfigError, match="normalise must be one of"):
        TrainConfig(normalise="per-speaker").validate()


@pytest.fixture(scope="module")
def speaker_run(tmp_path_factory, reliability_cache):
    mp = pytest.MonkeyPatch()
    mp.setenv("SER_LAB_CACHE", str(reliability_cache))
    store = RunStore(tmp_path_factory.mktemp("runs"))
    cfg = TrainConfig(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=2, n_folds=2,
                      folds=[0], workers=1, seed=2, normalise="speaker")
    run = new_run(cfg, store)
    with run.lock():
        train_run(run)
    yield run
    mp.undo()


def test_a_speaker_normalised_run_rescores_to_what_it_recorded(speaker_run, monkeypatch, reliability_cache):
    monkeypatch.setenv("SER_LAB_CACHE", str(reliability_cache))
    _, payload = load_fold_model(speaker_run, 0)
    assert payload["normalise"] == "speaker"
    assert rescore_run(speaker_run, device="cpu")["pooled"] == speaker_run.read_results()["pooled"]


def test_a_clip_is_standardised_with_its_own_statistics(speaker_run, monkeypatch, reliability_cache):
    monkeypatch.setenv("SER_LAB_CACHE", str(reliability_cache))
    predictor = Predictor.from_run(speaker_run, 0)
    (fold,) = predictor.folds
    clip = np.random.default_rng(3).standard_normal((90, fold.norm.mean.shape[0])).astype(np.float32) * 3 + 7
    np.testing.assert_array_equal(fold.standardise(clip), NormStats.fit([clip]).apply(clip))
    assert not np.allclose(fold.standardise(clip), fold.norm.apply(clip))


def test_onnx_of_a_speaker_normalised_model_standardises_each_clip(speaker_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from ser_lab import export as exp

    exp.export_run(speaker_run, "onnx", tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["normalisation"]["statistics"] == "per clip" and "mean" not in meta["normalisation"]
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    model, _ = load_fold_model(speaker_run, 0)
    rng = np.random.default_rng(4)
    for frames in (meta["input"]["min_frames"], 120, 401):
        raw = (rng.standard_normal((frames, 128)) * 2 - 5).astype(np.float32)
        z_onnx, logits_onnx = session.run(None, {"log_spectrogram": raw[None]})
        with torch.no_grad():
            z, logits = model(torch.from_numpy(NormStats.fit([raw]).apply(raw))[None], torch.tensor([frames]))
        assert np.abs(z_onnx - z.numpy()).max() <= 1e-4, frames
        assert np.abs(logits_onnx - logits.numpy()).max() <= 1e-4, frames


def test_a_run_recorded_before_the_choice_resumes_with_the_training_statistics():
    old = {k: v for k, v in TrainConfig(normalise="speaker").to_dict().items() if k != "normalise"}
    assert TrainConfig.from_dict(old).normalise == "corpus"
    assert TrainConfig.from_dict({**old, "normalise": "speaker"}).normalise == "speaker"
