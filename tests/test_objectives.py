"""The objectives (ser_lab/learn/objectives.py) and the one training step (trainer.train_step).

Each arm's loss is checked against a hand computation (plain Python loops over a tiny batch);
the paper's arm is checked to train exactly as the code before the objective interface did;
every arm's resume state is checked to continue training exactly; every arm trains from the CLI.
"""

import math
import os

import numpy as np
import pytest
import torch

from ser_lab.cli import main
from ser_lab.config import OBJECTIVES, ObjectiveConfig, TrainConfig
from ser_lab.errors import ConfigError, Interrupted
from ser_lab.learn.losses import CenterLoss, class_weights, weighted_cross_entropy
from ser_lab.learn.model import CnnBiGru, CosineLinear, ModelConfig
from ser_lab.learn.objectives import (
    am_softmax_loss,
    batch_hard_triplet_loss,
    make_objective,
    model_options,
    supervised_contrastive_loss,
)
from ser_lab.learn.trainer import (
    load_fold_state,
    new_run,
    save_fold_state,
    train_run,
    train_step,
)
from ser_lab.runs import RunStore

CPU = torch.device("cpu")
# A tiny batch: 6 samples, 3 classes; class 2 has a single sample (no positive for it).
Z = np.array(
    [[0.5, -1.0, 2.0], [1.5, 0.2, -0.3], [-0.7, 0.8, 0.1], [0.3, 1.1, -1.2], [2.0, -0.4, 0.6], [0.9, 0.9, 0.9]]
)
Y = [0, 0, 1, 1, 2, 0]
WEIGHTS = [0.5, 1.0, 2.0]


def tensors():
    return torch.tensor(Z, dtype=torch.float32), torch.tensor(Y), torch.tensor(WEIGHTS)


def dist(a, b) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def weighted_mean(values: dict[int, float]) -> float:
    """sum_i w_{y_i} v_i / sum_i w_{y_i} over the anchors i in `values`."""
    total = sum(WEIGHTS[Y[i]] for i in values)
    return sum(WEIGHTS[Y[i]] * v for i, v in values.items()) / total


# ----------------------------------------------------------------------------- losses by hand


def test_center_arm_parts_are_the_papers_losses():
    z, y, w = tensors()
    logits = torch.tensor(Z[:, :3] * 0.7, dtype=torch.float32)
    obj = make_objective(ObjectiveConfig("center", lam=0.3, alpha=0.5), 3, 3)
    parts = obj.loss(z, logits, y, w)
    assert set(parts) == {"softmax_loss", "center_loss", "total_loss"}
    # centers start at 0: L_c = sum w ||z||^2 / W
    l_c = weighted_mean({i: sum(v * v for v in Z[i]) for i in range(6)})
    l_s = weighted_mean({i: -math.log(math.exp(0.7 * Z[i][Y[i]]) / sum(math.exp(0.7 * v) for v in Z[i])) for i in range(6)})
    assert parts["center_loss"].item() == pytest.approx(l_c, rel=1e-6)
    assert parts["softmax_loss"].item() == pytest.approx(l_s, rel=1e-6)
    assert parts["total_loss"].item() == pytest.approx(l_s + 0.3 * l_c, rel=1e-6)
    obj.after_step(z, y, w)  # first batch with a class: its center is set to the batch mean
    assert np.allclose(obj.centers[0].numpy(), Z[[0, 1, 5]].mean(0), atol=1e-6)


