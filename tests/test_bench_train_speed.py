"""bench/train_speed.py at a tiny size: it trains through the real train_fold on both corpora,
with bucketed and plain batches, and its JSON has the shape and invariants the README quotes
(no timing asserts: the machine is shared)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_lab.learn import trainer
from tests.conftest import import_bench
from tests.fake_corpora import write_wav

SPEAKERS = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
SENTENCES = ["a01", "a02", "b01", "b02"]


@pytest.fixture(scope="module")
def ts():
    return import_bench("train_speed")


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def fake_emodb(root: Path) -> Path:
    """40 EmoDB-named noise clips of 0.5-1.2 s (10 speakers, 4 emotions)."""
    for i, spk in enumerate(SPEAKERS):
        for j, sentence in enumerate(SENTENCES):
            write_wav(root / "wav" / f"{spk}{sentence}{'WNFT'[j % 4]}a.wav",
                      seconds=0.5 + 0.1 * ((2 * i + j) % 8), seed=10 * i + j)
    return root


def test_plain_batcher_partitions_training_and_keeps_evaluation_batches(ts):
    lengths = np.array([50, 300, 120, 80, 400, 60, 90, 250, 70])
    plain = ts.EpochBatcher("plain")
    batches = plain(lengths, 4, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [len(b) for b in batches] == [4, 4, 1]
    assert plain.epochs[0]["real_frames"] == int(lengths.sum())
    assert plain.epochs[0]["padded_frames"] == sum(len(b) * lengths[b].max() for b in batches)
    evaluation = plain(lengths, 4, None)  # predict's call: the trainer's own, not recorded
    expected = trainer.make_batches(lengths, 4, None)
    assert all(np.array_equal(a, b) for a, b in zip(evaluation, expected, strict=True))
    assert len(plain.epochs) == 1
    bucketed = ts.EpochBatcher("bucketed")(lengths, 4, np.random.default_rng(0))
    expected = trainer.make_batches(lengths, 4, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(bucketed, expected, strict=True))
    with pytest.raises(ValueError, match="batching must be one of"):
        ts.EpochBatcher("sorted")


def in_unit(x: float) -> bool:
    return math.isfinite(x) and 0 < x <= 1


def test_tiny_run_measures_train_fold_on_both_corpora(ts, tmp_path, monkeypatch, restore_threads):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    root = fake_emodb(tmp_path / "emodb")
    originals = (trainer.make_batches, trainer.CnnBiGru, torch.Tensor.backward)
    result = ts.run(("synthetic-var", "emodb"), n=40, epochs=1, repeats=1, threads=1, root=root,
                    probes=False, length_scale=0.25)
    # the bench-only substitutions and hooks are gone again
    assert (trainer.make_batches, trainer.CnnBiGru, torch.Tensor.backward) == originals

    m = result["machine"]
    assert m["torch_threads"] == 1 and m["threads_from"] == "--threads"
    assert m["cpus"] >= 1 and m["torch"] == torch.__version__
    assert len(m["load_average_at_start"]) == len(m["load_average_at_end"]) == 3
    assert "commit" in result["code"]
    peak = result["peak"]
    assert peak["peak_gflops"] == max(peak["matmul_gflops_start"], peak["matmul_gflops_end"]) > 0
    assert set(result["corpora"]) == {"synthetic-var", "emodb"}

    for name, out in result["corpora"].items():
        data = out["data"]
        assert data["train_utterances"] > 0
        assert out["train_gflop_per_padded_frame"] > 0
        for mode in ("bucketed", "plain"):
            r = out[mode]
            # one repeat of one epoch, as train_fold recorded it in metrics.jsonl
            assert len(r["utt_per_s_by_repeat"]) == 1 and len(r["utt_per_s_by_repeat"][0]) == 1
            rate, seconds = r["utt_per_s_by_repeat"][0][0], r["train_time_s_by_repeat"][0][0]
            assert math.isfinite(r["utt_per_s"]) and r["utt_per_s"] > 0, (name, mode)
            assert rate == pytest.approx(data["train_utterances"] / seconds, rel=2e-3)
            assert r["train_fold_wall_s_by_repeat"][0] > seconds
            assert in_unit(r["fraction_of_peak"]), (name, mode, r["fraction_of_peak"])
            assert in_unit(r["useful_frame_fraction"])
            assert r["real_frames_per_epoch"] <= r["padded_frames_per_epoch"]
        assert out["bucketed"]["real_frames_per_epoch"] == out["plain"]["real_frames_per_epoch"]
        assert out["bucketed"]["useful_frame_fraction"] >= out["plain"]["useful_frame_fraction"]
        assert out["speedup"] > 0 and len(out["speedup_by_repeat"]) == 1
        agree = out["z_agreement"]
        assert agree["agree_within_1e-4"] is True and agree["max_abs_diff"] <= 1e-4

        parts = out["breakdown"]
        assert parts["same_metrics_as_untimed"] is True
        shares = {k: v["share"] for k, v in parts["stages"].items()}
        assert all(s >= 0 for s in shares.values()), shares  # the step's stages fit in train_time_s
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
        for stage in ("forward: CNN", "backward: CNN", "optimiser (Adam)"):
            assert in_unit(shares[stage]), (name, stage)

    syn = result["corpora"]["synthetic-var"]
    assert syn["data"]["train_utterances"] == 40
    assert syn["plain"]["useful_frame_fraction"] < 1  # the lengths vary
    ops = syn["profiler_top_ops"]  # 40 utterances: 2 batches, the second one profiled
    assert ops and all(in_unit(o["share"]) and o["calls"] >= 1 for o in ops)
    assert result["corpora"]["emodb"]["data"]["corpus_utterances"] == 40
