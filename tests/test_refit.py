"""Refit (TrainConfig.refit): after the selection pass chose an epoch count on validation, the
fold is trained again from the same start on train + validation for that many epochs, and that
model is the one scored and saved."""

import numpy as np
import pytest
import torch

from ser_lab.cli import main
from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, Interrupted
from ser_lab.fileio import read_jsonl
from ser_lab.learn.evaluate import rescore_run
from ser_lab.learn.trainer import FoldState, epoch_count, new_run, refit_epochs, stop_reason, train_run
from ser_lab.runs import RunStore
from tests.conftest import trained_run as trained


@pytest.fixture
def env(tmp_path, monkeypatch, reliability_cache):
    monkeypatch.setenv("SER_LAB_CACHE", str(reliability_cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "runs"))
    return tmp_path


def tiny(**kw) -> TrainConfig:
    base = dict(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=4, patience=0,
                n_folds=2, folds=[0], workers=1, seed=3, lam=0.3)
    return TrainConfig(**{**base, **kw})


def test_refit_epochs_and_stop_reason_say_what_was_trained():
    assert refit_epochs(FoldState(epoch=30, best_epoch=10)) == 10
    assert refit_epochs(FoldState(epoch=3, best_epoch=0)) == 1  # never fewer than one epoch
    reason = stop_reason(FoldState(epoch=30, best_epoch=10), TrainConfig(epochs=50, patience=20, refit=True))
    assert reason.startswith("early stop after epoch 30")
    assert reason.endswith("then trained again on train + validation for 10 epochs")
    assert "train + validation" not in stop_reason(FoldState(epoch=30, best_epoch=10), TrainConfig(epochs=50, patience=20))
    one = stop_reason(FoldState(epoch=1, best_epoch=1), TrainConfig(epochs=1, patience=1, refit=True))
    assert one == "reached the maximum of 1 epoch (best validation UA at epoch 1); then trained again on train + validation for 1 epoch"


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_refit_is_validated(bad):
    with pytest.raises(ConfigError, match="refit must be true or false"):
        TrainConfig(refit=bad).validate()


def test_refit_trains_train_plus_validation_for_the_chosen_epochs(env):
    store = RunStore(env / "runs")
    plain = trained(store, tiny())
    refit = trained(store, tiny(refit=True))

    # the selection pass is the same, line for line (refit adds to it, changes nothing in it)
    strip = [{k: v for k, v in r.items() if k not in ("time", "train_time_s", "utt_per_s")}
             for r in plain.read_metrics()]
    assert strip == [{k: v for k, v in r.items() if k not in ("time", "train_time_s", "utt_per_s")}
                     for r in refit.read_metrics()]
    fold = refit.read_results()["folds"][0]
    best = plain.read_results()["folds"][0]["best_epoch"]
    assert fold["best_epoch"] == best and fold["refit_epochs"] == best
    assert fold["stop_reason"].endswith(f"then trained again on train + validation for {epoch_count(best)}")

    log = read_jsonl(refit.fold_dir(0) / "refit.jsonl")
    assert [r["epoch"] for r in log] == list(range(1, best + 1))
    emb = refit.load_embeddings(0)
    n_fit = int(np.isin(emb["split"], ["train", "val"]).sum())
    assert all(np.isfinite(r["total_loss"]) and 0 <= r["train_UA"] <= 1 for r in log)
    assert n_fit > int((emb["split"] == "train").sum())  # the validation part was trained on too

    # the kept model is the refit's, not the selection's: other weights, and it reproduces the
    # recorded test predictions when reloaded
    a, b = plain.load_model(0)["state_dict"], refit.load_model(0)["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert rescore_run(refit, device="cpu")["pooled"] == refit.read_results()["pooled"]
    assert not (refit.fold_dir(0) / "refit.pt").exists() and not (refit.fold_dir(0) / "last.pt").exists()
    assert refit.read_status()["refit"] is None


def test_refit_interrupted_resumes_to_the_same_result(env):
    store = RunStore(env / "runs")
    cfg = tiny(refit=True, epochs=3)
    ref = trained(store, cfg)
    assert ref.read_results()["folds"][0]["refit_epochs"] >= 1
    seen = []

    def stop_in_refit(event):
        if "refit_epoch" in event:
            seen.append(event)
            if event["refit_epoch"] == event["refit_epochs"] and event["batch"] == 1:
                raise Interrupted()

    run = new_run(cfg, store)
    with run.lock(), pytest.raises(Interrupted):
        train_run(run, progress=stop_in_refit)
    assert (run.fold_dir(0) / "last.pt").exists()  # the selection's state is kept for the refit
    assert run.read_status()["state"] == "interrupted"
    assert seen[0]["refit_epoch"] == 1 and seen[0]["epoch"] == 3  # the bar holds at the selection's end
    with run.lock():
        train_run(run)
    assert np.array_equal(run.load_embeddings(0)["z"], ref.load_embeddings(0)["z"])
    assert run.read_results()["pooled"] == ref.read_results()["pooled"]
    epochs = [r["epoch"] for r in read_jsonl(run.fold_dir(0) / "refit.jsonl")]
    assert epochs == list(range(1, ref.read_results()["folds"][0]["refit_epochs"] + 1))  # each once


def test_cli_refit_flag(env, capsys):
    args = ["--store", str(env / "runs"), "train", "--corpus", "synthetic", "--size", "tiny",
            "--epochs", "2", "--folds", "2", "--fold", "0", "--workers", "1", "--refit"]
    assert main(args) == 0
    assert "then trained again on train + validation" in capsys.readouterr().out
    (summary,) = RunStore(env / "runs").list()
    assert RunStore(env / "runs").get(summary.run_id).config["train"]["refit"] is True


def test_refit_in_parallel_folds_gives_the_sequential_result(env):
    store = RunStore(env / "runs")
    sequential = trained(store, tiny(refit=True, epochs=2, folds=None))
    parallel_run = new_run(tiny(refit=True, epochs=2, folds=None, parallel_folds=2), store)
    seen = []
    with parallel_run.lock():
        train_run(parallel_run, progress=seen.append)
    assert {e["fold"] for e in seen if "refit_epoch" in e} == {0, 1}  # both folds' refits reported
    assert parallel_run.read_results()["pooled"] == sequential.read_results()["pooled"]
    for k in (0, 1):
        # one thread per fold against two: the same up to float rounding
        np.testing.assert_allclose(parallel_run.load_embeddings(k)["z"], sequential.load_embeddings(k)["z"], atol=1e-5)
    assert parallel_run.read_status()["refit"] is None