def test_learned_centers_move_by_sgd_on_the_center_loss_alone():
    z, y, w = tensors()
    obj = make_objective(ObjectiveConfig("center_learned", lam=0.3, center_lr=0.4), 3, 3)
    start = np.array([[0.1, 0.2, 0.3], [-1.0, 0.0, 1.0], [0.0, 0.5, 0.0]])
    with torch.no_grad():
        obj.learned.copy_(torch.tensor(start, dtype=torch.float32))
    z.requires_grad_(True)
    parts = obj.loss(z, torch.zeros(6, 3), y, w)
    l_c = weighted_mean({i: dist(Z[i], start[Y[i]]) ** 2 for i in range(6)})
    assert parts["center_loss"].item() == pytest.approx(l_c, rel=1e-6)
    parts["total_loss"].backward()
    assert obj.learned.grad is None  # the model's loss sends no gradient to the centers
    # dL_c/dz_i = 2 w_i (z_i - c_{y_i}) / W, weighted by lambda in the total
    total_w = sum(WEIGHTS[c] for c in Y)
    for i in range(6):
        expect = 0.3 * 2 * WEIGHTS[Y[i]] * (Z[i] - start[Y[i]]) / total_w
        assert np.allclose(z.grad[i].numpy(), expect, atol=1e-6)
    obj.after_step(z, y, w)
    # c_j <- c_j - lr * dL_c/dc_j,  dL_c/dc_j = -2 sum_{i: y_i = j} w_i (z_i - c_j) / W  (no lambda)
    for j in range(3):
        grad = -2 * sum(WEIGHTS[j] * (Z[i] - start[j]) for i in range(6) if Y[i] == j) / total_w
        assert np.allclose(obj.centers[j].numpy(), start[j] - 0.4 * grad, atol=1e-6)


def test_am_softmax_by_hand():
    z, y, w = tensors()
    head = CosineLinear(3, 3, scale=5.0)
    weight = head.weight.detach().numpy().astype(np.float64)
    cos = [[float(np.dot(weight[j], Z[i]) / (np.linalg.norm(weight[j]) * np.linalg.norm(Z[i]))) for j in range(3)] for i in range(6)]
    logits = head(z)
    assert np.allclose(logits.detach().numpy(), 5.0 * np.array(cos), atol=1e-5)
    s, m = 5.0, 0.35
    per = {}
    for i in range(6):
        target = math.exp(s * (cos[i][Y[i]] - m))
        others = sum(math.exp(s * cos[i][j]) for j in range(3) if j != Y[i])
        per[i] = -math.log(target / (target + others))
    assert am_softmax_loss(logits, y, w, s, m).item() == pytest.approx(weighted_mean(per), rel=1e-5)
    obj = make_objective(ObjectiveConfig("amsoftmax", am_scale=s, am_margin=m), 3, 3)
    parts = obj.loss(z, logits, y, w)
    assert set(parts) == {"softmax_loss", "total_loss"}
    assert parts["total_loss"].item() == pytest.approx(weighted_mean(per), rel=1e-5)
    assert model_options(obj.cfg) == {"head": "cosine", "cosine_scale": s}


def test_batch_hard_triplet_by_hand():
    z, y, w = tensors()
    margin = 0.3
    per = {}
    for a in range(6):
        pos = [dist(Z[a], Z[p]) for p in range(6) if p != a and Y[p] == Y[a]]
        neg = [dist(Z[a], Z[n]) for n in range(6) if Y[n] != Y[a]]
        if pos and neg:
            per[a] = max(0.0, margin + max(pos) - min(neg))
    assert 4 not in per  # the lone sample of class 2 is no anchor
    assert batch_hard_triplet_loss(z, y, w, margin).item() == pytest.approx(weighted_mean(per), rel=1e-5)
    parts = make_objective(ObjectiveConfig("triplet", lam=0.5, triplet_margin=margin), 3, 3).loss(z, torch.zeros(6, 3), y, w)
    assert parts["total_loss"].item() == pytest.approx(parts["softmax_loss"].item() + 0.5 * weighted_mean(per), rel=1e-5)


def test_supervised_contrastive_by_hand():
    z, y, w = tensors()
    tau = 0.2
    p = [v / np.linalg.norm(v) for v in Z]
    per = {}
    for i in range(6):
        positives = [q for q in range(6) if q != i and Y[q] == Y[i]]
        if not positives:
            continue
        denom = sum(math.exp(float(np.dot(p[i], p[a])) / tau) for a in range(6) if a != i)
        per[i] = -sum(math.log(math.exp(float(np.dot(p[i], p[q])) / tau) / denom) for q in positives) / len(positives)
    assert supervised_contrastive_loss(z, y, w, tau).item() == pytest.approx(weighted_mean(per), rel=1e-5)
    parts = make_objective(ObjectiveConfig("supcon", lam=0.5, supcon_temperature=tau), 3, 3).loss(z, torch.zeros(6, 3), y, w)
    assert parts["supcon_loss"].item() == pytest.approx(weighted_mean(per), rel=1e-5)


