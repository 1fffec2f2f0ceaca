"""Clip inference on a tiny trained run: same pipeline as training, checked limits, CLI."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from ser_lab.analysis.maps import project_fold
from ser_lab.cli import main as cli_main
from ser_lab.config import TrainConfig
from ser_lab.errors import (
    ConfigError,
    RunError,
    SilentAudioError,
    TooLargeAudioError,
    TooLongAudioError,
    TooShortAudioError,
    UnreadableAudioError,
)
from ser_lab.inference import (
    DEFAULT_MAX_INPUT_SECONDS,
    DEFAULT_MAX_UPLOAD_MB,
    ClipPrediction,
    Predictor,
    upload_limits,
)
from ser_lab.learn.evaluate import load_fold_model
from ser_lab.learn.trainer import new_run, train_run
from ser_lab.runs import RunStore
from tests.audio_fixtures import tone, wav_bytes, write_audio


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run with two finished folds, trained once for the whole module."""
    base = tmp_path_factory.mktemp("inference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_LAB_CACHE", str(base / "cache"))
        mp.setenv("SER_LAB_CHECKPOINTS", str(base / "runs"))
        mp.delenv("SER_LAB_MAX_UPLOAD_MB", raising=False)
        mp.delenv("SER_LAB_MAX_INPUT_SECONDS", raising=False)
        store = RunStore(base / "runs")
        cfg = TrainConfig(
            corpus="synthetic", corpus_options={"size": "tiny"}, epochs=1, n_folds=2,
            folds=[0, 1], workers=1, device="cpu", seed=1,
            # the training part's statistics: then a training clip's own file reproduces its
            # saved row exactly (a per-speaker model standardises a lone clip with the clip's
            # own statistics instead: tests/test_normalise.py)
            normalise="corpus",
        )
        run = new_run(cfg, store, name="inference test")
        with run.lock():
            train_run(run)
        predictor = Predictor.from_run(run, fold=0)
        yield {"run": run, "store": store, "predictor": predictor, "base": base}


@pytest.fixture(scope="module")
def train_clip(trained):
    """A training utterance of fold 0: its saved row and its audio file."""
    emb = trained["run"].load_embeddings(0)
    i = int(np.flatnonzero(emb["split"] == "train")[0])
    path = trained["predictor"].paths()[str(emb["utt_ids"][i])]
    return {"i": i, "emb": emb, "path": path}


@pytest.fixture(scope="module")
def result(trained, train_clip) -> ClipPrediction:
    return trained["predictor"].predict(train_clip["path"], with_projection=False, k=3)


def test_prediction_reproduces_the_saved_embeddings(train_clip, result):
    emb, i = train_clip["emb"], train_clip["i"]
    assert result.probabilities.shape == (4,)
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(result.probabilities, emb["probs"][i], atol=1e-4)
    np.testing.assert_allclose(result.z, emb["z"][i], atol=1e-4)
    assert result.z.shape == (64,)
    assert result.label_names == ["neutral", "angry", "happy", "sad"]
    assert result.predicted == result.label_names[int(np.argmax(emb["probs"][i]))]


def test_center_distances_are_distances_to_the_trained_centers(trained, result):
    _, payload = load_fold_model(trained["run"], 0)
    centers = payload["centers"].numpy()
    expected = np.linalg.norm(centers - result.z[None, :], axis=1)
    assert result.center_distances.shape == (4,)
    np.testing.assert_allclose(result.center_distances, expected, rtol=1e-5, atol=1e-5)


def test_neighbours_are_sorted_and_a_training_clip_finds_itself(train_clip, result):
    emb, i = train_clip["emb"], train_clip["i"]
    assert len(result.neighbours) == 3
    distances = [n["distance"] for n in result.neighbours]
    assert distances == sorted(distances)
    first = result.neighbours[0]
    assert first["utt_id"] == str(emb["utt_ids"][i])
    assert first["distance"] < 1e-3
    assert first["label"] == result.label_names[int(emb["labels"][i])]
    assert first["path"] == train_clip["path"]
    train = emb["split"] == "train"
    ids = set(emb["utt_ids"][train].tolist())
    for n in result.neighbours:  # neighbours come from the training part only, distances exact
        assert n["utt_id"] in ids
        j = int(np.flatnonzero(emb["utt_ids"] == n["utt_id"])[0])
        assert n["distance"] == pytest.approx(float(np.linalg.norm(emb["z"][j] - result.z)), abs=1e-4)


