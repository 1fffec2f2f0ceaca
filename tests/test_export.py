"""Exports read back by the tools they are for: pandas, TensorBoard, onnxruntime; the app's
download buttons and shareable links.

Uses the tiny trained pair of the app tests (tests/app_fixtures.py), trained once per session.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ser_lab import export as exp
from ser_lab import fileio
from ser_lab.analysis.maps import load_fold
from ser_lab.app.corpus import CorpusChoice
from ser_lab.cli import main
from ser_lab.data.features import FeatureConfig, NormStats, compute_features, normalise
from ser_lab.errors import ConfigError, RunError
from ser_lab.learn.evaluate import load_fold_model
from ser_lab.learn.model import min_frames
from tests import app_fixtures as fx
from tests.app_fixtures import texts


@pytest.fixture
def center_run(app_env):
    return app_env.run(app_env.center)


# ----------------------------------------------------------------------------- csv


def test_csv_reads_back_with_pandas(center_run, tmp_path):
    result = exp.export_run(center_run, "csv", tmp_path / "out")
    assert [p.name for p in result.files] == ["points.csv", "centers.csv"]
    assert result.notes == []  # the tiny corpus is in the test cache
    points = pd.read_csv(tmp_path / "out" / "points.csv", keep_default_na=False)
    emb = load_fold(center_run, 0)
    names = [str(n) for n in emb["label_names"]]
    d = emb["z"].shape[1]
    assert list(points.columns) == [
        "utt_id", "audio_path", "speaker", "label", "split", "pred",
        *(f"prob_{n}" for n in names), *(f"z{i}" for i in range(d)),
    ]
    assert len(points) == len(emb["z"]) and d == 64
    assert points["utt_id"].tolist() == emb["utt_ids"].tolist()
    assert points["split"].tolist() == emb["split"].tolist()
    assert points["label"].tolist() == [names[y] for y in emb["labels"]]
    assert points["pred"].tolist() == [names[p] for p in emb["preds"]]
    z = points[[f"z{i}" for i in range(d)]].to_numpy(np.float32)
    np.testing.assert_array_equal(z, emb["z"].astype(np.float32))
    probs = points[[f"prob_{n}" for n in names]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # audio paths are relative to the corpus root, and point at the utterance's own file
    manifest = CorpusChoice.from_run(center_run).load()
    by_id = {u.utt_id: u for u in manifest.utterances}
    for row in points.head(5).itertuples():
        u = by_id[row.utt_id]
        assert not Path(row.audio_path).is_absolute()
        assert (Path(manifest.root) / row.audio_path).resolve() == Path(u.path).resolve()
        assert row.speaker == u.speaker
    centers = pd.read_csv(tmp_path / "out" / "centers.csv")
    assert centers["label"].tolist() == names
    np.testing.assert_array_equal(
        centers[[f"z{i}" for i in range(d)]].to_numpy(np.float32), emb["centers"].astype(np.float32)
    )


def test_csv_without_the_corpus_leaves_paths_empty_with_a_note(center_run, tmp_path, monkeypatch):
    monkeypatch.setattr(CorpusChoice, "available", lambda self: False)
    result = exp.export_run(center_run, "csv", tmp_path)
    assert len(result.notes) == 1 and "not on this machine" in result.notes[0]
    points = pd.read_csv(tmp_path / "points.csv", keep_default_na=False)
    assert set(points["audio_path"]) == {""} and set(points["speaker"]) == {""}


def test_a_failed_export_leaves_nothing_half_written(center_run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    exp.export_run(center_run, "csv", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def fail_second(path, text):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(path, text)

    real = fileio.atomic_write_text
    monkeypatch.setattr(fileio, "atomic_write_text", fail_second)
    (out / "points.csv").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        exp.export_run(center_run, "csv", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no staging folder left
    assert (out / "points.csv").read_text() == "old"  # untouched, not half replaced


def test_bad_requests_are_clear_errors(center_run, tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'xlsx'"):
        exp.export_run(center_run, "xlsx", tmp_path)
    with pytest.raises(RunError, match="no finished fold 3 .finished folds: 0"):
        exp.export_run(center_run, "csv", tmp_path, fold=3)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        exp.export_run(center_run, "csv", tmp_path / "file")
    with pytest.raises(RunError, match="no run folder"):
        exp.export_run(tmp_path / "nowhere", "csv", tmp_path)


# ----------------------------------------------------------------------------- projector


def projector_configs(logdir: Path, provider=None) -> tuple[dict, object]:
    """What TensorBoard's Embedding Projector plugin finds under `tensorboard --logdir`."""
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin

    class NoRuns:
        def list_runs(self, ctx, experiment_id):
            return []

    plugin = ProjectorPlugin(
        base_plugin.TBContext(logdir=str(logdir), data_provider=provider or NoRuns())
    )
    plugin._update_configs()
    return plugin._configs, plugin