@pytest.mark.parametrize("fn", [
    lambda z, y, w: batch_hard_triplet_loss(z, y, w, 0.3),
    lambda z, y, w: supervised_contrastive_loss(z, y, w, 0.1),
])
def test_pair_losses_are_zero_not_nan_without_pairs_and_finite_on_duplicates(fn):
    w = torch.ones(3)
    one = torch.randn(1, 4, requires_grad=True)
    value = fn(one, torch.tensor([1]), w)  # a single sample: no positive, no negative
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(one.grad).all()
    same = torch.ones(4, 4, requires_grad=True)  # identical points of two classes
    value = fn(same, torch.tensor([0, 0, 1, 1]), w)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(same.grad).all()


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("kw,match", [
    ({"objective": "arcface"}, "objective must be one of"),
    ({"objective": "center_learned", "center_lr": 0.0}, "center_lr"),
    ({"objective": "amsoftmax", "am_margin": 1.0}, "am_margin"),
    ({"am_scale": float("nan")}, "am_scale"),
    ({"triplet_margin": -0.1}, "triplet_margin"),
    ({"supcon_temperature": 0.0}, "supcon_temperature"),
    ({"center_lr": "fast"}, "center_lr must be a finite number > 0, got 'fast'"),
])
def test_objective_settings_are_validated(kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kw).validate()


def test_objective_is_a_sweep_axis():
    from ser_lab.experiments.sweep import SweepSpec, expand

    spec = SweepSpec(base={"epochs": 1, "lam": 0.3}, grid={"objective": ["center", "supcon"], "supcon_temperature": ["0.1", "0.5"]}, seeds=[0])
    configs = expand(spec)
    assert {(c.objective, c.supcon_temperature) for c in configs} == {
        ("center", 0.1), ("center", 0.5), ("supcon", 0.1), ("supcon", 0.5)}
    with pytest.raises(ConfigError, match="objective must be one of"):
        expand(SweepSpec(grid={"objective": ["nope"]}, seeds=[0]))


# ----------------------------------------------------------------------------- the one step


def small_model(**kw) -> CnnBiGru:
    return CnnBiGru(ModelConfig(n_bins=64, n_classes=3, conv_channels=(4, 4, 4, 4), gru_hidden=8, feature_dim=6, **kw))


def batches(n: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.randint(40, 80, (8,), generator=gen)
        x = torch.randn(8, int(lengths.max()), 64, generator=gen)
        out.append((x, lengths, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])))
    return out


