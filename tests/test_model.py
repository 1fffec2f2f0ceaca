import pytest
import torch

from ser_lab.learn.model import (
    CnnBiGru,
    ConvBlock,
    ModelConfig,
    conv_out_length,
    min_frames,
    output_length,
    time_mask,
)


@pytest.fixture(scope="module")
def model() -> CnnBiGru:
    torch.manual_seed(0)
    return CnnBiGru(ModelConfig(n_bins=128, n_classes=4)).eval()


def test_layers_match_the_paper(model):
    convs = [b.conv for b in model.cnn]
    assert [c.out_channels for c in convs] == [48, 64, 80, 96]
    assert convs[0].kernel_size == (7, 7) and convs[0].stride == (2, 2)
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs[1:])
    assert model.gru.hidden_size == 128 and model.gru.bidirectional
    assert (model.fc1.in_features, model.fc1.out_features) == (256, 64)
    assert isinstance(model.prelu, torch.nn.PReLU)
    assert (model.fc2.in_features, model.fc2.out_features) == (64, 4)
    # Mel 128 bins -> 64 (conv1 stride 2) -> 32 -> 16 -> 8 -> 4 after four pools; 96 channels.
    assert model.gru_input == 96 * 4


@pytest.mark.parametrize("n_bins,n_classes", [(128, 4), (513, 4), (128, 7), (513, 2)])
def test_shapes_for_mel_stft_and_any_class_count(n_bins, n_classes):
    m = CnnBiGru(ModelConfig(n_bins=n_bins, n_classes=n_classes)).eval()
    x = torch.randn(3, 140, n_bins)
    z, logits = m(x, torch.tensor([140, 90, 60]))
    assert z.shape == (3, 64)
    assert logits.shape == (3, n_classes)
    assert torch.isfinite(z).all() and torch.isfinite(logits).all()


def test_padding_does_not_change_an_utterance(model):
    torch.manual_seed(1)
    lengths = [57, 203, 120, 311, 64]
    utterances = [torch.randn(n, 128) for n in lengths]
    batch = torch.zeros(len(lengths), max(lengths), 128)
    for i, u in enumerate(utterances):
        batch[i, : len(u)] = u
    # Garbage in the padded region must not matter either: it is masked.
    for i, n in enumerate(lengths):
        batch[i, n:] = 5.0
    with torch.no_grad():
        z_batch, logits_batch = model(batch, torch.tensor(lengths))
        for i, u in enumerate(utterances):
            z_alone, logits_alone = model(u[None], torch.tensor([len(u)]))
            assert torch.allclose(z_alone[0], z_batch[i], atol=1e-4)
            assert torch.allclose(logits_alone[0], logits_batch[i], atol=1e-4)


def test_padding_changes_nothing_in_gradients_either(model):
    # The center loss acts on z: its gradient must not depend on the batch's padding either.
    u = torch.randn(80, 128, requires_grad=True)
    z_alone, _ = model(u[None], torch.tensor([80]))
    (g_alone,) = torch.autograd.grad(z_alone.sum(), u)
    padded = torch.zeros(1, 200, 128)
    u2 = u.detach().clone().requires_grad_(True)
    padded = torch.cat([u2[None], torch.zeros(1, 120, 128)], dim=1)
    z_pad, _ = model(padded, torch.tensor([80]))
    (g_pad,) = torch.autograd.grad(z_pad.sum(), u2)
    assert torch.allclose(g_alone, g_pad, atol=1e-5)


def test_output_length_and_minimum_input():
    assert output_length(1400) == 43  # 14 s at 100 frames/s -> 43 GRU steps
    n = min_frames()
    assert output_length(n) == 1 and output_length(n - 1) == 0
    m = CnnBiGru().eval()
    with pytest.raises(ValueError, match="too short"):
        m(torch.randn(1, n - 1, 128), torch.tensor([n - 1]))


def test_config_round_trip():
    cfg = ModelConfig(n_bins=513, n_classes=7)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("kernel,stride", [(7, 2), (3, 1)])
def test_conv_block_equals_the_papers_order(kernel, stride):
    # ConvBlock pools before the ReLU for speed; it must equal the paper's conv -> ReLU ->
    # 2x2 max-pool with the padding zeroed before and after the pool, values and gradients.
    torch.manual_seed(3)
    block = ConvBlock(2, 5, kernel, stride)
    x = torch.randn(3, 2, 16, 41)
    lengths = torch.tensor([41, 30, 9])
    x = time_mask(x, lengths)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()

    out, out_lengths = block(x1, lengths)

    conv_lengths = conv_out_length(lengths, kernel, stride, kernel // 2)
    ref = time_mask(torch.relu(block.conv(x2)), conv_lengths)
    ref_lengths = torch.div(conv_lengths, 2, rounding_mode="floor")
    ref = time_mask(block.pool(ref), ref_lengths)

    assert torch.equal(out_lengths, ref_lengths)
    assert torch.equal(out, ref)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    assert torch.equal(x1.grad, x2.grad)