def test_projector_opens_in_tensorboards_projector(center_run, tmp_path):
    from tensorboard.plugins.projector.projector_plugin import _read_tensor_tsv_file

    result = exp.export_run(center_run, "projector", tmp_path)
    assert {p.name for p in result.files} == {"tensors.tsv", "metadata.tsv", "projector_config.pbtxt"}
    configs, _ = projector_configs(tmp_path)
    (embedding,) = configs["."].embeddings
    emb = load_fold(center_run, 0)
    n, c = len(emb["z"]), len(emb["centers"])
    assert list(embedding.tensor_shape) == [n + c, 64]
    tensor = _read_tensor_tsv_file(str(tmp_path / embedding.tensor_path))
    np.testing.assert_array_equal(tensor[:n], emb["z"].astype(np.float32))
    np.testing.assert_array_equal(tensor[n:], emb["centers"].astype(np.float32))
    meta = pd.read_csv(tmp_path / embedding.metadata_path, sep="\t")
    assert list(meta.columns) == ["utt_id", "split", "label", "pred"]
    assert len(meta) == n + c  # header row + one row per vector
    assert meta["utt_id"].tolist()[:n] == emb["utt_ids"].tolist()
    assert meta["split"].tolist()[n:] == ["center"] * c
    assert meta["label"].tolist()[n:] == [str(x) for x in emb["label_names"]]


# ----------------------------------------------------------------------------- tensorboard


