"""The learning-rate schedule (TrainConfig.lr_schedule): the paper's constant rate, or halved
after `lr_patience` epochs without a better validation UA. Each epoch's rate is recorded, a
resumed fold and the refit pass train at the rates of an uninterrupted selection pass."""

import numpy as np
import pytest

from ser_lab.cli import build_parser, train_config_from_args
from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError, Interrupted
from ser_lab.fileio import read_jsonl
from ser_lab.learn.trainer import FoldState, epoch_lr, new_run, plateau_drop, stop_reason, train_run
from ser_lab.runs import RunStore
from tests.conftest import trained_run as trained


@pytest.fixture
def store(tmp_path, monkeypatch, reliability_cache):
    monkeypatch.setenv("SER_LAB_CACHE", str(reliability_cache))
    return RunStore(tmp_path / "runs")


def tiny(**kw) -> TrainConfig:
    base = dict(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=8, patience=0,
                n_folds=2, folds=[0], workers=1, seed=3, lam=0.3, lr_schedule="plateau", lr_patience=1)
    return TrainConfig(**{**base, **kw})


def expected_rates(cfg: TrainConfig, val_ua: list[float]) -> list[float]:
    """The rate of each epoch from the validation UA history, written out independently of
    the trainer: halve after lr_patience epochs without a better UA since the best or the
    last halving."""
    rates, lr, best, best_epoch, last_drop = [], cfg.lr, -1.0, 0, 0
    for epoch, ua in enumerate(val_ua, start=1):
        rates.append(lr)
        if ua > best:
            best, best_epoch = ua, epoch
        if epoch - max(best_epoch, last_drop) >= cfg.lr_patience:
            lr, last_drop = lr / 2, epoch
    return rates


def test_epoch_lr_halves_once_for_each_earlier_drop():
    cfg = TrainConfig(lr=4e-4, lr_schedule="plateau")
    assert [epoch_lr(cfg, [3, 6], e) for e in (1, 3, 4, 6, 7, 50)] == [4e-4, 4e-4, 2e-4, 2e-4, 1e-4, 1e-4]
    assert epoch_lr(TrainConfig(), [], 99) == TrainConfig().lr


def test_plateau_drop_counts_from_the_best_epoch_or_the_last_drop():
    cfg = TrainConfig(lr_schedule="plateau", lr_patience=5)
    assert not plateau_drop(FoldState(epoch=7, best_epoch=3), cfg)
    assert plateau_drop(FoldState(epoch=8, best_epoch=3), cfg)
    assert not plateau_drop(FoldState(epoch=12, best_epoch=3, lr_drops=[8]), cfg)
    assert plateau_drop(FoldState(epoch=13, best_epoch=3, lr_drops=[8]), cfg)
    assert not plateau_drop(FoldState(epoch=13, best_epoch=3), TrainConfig(lr_patience=5))  # constant
    reason = stop_reason(FoldState(epoch=20, best_epoch=3, lr_drops=[8, 13, 18]), TrainConfig(epochs=20, patience=0))
    assert reason.endswith("; learning rate halved after epochs 8, 13, 18")


@pytest.mark.parametrize("field,bad,match", [
    ("lr_schedule", "cosine", "lr_schedule must be one of"),
    ("lr_schedule", None, "lr_schedule must be one of"),
    ("lr_patience", 0, "lr_patience must be >= 1"),
    ("lr_patience", 2.5, "lr_patience must be an integer"),
    ("lr_patience", True, "lr_patience must be an integer"),
])
def test_schedule_settings_are_validated(field, bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**{field: bad}).validate()


def test_cli_schedule_flags():
    def cfg(*flags: str) -> TrainConfig:
        return train_config_from_args(build_parser().parse_args(["train", *flags]))

    assert (cfg().lr_schedule, cfg().lr_patience) == (TrainConfig.lr_schedule, TrainConfig.lr_patience)
    assert (cfg("--lr-schedule", "plateau", "--lr-patience", "3").lr_schedule, cfg("--lr-patience", "3").lr_patience) == ("plateau", 3)


def test_a_constant_schedule_records_the_same_rate_every_epoch(store):
    run = trained(store, tiny(lr_schedule="constant", epochs=3))
    assert [m["lr"] for m in run.read_metrics()] == [TrainConfig.lr] * 3
    assert "halved" not in run.read_results()["folds"][0]["stop_reason"]


def test_plateau_halves_the_rate_as_the_validation_history_says_and_resumes_to_the_same_run(store):
    cfg = tiny()
    ref = trained(store, cfg)
    metrics = ref.read_metrics()
    rates = [m["lr"] for m in metrics]
    assert rates == expected_rates(cfg, [m["val_UA"] for m in metrics])
    assert rates[-1] < cfg.lr  # it did halve (with lr_patience 1, at the first epoch without a better UA)
    drops = [m["epoch"] for m, nxt in zip(metrics, metrics[1:]) if nxt["lr"] < m["lr"]]
    assert ref.read_results()["folds"][0]["stop_reason"].endswith(", ".join(map(str, drops)))

    def stop_at_epoch_6(event):
        if event.get("epoch") == 6 and event.get("batch") == 1:
            raise Interrupted()

    run = new_run(cfg, store)
    with run.lock(), pytest.raises(Interrupted):
        train_run(run, progress=stop_at_epoch_6)
    with run.lock():
        train_run(run)
    assert [m["lr"] for m in run.read_metrics()] == rates
    assert run.read_results()["pooled"] == ref.read_results()["pooled"]
    assert np.array_equal(run.load_embeddings(0)["z"], ref.load_embeddings(0)["z"])


def test_refit_replays_the_selection_pass_rates(store):
    cfg = tiny(refit=True, epochs=6)
    run = trained(store, cfg)
    selection = {m["epoch"]: m["lr"] for m in run.read_metrics()}
    refit = read_jsonl(run.fold_dir(0) / "refit.jsonl")
    assert refit and [r["lr"] for r in refit] == [selection[r["epoch"]] for r in refit]


def test_a_bench_names_and_builds_the_plateau_recipe():
    from tests.conftest import import_bench

    sens = import_bench("sensitivity")
    args = sens.parse_args(["--lr-schedule", "plateau", "--lambdas", "0", "--alphas", "0.5"])
    assert sens.make_spec(args).base["lr_schedule"] == "plateau"
    assert sens.make_spec(args).sweep_id == "sens-emodb-e100p20-plateau5-speaker"
    common = import_bench("common")
    assert common.recipe_tag(TrainConfig()) == "e100p20-speaker"  # the constant rate adds nothing