def test_result_carries_audio_features_and_timings(trained, train_clip, result):
    cfg = trained["predictor"].feature_config
    assert result.samples.dtype == np.float32 and result.samples.ndim == 1
    assert result.duration == pytest.approx(result.samples.size / 16000)
    assert result.features.shape == (1 + result.samples.size // 160, cfg.n_bins)
    assert not result.truncated
    assert result.pca_xy is None and result.umap_xy is None  # with_projection=False
    for stage in ("decode", "features", "model", "distances", "neighbours", "total"):
        assert result.timings[stage] >= 0
    assert result.timings["total"] >= result.timings["model"]


def test_bytes_and_path_give_the_same_answer(trained, train_clip, result):
    data = open(train_clip["path"], "rb").read()
    again = trained["predictor"].predict(data, with_projection=False, with_neighbours=False)
    np.testing.assert_array_equal(again.probabilities, result.probabilities)
    assert again.neighbours == []


def test_k_is_capped_at_the_training_set_and_checked(trained, train_clip):
    predictor = trained["predictor"]
    n_train = len(predictor.training_set().z)
    out = predictor.predict(train_clip["path"], with_projection=False, k=10_000)
    assert len(out.neighbours) == n_train
    with pytest.raises(ConfigError):
        predictor.predict(train_clip["path"], k=0)


def test_map_positions_are_the_maps_transform_of_z(trained, train_clip):
    pytest.importorskip("umap")
    out = trained["predictor"].predict(train_clip["path"], with_neighbours=False)
    pca = project_fold(trained["run"], 0, "pca")
    np.testing.assert_allclose(out.pca_xy, pca.transform(out.z[None, :])[0], atol=1e-6)
    # a training clip lands where the map put that utterance
    emb, i = train_clip["emb"], train_clip["i"]
    row = int(np.flatnonzero(pca.utt_ids == emb["utt_ids"][i])[0])
    np.testing.assert_allclose(out.pca_xy, pca.xy[row], atol=1e-3)
    assert out.umap_xy.shape == (2,) and np.all(np.isfinite(out.umap_xy))
    again = trained["predictor"].predict(train_clip["path"], with_neighbours=False)
    np.testing.assert_array_equal(again.umap_xy, out.umap_xy)  # a transform, not a refit
    assert "load_umap" not in again.timings and "projection_umap" in again.timings


def test_a_map_that_cannot_be_made_gives_none(trained, train_clip, monkeypatch):
    from ser_lab.analysis import maps

    real = maps.project_fold

    def no_umap(run, fold, method="pca", *args, **kwargs):
        if method == "umap":
            raise RunError("a umap map needs at least 5 training points")
        return real(run, fold, method, *args, **kwargs)

    monkeypatch.setattr(maps, "project_fold", no_umap)
    predictor = Predictor.from_run(trained["run"], fold=0)
    out = predictor.predict(train_clip["path"], with_neighbours=False)
    assert out.umap_xy is None and out.pca_xy.shape == (2,)
    assert "5 training points" in predictor.map_problems["umap"]
    with pytest.raises(RunError):
        predictor.map("umap")
    assert predictor.predict(train_clip["path"], with_neighbours=False).umap_xy is None


def test_long_clip_is_cut_at_14_s(trained, tmp_path):
    path = write_audio(tmp_path / "long.wav", tone(15.0, freq=220.0))
    out = trained["predictor"].predict(path, with_projection=False, with_neighbours=False)
    assert out.truncated and out.duration == pytest.approx(14.0)
    assert out.original_duration == pytest.approx(15.0)
    assert out.features.shape[0] == 1 + 14 * 16000 // 160


def test_bad_audio_raises_the_specific_error(trained, tmp_path):
    predictor = trained["predictor"]
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(UnreadableAudioError):
        predictor.predict(text)
    with pytest.raises(SilentAudioError):
        predictor.predict(wav_bytes(np.zeros(16000, dtype=np.float32)))
    with pytest.raises(TooShortAudioError):
        predictor.predict(wav_bytes(tone(0.1)))
    clip = wav_bytes(tone(1.0))
    with pytest.raises(TooLargeAudioError):
        predictor.predict(clip, max_bytes=len(clip) - 1)
    with pytest.raises(TooLongAudioError):
        predictor.predict(clip, max_seconds_input=0.9)
    with pytest.raises(UnreadableAudioError):
        predictor.predict(tmp_path / "missing.wav")


def test_upload_limits_default_and_environment(trained, monkeypatch):
    monkeypatch.delenv("SER_LAB_MAX_UPLOAD_MB", raising=False)
    monkeypatch.delenv("SER_LAB_MAX_INPUT_SECONDS", raising=False)
    assert upload_limits() == (DEFAULT_MAX_UPLOAD_MB * 1024 * 1024, DEFAULT_MAX_INPUT_SECONDS)
    assert DEFAULT_MAX_UPLOAD_MB == 20
    monkeypatch.setenv("SER_LAB_MAX_UPLOAD_MB", "0.01")  # 10485 bytes
    monkeypatch.setenv("SER_LAB_MAX_INPUT_SECONDS", "30")
    assert upload_limits() == (int(0.01 * 1024 * 1024), 30.0)
    predictor = Predictor.from_run(trained["run"], fold=0)
    with pytest.raises(TooLargeAudioError):  # 1 s of 16-bit audio is 32 kB
        predictor.predict(wav_bytes(tone(1.0)), with_projection=False)
    monkeypatch.setenv("SER_LAB_MAX_UPLOAD_MB", "lots")
    with pytest.raises(ConfigError, match="SER_LAB_MAX_UPLOAD_MB"):
        upload_limits()
    monkeypatch.setenv("SER_LAB_MAX_UPLOAD_MB", "-1")
    with pytest.raises(ConfigError):
        upload_limits()


def test_ensemble_averages_the_folds(trained, train_clip):
    run, path = trained["run"], train_clip["path"]
    ensemble = Predictor.from_run(run, fold="ensemble")
    assert [f.index for f in ensemble.folds] == [0, 1] and ensemble.reference_fold == 0
    out = ensemble.predict(path, with_projection=False)
    fold1 = Predictor.from_run(run, fold=1).predict(path, with_projection=False)
    fold0 = trained["predictor"].predict(path, with_projection=False)
    np.testing.assert_allclose(
        out.probabilities, (fold0.probabilities + fold1.probabilities) / 2, atol=1e-6
    )
    assert out.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert out.predicted == out.label_names[int(np.argmax(out.probabilities))]
    np.testing.assert_array_equal(out.z, fold0.z)  # z and neighbours: the reference fold
    np.testing.assert_array_equal(out.center_distances, fold0.center_distances)
    assert out.fold == "ensemble" and out.reference_fold == 0


def test_unknown_fold_and_device_are_refused(trained):
    run = trained["run"]
    with pytest.raises(RunError, match="no finished fold 5"):
        Predictor.from_run(run, fold=5)
    with pytest.raises(ConfigError):
        Predictor.from_run(run, fold="all")
    with pytest.raises(ConfigError):
        Predictor.from_run(run, fold=0, threads=0)


def test_missing_corpus_leaves_paths_empty_but_neighbours_work(trained, train_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "empty-cache"))
    predictor = Predictor.from_run(trained["run"], fold=0)
    out = predictor.predict(train_clip["path"], with_projection=False, k=2)
    assert [n["path"] for n in out.neighbours] == [None, None]
    assert out.neighbours[0]["distance"] < 1e-3
    assert predictor.corpus_problem
    assert not list((tmp_path / "empty-cache").rglob("*.wav"))  # no corpus was generated


