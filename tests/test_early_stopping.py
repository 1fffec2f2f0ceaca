"""Early stopping: a fold ends after `patience` epochs without a better validation UA, says so,
and keeps the best-validation weights."""

import pytest

from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError
from ser_lab.learn.trainer import FoldState, new_run, should_stop, stop_reason, train_run
from ser_lab.runs import RunStore


def test_should_stop_counts_epochs_since_the_best():
    cfg = TrainConfig(epochs=50, patience=3)
    assert not should_stop(FoldState(epoch=5, best_epoch=3), cfg)
    assert should_stop(FoldState(epoch=6, best_epoch=3), cfg)
    assert not should_stop(FoldState(epoch=40, best_epoch=3), TrainConfig(epochs=50, patience=0))
    assert "early stop after epoch 6" in stop_reason(FoldState(epoch=6, best_epoch=3), cfg)
    assert "maximum of 50" in stop_reason(FoldState(epoch=50, best_epoch=48), cfg)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_patience_is_validated(bad):
    with pytest.raises(ConfigError, match="patience"):
        TrainConfig(patience=bad).validate()


def test_a_fold_stops_early_and_records_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=12, patience=1,
                      n_folds=2, folds=[0], workers=1, seed=1)
    run = new_run(cfg, RunStore(tmp_path / "runs"))
    events = []
    with run.lock():
        results = train_run(run, progress=events.append)
    fold = results["folds"][0]
    metrics = [m for m in run.read_metrics() if m["fold"] == 0]
    assert fold["epochs_trained"] == len(metrics)
    best = max(metrics, key=lambda m: (m["val_UA"], -m["epoch"]))
    assert fold["best_epoch"] == best["epoch"]  # the first epoch of the best validation UA
    if fold["epochs_trained"] < 12:
        assert fold["epochs_trained"] - fold["best_epoch"] == 1
        assert fold["stop_reason"].startswith(f"early stop after epoch {fold['epochs_trained']}")
    else:
        assert "maximum" in fold["stop_reason"]
    assert [e for e in events if e.get("fold_done")] == [
        {"fold_done": True, "fold": 0, "stop_reason": fold["stop_reason"]}
    ]
    assert run.load_model(0)["stop_reason"] == fold["stop_reason"]


def test_cli_switches_spec_augment_off_and_on():
    from ser_lab.cli import build_parser, train_config_from_args

    def cfg(*flags: str) -> TrainConfig:
        return train_config_from_args(build_parser().parse_args(["train", *flags]))

    assert cfg().augment is TrainConfig().augment is True
    assert cfg("--no-augment").augment is False
    assert cfg("--augment").augment is True
