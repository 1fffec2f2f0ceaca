"""Channels-last conv weights on a CPU (TrainConfig.channels_last): the layout is really used,
changes results only by float rounding, and runs recorded before it keep their own layout."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError
from ser_lab.learn.model import CnnBiGru, ModelConfig, to_channels_last
from ser_lab.learn.trainer import new_fold_model, new_run, train_run
from ser_lab.runs import RunStore


def layered_convs(model: torch.nn.Module) -> list[torch.nn.Conv2d]:
    # with one input channel both layouts have the same strides, so only these tell them apart
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]


def test_to_channels_last_changes_the_layout_not_the_function():
    torch.manual_seed(0)
    plain = CnnBiGru(ModelConfig(n_bins=40, n_classes=4))
    fast = CnnBiGru(ModelConfig(n_bins=40, n_classes=4))
    fast.load_state_dict(plain.state_dict())
    assert to_channels_last(fast) is fast
    convs = layered_convs(fast)
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not any(c.weight.is_contiguous(memory_format=torch.channels_last) for c in layered_convs(plain))
    x, lengths = torch.randn(3, 90, 40), torch.tensor([90, 70, 50])
    z_plain, logits_plain = plain(x, lengths)
    z_fast, logits_fast = fast(x, lengths)
    assert torch.allclose(z_fast, z_plain, atol=1e-5)
    logits_plain.sum().backward()
    logits_fast.sum().backward()
    for a, b in zip(plain.parameters(), fast.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-4, rtol=1e-4)


def test_a_fold_model_on_cpu_follows_the_config():
    data = SimpleNamespace(features=[np.zeros((50, 40), np.float32)])
    cpu = torch.device("cpu")
    model, _, optimiser = new_fold_model(TrainConfig(), data, 4, 0, cpu)
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in layered_convs(model))
    # Adam's moment buffers take the parameter's layout
    model(torch.randn(2, 50, 40), torch.tensor([50, 40]))[1].sum().backward()
    optimiser.step()
    conv = layered_convs(model)[0]
    assert optimiser.state[conv.weight]["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    plain, _, _ = new_fold_model(TrainConfig(channels_last=False), data, 4, 0, cpu)
    assert not any(c.weight.is_contiguous(memory_format=torch.channels_last) for c in layered_convs(plain))


def test_old_runs_resume_in_the_default_layout_and_the_field_is_checked():
    assert TrainConfig().channels_last is True
    old = TrainConfig().to_dict()
    del old["channels_last"]
    assert TrainConfig.from_dict(old).channels_last is False
    with pytest.raises(ConfigError, match="channels_last"):
        TrainConfig(channels_last="yes").validate()


def test_training_in_either_layout_gives_the_same_numbers_up_to_rounding(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs")
    losses = {}
    for layout in (False, True):
        cfg = TrainConfig(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=2, patience=0,
                          n_folds=2, folds=[0], workers=1, lam=0.3, channels_last=layout)
        run = new_run(cfg, store, name=f"layout-{layout}")
        with run.lock():
            train_run(run)
        assert run.config["train"]["channels_last"] is layout
        losses[layout] = [m["total_loss"] for m in run.read_metrics()]
    assert len(losses[True]) == len(losses[False]) == 2
    assert np.allclose(losses[True], losses[False], rtol=1e-3)