def read_scalars(fold_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(fold_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_logdir_holds_the_scalars_and_the_embeddings(center_run, tmp_path):
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider

    other_fold = tmp_path / center_run.run_id / "fold_1" / "keep.txt"
    for _ in range(2):  # a second export replaces the fold, it does not double the events
        exp.export_run(center_run, "tensorboard", tmp_path, fold=0)
        other_fold.parent.mkdir(parents=True, exist_ok=True)
        other_fold.write_text("another fold's export")
    assert other_fold.is_file()  # exporting fold 0 leaves the run's other folds alone
    fold_dir = tmp_path / center_run.run_id / "fold_0"
    assert len(list(fold_dir.glob("events.out.tfevents.*"))) == 1
    scalars = read_scalars(fold_dir)
    assert set(scalars) == set(exp.SCALARS.values())
    records = [r for r in center_run.read_metrics() if r["fold"] == 0]
    for key, tag in exp.SCALARS.items():
        assert [s for s, _ in scalars[tag]] == [r["epoch"] for r in records]
        np.testing.assert_allclose([v for _, v in scalars[tag]], [r[key] for r in records], rtol=1e-6)
    # the Projector finds the fold's embeddings as a run of the logdir
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    configs, _ = projector_configs(tmp_path, MultiplexerDataProvider(mux, str(tmp_path)))
    run_name = f"{center_run.run_id}/fold_0"
    assert run_name in configs
    n = len(load_fold(center_run, 0)["z"])
    assert list(configs[run_name].embeddings[0].tensor_shape) == [n + 4, 64]


def test_live_tensorboard_writes_what_training_reports(center_run, tmp_path):
    live = exp.TensorBoardLive(tmp_path, center_run)
    records = [r for r in center_run.read_metrics() if r["fold"] == 0]
    for r in records:
        live({"fold": 0, "epoch": r["epoch"], "batch": 1, "n_batches": 3})  # ignored
        live({"fold": 0, "epoch": r["epoch"], "epoch_done": True, "metrics": r})
    live.close()
    fold_dir = tmp_path / center_run.run_id / "fold_0"
    scalars = read_scalars(fold_dir)
    assert [v for _, v in scalars["loss/L_c"]] == pytest.approx([r["center_loss"] for r in records])
    assert (fold_dir / "projector_config.pbtxt").is_file()  # the finished fold's embeddings


def test_train_tensorboard_option_writes_live(app_env, tmp_path, capsys):
    logdir = tmp_path / "tb"
    code = main([
        "--store", str(tmp_path / "runs"), "train", "--size", "tiny", "--epochs", "1",
        "--folds", "2", "--fold", "0", "--workers", "1", "--tensorboard", str(logdir),
    ])
    assert code == 0
    (run_dir,) = list(logdir.iterdir())
    scalars = read_scalars(run_dir / "fold_0")
    assert [s for s, _ in scalars["UA/val"]] == [1]
    assert "tensorboard --logdir" in capsys.readouterr().out


# ----------------------------------------------------------------------------- onnx


def test_onnx_matches_pytorch_on_clips_of_several_lengths(center_run, tmp_path):
    import onnxruntime as ort

    result = exp.export_run(center_run, "onnx", tmp_path)
    assert [p.name for p in result.files] == ["model.onnx", "model.json"]
    meta = json.loads((tmp_path / "model.json").read_text())
    model, payload = load_fold_model(center_run, 0)
    norm = NormStats.from_dict(payload["norm"])
    how = payload["normalise"]
    assert meta["normalisation"]["statistics"] == ("per clip" if how == "speaker" else "training part")
    if how == "corpus":
        np.testing.assert_array_equal(NormStats.from_dict(meta["normalisation"]).mean, norm.mean)
    assert meta["labels"] == payload["label_names"]
    np.testing.assert_allclose(meta["centers"], payload["centers"].numpy(), rtol=1e-6)
    assert meta["input"]["min_frames"] == min_frames() and meta["features"]["kind"] == "mel"

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    shortest = meta["input"]["min_frames"]
    for frames in (shortest, shortest + 1, 57, 200, 333, 1401):
        raw = (norm.mean + norm.std * rng.standard_normal((frames, 128))).astype(np.float32)
        z_onnx, logits_onnx = session.run(None, {"log_spectrogram": raw[None]})
        with torch.no_grad():
            x = normalise([raw], how, norm, ["clip"])[0]  # a clip is its own speaker
            z, logits = model(torch.from_numpy(x)[None], torch.tensor([frames]))
        assert z_onnx.shape == (1, 64) and logits_onnx.shape == (1, 4)
        assert np.abs(z_onnx - z.numpy()).max() <= 1e-4, frames
        assert np.abs(logits_onnx - logits.numpy()).max() <= 1e-4, frames


def test_onnx_json_recipe_computes_the_models_features():
    """The librosa recipe in model.json gives the features the model was trained on."""
    librosa = pytest.importorskip("librosa")
    samples = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    scope = {"librosa": librosa, "np": np, "samples": samples}
    exec(exp.MEL_RECIPE, scope)  # noqa: S102 - our own constant
    ours = compute_features(samples, FeatureConfig(kind="mel"))
    np.testing.assert_allclose(scope["x"][0], ours, atol=2e-3)
    exec(exp.STFT_RECIPE, scope)  # noqa: S102
    np.testing.assert_allclose(scope["x"][0], compute_features(samples, FeatureConfig(kind="stft")), atol=2e-3)


# ----------------------------------------------------------------------------- cli


def test_cli_export_every_format(app_env, tmp_path, capsys):
    for fmt in exp.FORMATS:
        code = main(["export", app_env.center, "--format", fmt, "--out", str(tmp_path / fmt)])
        assert code == 0, fmt
    out = capsys.readouterr().out
    assert str(tmp_path / "csv" / "points.csv") in out and "model.onnx" in out
    assert main(["export", app_env.center, "--format", "csv", "--fold", "4", "--out", str(tmp_path)]) == 2
    assert "error: run" in capsys.readouterr().err
    assert main(["export", "no-such-run", "--format", "csv", "--out", str(tmp_path)]) == 2


# ----------------------------------------------------------------------------- app helpers


def test_export_zip_holds_the_files(center_run):
    data, notes = exp.export_zip(center_run, "projector", 0)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["metadata.tsv", "projector_config.pbtxt", "tensors.tsv"]
    assert notes == []


def test_confusion_csv():
    text = exp.confusion_csv([[3, 1], [0, 4]], ["angry", "sad"])
    frame = pd.read_csv(io.StringIO(text), index_col=0)
    assert frame.loc["angry", "sad"] == 1 and frame.loc["sad", "sad"] == 4
    assert "0.25" in exp.confusion_csv([[0.75, 0.25], [0.0, 1.0]], ["a", "b"])
    assert exp.confusion_csv([[0.5, 0.5], [np.nan, np.nan]], ["a", "b"]).splitlines()[2] == "b,,"
    with pytest.raises(ConfigError, match="must be square"):
        exp.confusion_csv([[1, 2, 3]], ["a"])


def test_read_view_keeps_valid_choices_and_notes_stale_ones():
    allowed = {"a": ["run-1", "run-2"], "fold": ["0", "1"], "map": ["pca", "umap"]}
    what = {"a": "Run A", "fold": "Fold"}
    choices, notes = exp.read_view({"a": "run-2", "fold": "7", "other": "x"}, allowed, what)
    assert choices == {"a": "run-2"}
    assert notes == ["Fold '7' from the link is not available here"]
    choices, notes = exp.read_view({"map": ["pca", "umap"]}, allowed, what)  # repeated key
    assert choices == {"map": "umap"} and notes == []
    assert exp.read_view({}, allowed, what) == ({}, [])


def test_clip_result_json(center_run):
    from ser_lab.inference import Predictor

    manifest = CorpusChoice.from_run(center_run).load()
    clip = manifest.utterances[0].path
    pred = Predictor.from_run(center_run, fold=0).predict(clip, with_projection=False, k=3)
    result = json.loads(exp.clip_result_json(pred, run_id="r", clip="a.wav", method="pca", map_xy=[1, 2]))
    assert result["predicted"] == pred.predicted
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(result["z"]) == 64 and len(result["neighbours"]) == 3
    assert result["map"] == {"method": "pca", "xy": [1.0, 2.0]}


# ----------------------------------------------------------------------------- pages


def test_compare_opens_the_view_of_its_url(app_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(fx.APP, default_timeout=120)
    at.query_params.update(
        {"a": app_env.center, "b": app_env.baseline, "fold": "0", "points": "test"}
    )
    at.switch_page(fx.PAGES["compare"])
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="compare_a").value == app_env.center
    assert at.selectbox(key="compare_b").value == app_env.baseline
    assert at.radio(key="compare_points").value == "test"
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the table (CSV)" in labels and labels.count("points (CSV)") == 2
    assert labels.count("CSV") == 3  # the three confusion matrices
    assert at.query_params["a"] == [app_env.center] or at.query_params["a"] == app_env.center
    # the Export section builds a zip to download
    at.radio(key="compare_export_format").set_value("csv").run()
    at.button(key="compare_export_prepare").click().run()
    assert not at.exception, at.exception
    assert any("_csv.zip" in b.proto.label for b in at.get("download_button"))


def test_compare_with_a_stale_link_shows_a_note(app_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(fx.APP, default_timeout=120)
    at.query_params.update({"a": "deleted-run", "map": "tsne", "fold": "9"})
    at.switch_page(fx.PAGES["compare"])
    at.run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "This link was made for other runs or data" in page
    assert "Run A 'deleted-run' from the link is not available here" in page
    assert "Map 'tsne'" in page and "Fold '9'" in page
    assert at.radio(key="compare_map").value == "pca"


def test_explore_opens_the_clip_of_its_url(app_env):
    from streamlit.testing.v1 import AppTest

    run = app_env.run(app_env.center)
    emb = load_fold(run, 0)
    utt = str(emb["utt_ids"][emb["split"] == "test"][0])
    at = AppTest.from_file(fx.APP, default_timeout=120)
    at.query_params.update({"run": app_env.center, "fold": "0", "utt": utt})
    at.switch_page(fx.PAGES["explore"])
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="explore_run").value == app_env.center
    assert at.selectbox(key="explore_utt").value == utt
    assert "Where the clip lands" in texts(at)
    assert [b.proto.label for b in at.get("download_button")] == ["Download this result (JSON)"]

    stale = AppTest.from_file(fx.APP, default_timeout=120)
    stale.query_params.update({"run": app_env.center, "utt": "gone-utt"})
    stale.switch_page(fx.PAGES["explore"])
    stale.run()
    assert not stale.exception
    assert "Test utterance 'gone-utt' from the link is not available here" in texts(stale)

