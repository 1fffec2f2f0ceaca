import math

import pytest
import torch

from ser_lab.learn.losses import CenterLoss, class_weights, weighted_cross_entropy
from ser_lab.learn.model import CnnBiGru, ModelConfig


def test_class_weights_are_inverse_frequency():
    w = class_weights([0, 0, 0, 1], 3)
    # N / (C * N_j): 4 / (3 * 3), 4 / (3 * 1); a class with no member gets 0.
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 0.0]))
    assert torch.allclose(class_weights([0, 1, 2, 3], 4), torch.ones(4))


def test_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = torch.tensor([0, 1])
    weights = torch.tensor([1.0, 3.0])
    # sample 1: -log(1/2) = ln 2 (weight 1); sample 2: -log(1/4) = 2 ln 2 (weight 3)
    expected = (1 * math.log(2) + 3 * 2 * math.log(2)) / (1 + 3)
    assert weighted_cross_entropy(logits, labels, weights).item() == pytest.approx(expected, rel=1e-6)


def test_center_loss_by_hand():
    loss = CenterLoss(n_classes=2, feature_dim=2, alpha=0.5)
    loss.centers[:] = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    z = torch.tensor([[1.0, 0.0], [1.0, 3.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    weights = torch.tensor([1.0, 3.0])
    value = loss(z, labels, weights)
    # ||z1 - c0||^2 = 1, ||z2 - c1||^2 = 1 + 4 = 5; (1*1 + 3*5) / (1 + 3) = 4
    assert value.item() == pytest.approx(4.0)
    value.backward()
    # d/dz_i = 2 w_i (z_i - c_yi) / sum w
    assert torch.allclose(z.grad, torch.tensor([[2 * 1 * 1 / 4, 0.0], [2 * 3 * 1 / 4, 2 * 3 * 2 / 4]]))


def test_centers_get_no_gradient_and_are_not_parameters():
    loss = CenterLoss(n_classes=3, feature_dim=4)
    assert list(loss.parameters()) == []
    assert "centers" in dict(loss.named_buffers())
    z = torch.randn(5, 4, requires_grad=True)
    loss(z, torch.tensor([0, 1, 2, 0, 1]), torch.ones(3)).backward()
    assert loss.centers.grad is None


def test_center_update_follows_the_alpha_rule():
    loss = CenterLoss(n_classes=3, feature_dim=2, alpha=0.5)
    loss.centers[:] = torch.tensor([[2.0, 2.0], [5.0, 5.0], [9.0, 9.0]])
    loss.initialised[:] = True
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    loss.update_centers(z, torch.tensor([0, 0, 1]))
    # class 0: batch mean (2, 0) -> 0.5*(2,2) + 0.5*(2,0) = (2, 1)
    # class 1: batch mean (0, 4) -> 0.5*(5,5) + 0.5*(0,4) = (2.5, 4.5)
    # class 2: absent from the batch, keeps its center
    assert torch.allclose(loss.centers, torch.tensor([[2.0, 1.0], [2.5, 4.5], [9.0, 9.0]]))


def test_first_batch_of_a_class_sets_its_center():
    loss = CenterLoss(n_classes=2, feature_dim=2, alpha=0.1)
    loss.update_centers(torch.tensor([[4.0, 2.0], [2.0, 2.0]]), torch.tensor([1, 1]))
    assert torch.allclose(loss.centers[1], torch.tensor([3.0, 2.0]))
    assert torch.equal(loss.initialised, torch.tensor([False, True]))
    loss.update_centers(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
    assert torch.allclose(loss.centers[1], torch.tensor([2.7, 1.8]))  # 0.9*(3,2) + 0.1*(0,0)


def test_invalid_alpha():
    with pytest.raises(ValueError):
        CenterLoss(2, 2, alpha=1.5)


def _train_steps(lam: float | None, steps: int = 3) -> dict:
    torch.manual_seed(0)
    model = CnnBiGru(ModelConfig(n_classes=3))
    center = CenterLoss(3, 64, alpha=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    gen = torch.Generator().manual_seed(1)
    w = torch.tensor([1.0, 2.0, 0.5])
    for _ in range(steps):
        x = torch.randn(4, 64, 128, generator=gen)
        y = torch.tensor([0, 1, 2, 1])
        z, logits = model(x, torch.tensor([64, 50, 40, 64]))
        loss = weighted_cross_entropy(logits, y, w)
        if lam is not None:
            loss = loss + lam * center(z, y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        center.update_centers(z, y)
    return model.state_dict()


def test_lambda_zero_is_exactly_the_baseline():
    baseline = _train_steps(None)
    lam0 = _train_steps(0.0)
    lam1 = _train_steps(0.3)
    assert all(torch.equal(baseline[k], lam0[k]) for k in baseline)
    assert not all(torch.equal(baseline[k], lam1[k]) for k in baseline)