def test_train_step_is_the_pre_objective_step_bit_for_bit():
    """The step before objectives.py existed, copied verbatim from trainer.train_fold, against
    train_step with the paper's objective: identical weights, centers and losses."""
    weights = class_weights(torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), 3)
    torch.manual_seed(0)
    old = small_model()
    torch.manual_seed(0)
    new = small_model()
    old_centers = CenterLoss(3, 6, 0.5)
    objective = make_objective(ObjectiveConfig("center", lam=0.3, alpha=0.5), 3, 6)
    opt_old = torch.optim.Adam(old.parameters(), lr=3e-4)
    opt_new = torch.optim.Adam(new.parameters(), lr=3e-4)
    for x, lens, y in batches():
        z, logits = old(x, lens)
        l_s = weighted_cross_entropy(logits, y, weights)
        l_c = old_centers(z, y, weights)
        loss = l_s + 0.3 * l_c
        opt_old.zero_grad(set_to_none=True)
        loss.backward()
        opt_old.step()
        old_centers.update_centers(z, y)

        step = train_step(new, objective, opt_new, x, lens, y, weights, CPU)
        assert step.losses["total_loss"].item() == loss.item()
        assert step.losses["center_loss"].item() == l_c.item()
    for a, b in zip(old.state_dict().values(), new.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(old_centers.centers, objective.centers)


# Recorded with the code before the objective interface (commit 9818313) on this config.
REFERENCE = {
    "metrics": [
        (1.3894922733306885, 0.08692267537117004, 1.4155690670013428),
        (1.383518099784851, 0.04694726690649986, 1.3976023197174072),
    ],
    "z_first": [-0.006955097895115614, -0.012890216894447803, -0.011700131930410862, 0.03658995032310486],
    "z_sum": -0.8142420926378691,
    "snapshot2_z_first": [-0.008668998256325722, -0.011306129395961761, -0.011406236328184605, 0.030204186215996742],
    "snapshot2_z_sum": -1.7992516641406837,
    "toy_z_first": [-0.8182339668273926, -0.22620801627635956],
}


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # features of the tiny corpus, extracted once


@pytest.fixture
def env(tmp_path, monkeypatch, feature_cache):
    monkeypatch.setenv("SER_LAB_CACHE", str(feature_cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "runs"))
    return tmp_path


def tiny(**kw) -> TrainConfig:
    base = dict(corpus="synthetic", corpus_options={"size": "tiny"}, epochs=2, n_folds=2, folds=[0], workers=1, seed=3,
                normalise="corpus", channels_last=False)  # the reference values were recorded with the
    # training part's statistics, in the default weight layout
    return TrainConfig(**{**base, **kw})


def test_a_short_training_matches_the_values_recorded_before_the_change(env):
    """Same features, folds, batches and step as before objectives.py: the same numbers (to
    float32 rounding, so that the test also holds on another CPU; on the recording machine
    they are equal)."""
    from ser_lab.learn.toy import ToyConfig, train_toy

    run = new_run(tiny(lam=0.3, alpha=0.5, snapshot_every=1), RunStore(env / "runs"))
    with run.lock():
        train_run(run)
    metrics = [(m["softmax_loss"], m["center_loss"], m["total_loss"]) for m in run.read_metrics()]
    assert np.allclose(metrics, REFERENCE["metrics"], rtol=1e-5, atol=0)
    z = run.load_embeddings(0)["z"]
    assert np.allclose(z[0, :4], REFERENCE["z_first"], rtol=1e-4, atol=1e-7)
    assert float(z.astype(np.float64).sum()) == pytest.approx(REFERENCE["z_sum"], rel=1e-4)
    snap = np.asarray(run.load_snapshot(0, 2)["z"])
    assert np.allclose(snap[0, :4], REFERENCE["snapshot2_z_first"], rtol=1e-4, atol=1e-7)
    assert float(snap.astype(np.float64).sum()) == pytest.approx(REFERENCE["snapshot2_z_sum"], rel=1e-4)
    toy = train_toy(ToyConfig(lam=0.5, steps=40, frames=3))
    assert np.allclose(toy.final.z[0], REFERENCE["toy_z_first"], rtol=1e-5)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_arm_continues_exactly_from_its_resume_state(name, tmp_path):
    """k steps, save_fold_state, fresh model/objective/optimiser, load_fold_state, k more steps:
    the same weights and centers as 2k uninterrupted steps (the objective's own state, e.g. the
    learned centers and their optimiser, or the α rule's initialised flags, travels in last.pt)."""
    from ser_lab.learn.trainer import FoldState

    cfg = ObjectiveConfig(name, lam=0.3, alpha=0.5)
    weights = torch.ones(3)

    def fresh(seed: int):
        torch.manual_seed(seed)
        model = small_model(**model_options(cfg))
        return model, make_objective(cfg, 3, 6), torch.optim.Adam(model.parameters(), lr=1e-2)

    data = batches(6)
    ref = fresh(0)
    for x, lens, y in data:
        train_step(ref[0], ref[1], ref[2], x, lens, y, weights, CPU)

    first = fresh(0)
    for x, lens, y in data[:3]:
        train_step(first[0], first[1], first[2], x, lens, y, weights, CPU)
    save_fold_state(tmp_path / "last.pt", first[0], first[1], first[2], FoldState(epoch=1))
    resumed = fresh(1)  # different initial weights: everything must come from last.pt
    assert load_fold_state(tmp_path / "last.pt", *resumed).epoch == 1
    for x, lens, y in data[3:]:
        train_step(resumed[0], resumed[1], resumed[2], x, lens, y, weights, CPU)
    for a, b in zip(ref[0].state_dict().values(), resumed[0].state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(ref[1].centers, resumed[1].centers)


def test_old_resume_state_with_center_loss_key_still_loads(tmp_path):
    from ser_lab.fileio import atomic_torch_save
    from ser_lab.learn.trainer import FoldState

    model = small_model()
    old = CenterLoss(3, 6, 0.5)
    old.centers[:] = 1.5
    old.initialised[:] = True
    opt = torch.optim.Adam(model.parameters())
    atomic_torch_save(tmp_path / "last.pt", {
        "epoch": 2, "best_val_ua": 0.5, "best_epoch": 1, "best_model": None, "best_centers": None,
        "model": model.state_dict(), "center_loss": old.state_dict(), "optimiser": opt.state_dict()})
    objective = make_objective(ObjectiveConfig("center"), 3, 6)
    assert load_fold_state(tmp_path / "last.pt", model, objective, opt) == FoldState(2, 0.5, 1, None, None)
    assert torch.equal(objective.centers, old.centers)


def test_learned_centers_run_interrupted_mid_epoch_resumes_to_the_same_result(env):
    """A whole run of the arm with its own optimiser, stopped inside epoch 2 and resumed."""
    store = RunStore(env / "runs")
    cfg = tiny(lam=0.3, objective="center_learned")
    ref = new_run(cfg, store)
    with ref.lock():
        train_run(ref)

    def stop_in_epoch_2(event):
        if event.get("epoch") == 2 and event.get("batch") == 1:
            raise Interrupted()

    run = new_run(cfg, store)
    with run.lock(), pytest.raises(Interrupted):
        train_run(run, progress=stop_in_epoch_2)
    assert (run.fold_dir(0) / "last.pt").exists()
    with run.lock():
        train_run(run)
    assert np.array_equal(run.load_embeddings(0)["z"], ref.load_embeddings(0)["z"])
    assert torch.equal(run.load_model(0)["centers"], ref.load_model(0)["centers"])
    assert run.read_results()["pooled"] == ref.read_results()["pooled"]


@pytest.mark.parametrize("name", [n for n in OBJECTIVES if n != "center"])
def test_every_arm_trains_from_the_cli(name, env, capsys):
    args = ["--store", str(env / "runs"), "train", "--corpus", "synthetic", "--size", "tiny",
            "--epochs", "1", "--folds", "2", "--fold", "0", "--workers", "1", "--lam", "0.3",
            "--objective", name]
    assert main(args) == 0
    (summary,) = RunStore(env / "runs").list()
    run = RunStore(env / "runs").get(summary.run_id)
    assert run.config["train"]["objective"] == name
    (m,) = run.read_metrics()
    keys = make_objective(ObjectiveConfig(name), 4, 64).loss_keys
    assert all(np.isfinite(m[k]) for k in keys)
    payload = run.load_model(0)
    assert payload["centers"].shape == (4, 64) and torch.isfinite(payload["centers"]).all()
    assert payload["model_config"]["head"] == ("cosine" if name == "amsoftmax" else "linear")
    from ser_lab.learn.evaluate import rescore_run

    # the saved model (cosine head included) reloads and predicts what the run recorded
    assert rescore_run(run, device="cpu")["pooled"] == run.read_results()["pooled"]
    assert "pooled" in capsys.readouterr().out


def test_cli_refuses_a_bad_objective_setting(env, capsys):
    args = ["--store", str(env / "runs"), "train", "--objective", "amsoftmax", "--am-margin", "2"]
    assert main(args) == 2
    assert "am_margin must be in [0, 1)" in capsys.readouterr().err
    assert not os.path.exists(env / "runs") or not any((env / "runs").iterdir())
