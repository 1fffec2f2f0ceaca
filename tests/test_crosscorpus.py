"""Cross-corpus scoring and maps: a tiny synthetic CNN run and a tiny eGeMAPS + SVM run scored
on a fake EmoDB tree and on their own corpus (which must reproduce their saved z)."""

import importlib.util
import json

import numpy as np
import pytest

from ser_lab import cli
from ser_lab.config import TrainConfig
from ser_lab.errors import CorpusError, RunError
from ser_lab.learn import crosscorpus
from ser_lab.learn.trainer import new_run, train_run
from ser_lab.runs import RunStore
from tests import fake_corpora as fake
from tests.app_fixtures import environment

HAVE_OPENSMILE = importlib.util.find_spec("opensmile") is not None
TINY = dict(corpus="synthetic", corpus_options={"size": "tiny"}, n_folds=2, workers=1, seed=2)


@pytest.fixture(scope="module")
def cross_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("cross")
    env = {"SER_LAB_CACHE": str(base / "cache"), "SER_LAB_CHECKPOINTS": str(base / "runs")}
    with environment(**env):
        store = RunStore(base / "runs")
        cnn = new_run(TrainConfig(**TINY, folds=[0], epochs=1), store, name="cnn")
        with cnn.lock():
            train_run(cnn)
        svm = None
        if HAVE_OPENSMILE:
            from ser_lab.learn import classical

            svm = classical.new_classical_run(classical.ClassicalConfig(**TINY), store, name="svm")
            with svm.lock():
                classical.train_classical_run(svm)
        emodb = fake.make_emodb(base / "emodb")
        folder = fake.make_folder(base / "folder")
        yield {"store": store, "cnn": cnn, "svm": svm, "emodb": str(emodb), "folder": str(folder), "env": env}


def runs(cross_env):
    out = [cross_env["cnn"]]
    if cross_env["svm"] is not None:
        out.append(cross_env["svm"])
    return out


def test_scores_every_fold_model_on_another_corpus_and_writes_beside_the_run(cross_env):
    with environment(**cross_env["env"]):
        for run in runs(cross_env):
            result = crosscorpus.cross_evaluate(run, "emodb", cross_env["emodb"], device="cpu")
            path = crosscorpus.result_path(run, "emodb", result["fingerprint"])
            assert str(path) == result["path"] and path.parent == run.dir / "cross"
            saved = json.loads(path.read_text())
            assert saved["n_utterances"] == 8 and saved["counts"] == {"neutral": 2, "angry": 2, "happy": 2, "sad": 2}
            assert saved["fold_models"] == run.folds_done() and not saved["same_data_as_training"]
            for entry in saved["folds"]:
                out = np.load(crosscorpus.outputs_path(run, "emodb", saved["fingerprint"], entry["fold"]))
                correct = (out["labels"] == out["preds"]).mean()
                assert entry["WA"] == pytest.approx(correct) and entry["n"] == 8
                assert np.isfinite(out["z"]).all() and np.allclose(out["probs"].sum(1), 1, atol=1e-4)
            assert saved["mean"]["UA"] == pytest.approx(np.mean([f["UA"] for f in saved["folds"]]))
            assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # no temp files left


def test_own_corpus_reproduces_the_saved_z(cross_env):
    with environment(**cross_env["env"]):
        for run in runs(cross_env):
            result = crosscorpus.cross_evaluate(run, "synthetic", corpus_options={"size": "tiny"}, device="cpu")
            assert result["same_data_as_training"]
            for k in run.folds_done():
                emb = run.load_embeddings(k)
                out = np.load(crosscorpus.outputs_path(run, "synthetic", result["fingerprint"], k))
                pos = {u: i for i, u in enumerate(out["utt_ids"])}
                order = [pos[u] for u in emb["utt_ids"]]
                assert np.allclose(out["z"][order], emb["z"], atol=1e-4)
                assert (out["preds"][order] == emb["preds"]).all()


def test_refuses_a_corpus_with_other_classes(cross_env):
    with environment(**cross_env["env"]):
        with pytest.raises(CorpusError, match="label maps differ"):
            crosscorpus.cross_evaluate(cross_env["cnn"], "folder", cross_env["folder"], classes="all")
        # the same folder with the paper's 4 classes is fine
        result = crosscorpus.cross_evaluate(cross_env["cnn"], "folder", cross_env["folder"], classes="paper")
        assert set(result["counts"]) == {"neutral", "angry", "happy", "sad"}


def test_fold_option_and_unfinished_folds(cross_env):
    run = cross_env["cnn"]
    with environment(**cross_env["env"]):
        result = crosscorpus.cross_evaluate(run, "emodb", cross_env["emodb"], folds=[0], device="cpu")
        assert result["path"].endswith("-fold0.json") and result["fold_models"] == [0]
        with pytest.raises(RunError, match="no finished fold 1"):
            crosscorpus.cross_evaluate(run, "emodb", cross_env["emodb"], folds=[1])


def test_corpus_map_places_the_other_corpus_on_the_fold_map(cross_env):
    from ser_lab.analysis.maps import project_fold

    with environment(**cross_env["env"]):
        for run in runs(cross_env):
            cmap = crosscorpus.corpus_map(run, 0, "emodb", cross_env["emodb"], "pca")
            frame = cmap.to_dataframe()
            assert cmap.xy.shape == (8, 2) and np.isfinite(cmap.xy).all()
            assert cmap.outputs.scores["n"] == 8 and cmap.outputs.z.shape[0] == 8
            assert list(frame.columns) == ["utt_id", "speaker", "label", "pred", "correct", "x", "y"]
            assert set(frame["speaker"]) == {"03", "08"}
            # its own corpus lands exactly where the run's own map puts those utterances
            own = crosscorpus.corpus_map(run, 0, "synthetic", None, "pca", corpus_options={"size": "tiny"})
            fold_map = project_fold(run, 0, "pca")
            pos = {u: i for i, u in enumerate(own.outputs.utt_ids)}
            order = [pos[u] for u in fold_map.utt_ids]
            assert np.allclose(own.xy[order], fold_map.xy, atol=1e-3)


def test_cli_eval_on_another_corpus(cross_env, capsys):
    run = cross_env["cnn"]
    with environment(**cross_env["env"]):
        code = cli.main(["--store", str(cross_env["store"].root), "eval", run.run_id, "--corpus", "emodb",
                         "--root", cross_env["emodb"], "--device", "cpu"])
        out = capsys.readouterr().out
        assert code == 0 and "on corpus emodb: 8 utterances" in out and "written to" in out
        code = cli.main(["--store", str(cross_env["store"].root), "eval", run.run_id, "--corpus", "folder",
                         "--root", cross_env["folder"], "--classes", "all"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "label maps differ" in err


def test_unfinished_run_is_refused(cross_env):
    run = cross_env["store"].create({"train": TrainConfig(**TINY).to_dict()}, name="empty")
    with pytest.raises(RunError, match="only a finished run"):
        crosscorpus.cross_evaluate(run, "emodb", cross_env["emodb"])