def test_threads_are_restored_after_a_forward(trained, train_clip):
    before = torch.get_num_threads()
    predictor = Predictor.from_run(trained["run"], fold=0, threads=1)
    predictor.predict(train_clip["path"], with_projection=False, with_neighbours=False)
    assert torch.get_num_threads() == before


def test_background_warm_up_loads_each_part_once(trained, train_clip):
    predictor = Predictor.from_run(trained["run"], fold=0)
    thread = predictor.warm_up(projection=False, background=True)
    assert isinstance(thread, threading.Thread)
    thread.join(timeout=60)
    training = predictor.training_set()
    assert "load_embeddings" in predictor.load_timings and "load_corpus" in predictor.load_timings
    out = predictor.predict(train_clip["path"], with_projection=False)
    assert predictor.training_set() is training
    assert "load_embeddings" not in out.timings and "load_corpus" not in out.timings


def test_cli_predict_prints_the_label(trained, train_clip, capsys):
    store, run = trained["store"], trained["run"]
    code = cli_main(["--store", str(store.root), "predict", run.run_id, train_clip["path"]])
    out = capsys.readouterr().out
    assert code == 0
    label = trained["predictor"].predict(train_clip["path"], with_projection=False).predicted
    assert f"{train_clip['path']}: {label}" in out
    for name in ("neutral", "angry", "happy", "sad"):
        assert name in out


def test_cli_predict_reports_errors(trained, tmp_path, capsys):
    store, run = trained["store"], trained["run"]
    code = cli_main(["--store", str(store.root), "predict", "no-such-run", "x.wav"])
    assert code == 2 and "error:" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF????WAVEjunk")
    code = cli_main(["--store", str(store.root), "predict", run.run_id, str(bad)])
    assert code == 2 and "error:" in capsys.readouterr().out


def test_cli_predict_ensemble_averages_both_folds(trained, train_clip, capsys):
    store, run = trained["store"], trained["run"]
    code = cli_main(["--store", str(store.root), "predict", run.run_id, train_clip["path"], "--fold", "ensemble"])
    out = capsys.readouterr().out
    assert code == 0
    ensemble = Predictor.from_run(run, fold="ensemble")
    label = ensemble.predict(train_clip["path"], with_projection=False).predicted
    assert f"{train_clip['path']}: {label}" in out
    with pytest.raises(SystemExit):
        cli_main(["--store", str(store.root), "predict", run.run_id, "x.wav", "--fold", "all"])
