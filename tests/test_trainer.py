"""End-to-end training on a tiny synthetic corpus: run folder contents, resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_lab.config import TrainConfig
from ser_lab.errors import ConfigError
from ser_lab.learn.trainer import make_batches, new_run, select_device, train_run
from ser_lab.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    store = tmp_path / "runs"
    monkeypatch.setenv("SER_LAB_CACHE", str(cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(store))
    return {"cache": cache, "store": store}


def tiny_config(**kw) -> TrainConfig:
    base = dict(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=2, n_folds=2, workers=1, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_train_leaves_a_complete_run_folder(env):
    store = RunStore(env["store"])
    run = new_run(tiny_config(lam=0.3, snapshot_every=1), store, name="tiny test")
    with run.lock():
        results = train_run(run)
    files = {p.relative_to(run.dir).as_posix() for p in run.dir.rglob("*") if p.is_file()}
    for f in ["config.json", "status.json", "metrics.jsonl", "results.json"]:
        assert f in files
    for k in (0, 1):
        assert f"fold_{k}/model.pt" in files and f"fold_{k}/embeddings.npz" in files
        assert f"fold_{k}/last.pt" not in files  # resume state is removed once a fold is done
    assert run.read_status()["state"] == "done"
    config = json.loads((run.dir / "config.json").read_text())
    assert config["train"]["lam"] == 0.3 and config["train"]["seed"] == 3
    assert config["data"]["fingerprint"] and config["versions"]["torch"] == torch.__version__

    metrics = run.read_metrics()
    assert len(metrics) == 2 * 2  # one line per epoch per fold
    for m in metrics:
        for key in ["softmax_loss", "center_loss", "total_loss", "train_UA", "train_WA", "val_UA",
                    "val_WA", "intra_dist", "inter_dist"]:
            assert np.isfinite(m[key])
        assert m["total_loss"] == pytest.approx(m["softmax_loss"] + 0.3 * m["center_loss"], rel=1e-5)

    emb = run.load_embeddings(0)
    n = len(emb["z"])
    assert emb["z"].shape == (n, 64) and emb["probs"].shape == (n, 4)
    assert set(emb["split"]) == {"train", "val", "test"}
    assert np.allclose(emb["probs"].sum(1), 1, atol=1e-5)
    assert np.array_equal(emb["preds"], emb["probs"].argmax(1))
    # results.json is computed from these very predictions
    test = emb["split"] == "test"
    fold0 = results["folds"][0]
    assert fold0["WA"] == pytest.approx(float((emb["preds"][test] == emb["labels"][test]).mean()))
    assert 0 <= results["pooled"]["UA"] <= 1
    payload = run.load_model(0)
    assert payload["centers"].shape == (4, 64)
    assert payload["label_names"] == ["neutral", "angry", "happy", "sad"]
    assert run.list_snapshots(0) == [1, 2]


def test_same_seed_same_result_on_cpu(env):
    store = RunStore(env["store"])
    out = []
    for _ in range(2):
        run = new_run(tiny_config(epochs=1, folds=[0]), store)
        with run.lock():
            train_run(run)
        out.append(run.load_embeddings(0)["z"])
    assert np.array_equal(out[0], out[1])


def test_bucketing_keeps_every_utterance_once_and_groups_lengths():
    lengths = np.random.default_rng(0).integers(100, 1400, size=1000)
    batches = make_batches(lengths, 32, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = sum(len(b) * lengths[b].max() for b in np.array_split(np.random.default_rng(1).permutation(1000), 32))
    assert padded < 0.6 * plain  # far less padding than random batches


@pytest.mark.parametrize(
    "kw,match",
    [({"lam": -1}, "lambda"), ({"alpha": 1.5}, "alpha"), ({"features": "mfcc"}, "features"),
     ({"protocol": "x"}, "protocol"), ({"epochs": 0}, "epochs"), ({"n_folds": 1}, "folds")],
)
def test_invalid_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config(**kw).validate()


def test_cuda_asked_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(ConfigError, match="CUDA"):
        select_device("cuda")
    assert select_device("auto").type in ("cpu", "mps")


def _cli(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ser_lab", "--store", str(store), *args]


def test_kill_mid_epoch_then_resume_completes_with_the_same_result(env):
    args = ["train", "--corpus", "synthetic", "--size", "tiny", "--epochs", "4", "--folds", "2",
            "--seed", "5", "--workers", "1", "--lam", "0.3"]
    envvars = {**os.environ, "SER_LAB_CACHE": str(env["cache"])}
    # The uninterrupted reference run.
    ref_store = env["store"] / "ref"
    subprocess.run(_cli(ref_store, *args), check=True, env=envvars, capture_output=True, cwd=ROOT)
    ref = RunStore(ref_store).list()[0]

    store = env["store"] / "killed"
    proc = subprocess.Popen(_cli(store, *args), env=envvars, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline:
        runs = list(store.glob("*/metrics.jsonl")) if store.exists() else []
        if runs and len(runs[0].read_text().splitlines()) >= 2:
            metrics = runs[0]
            break
        time.sleep(0.05)
    assert metrics is not None, "training did not start"
    time.sleep(0.3)  # somewhere inside the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    summary = RunStore(store).list()[0]
    assert summary.state == "interrupted"
    assert summary.UA is None
    done = subprocess.run(_cli(store, "train", "--resume", summary.run_id), env=envvars, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = RunStore(store).get(summary.run_id)
    assert resumed.read_status()["state"] == "done"
    epochs = [(m["fold"], m["epoch"]) for m in resumed.read_metrics()]
    assert sorted(set(epochs)) == [(f, e) for f in (0, 1) for e in range(1, 5)]
    ref_results = RunStore(ref_store).get(ref.run_id).read_results()
    assert resumed.read_results()["pooled"] == ref_results["pooled"]
