"""The paper's network: a CNN over the spectrogram, a BiGRU over time, two fully connected layers.

Dai, Wu, Li, Wu, Jia, Meng, "Learning Discriminative Features from Spectrograms Using Center
Loss for Speech Emotion Recognition", ICASSP 2019 (see ../shared/docs/method.md, "Network").

Layer list, checkable line by line against the paper:
  conv1  48 filters 7x7, stride 2  + ReLU + 2x2 max-pool
  conv2  64 filters 3x3            + ReLU + 2x2 max-pool
  conv3  80 filters 3x3            + ReLU + 2x2 max-pool
  conv4  96 filters 3x3            + ReLU + 2x2 max-pool
  BiGRU  128 units per direction over the time axis; last forward and last backward outputs
         concatenated -> 256
  FC1    256 -> 64 + PReLU           (its output z is *the learned feature*)
  FC2    64 -> n_classes             (logits)

The one option beyond the paper: `head="cosine"` makes FC2 a cosine classifier (CosineLinear),
logits s cos(angle between z and each class weight), for the AM-Softmax arm (objectives.py).

Choices the paper leaves open (documented here, see method.md "What the paper leaves open"):
- "Same" zero padding (3 for the 7x7 conv, 1 for the 3x3 convs); max-pool floors odd sizes.
- Padding never leaks into an utterance's result. The true length of each utterance is carried
  through every layer: after each conv and each pool, frames at or beyond the utterance's own
  length are set to zero, which is exactly the zero padding that utterance would see if it were
  run alone. The GRU then runs on packed sequences of the true lengths, so its last forward output
  is taken at the utterance's own last frame and its backward pass starts there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


@dataclass(frozen=True)
class ModelConfig:
    n_bins: int = 128  # frequency bins of the input: 128 (Mel) or 513 (STFT)
    n_classes: int = 4
    conv_channels: tuple[int, ...] = (48, 64, 80, 96)  # the paper's filter counts
    conv1_kernel: int = 7
    conv1_stride: int = 2
    conv_kernel: int = 3
    gru_hidden: int = 128  # per direction
    feature_dim: int = 64  # z, what the center loss acts on
    head: str = "linear"  # FC2: "linear" (the paper) or "cosine" (AM-Softmax, objectives.py)
    cosine_scale: float = 30.0  # s of the cosine head: logits = s cos(theta)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["conv_channels"] = tuple(d["conv_channels"])
        return cls(**d)


class CosineLinear(nn.Module):
    """logits_j = s <W_j / |W_j|, z / |z|> = s cos(theta_j): the normalised classifier of
    AM-Softmax (Wang et al. 2018) and CosFace (Wang et al. 2018); no bias. The margin of those
    losses is applied in training only (objectives.am_softmax_loss)."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(nn.Linear(in_features, out_features, bias=False).weight.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        cos = nn.functional.linear(nn.functional.normalize(z.float(), dim=1),
                                   nn.functional.normalize(self.weight.float(), dim=1))  # (B, C)
        return self.scale * cos


def conv_out_length(length: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    return torch.div(length + 2 * padding - kernel, stride, rounding_mode="floor") + 1


def time_mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero every time step t >= length (time is the last axis of x: (B, C, F, T))."""
    steps = torch.arange(x.shape[-1], device=x.device)
    keep = steps[None, :] < lengths[:, None]  # (B, T)
    return x * keep[:, None, None, :].to(x.dtype)


class ConvBlock(nn.Module):
    """conv -> ReLU -> 2x2 max-pool, with the time lengths tracked and the padding re-zeroed."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=self.padding)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Pool before ReLU: max and ReLU commute, and the pool then runs on a quarter of the
        # values. No mask is needed between conv and pool: every pooling window that survives
        # the length floor below lies wholly inside the valid frames.
        lengths = conv_out_length(lengths, self.kernel, self.stride, self.padding)
        x = torch.relu(self.pool(self.conv(x)))
        lengths = torch.div(lengths, 2, rounding_mode="floor")
        return time_mask(x, lengths), lengths


def output_lengths(lengths: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Time steps the GRU sees for inputs of the given frame counts."""
    lengths = conv_out_length(lengths, cfg.conv1_kernel, cfg.conv1_stride, cfg.conv1_kernel // 2)
    lengths = torch.div(lengths, 2, rounding_mode="floor")
    for _ in cfg.conv_channels[1:]:
        lengths = conv_out_length(lengths, cfg.conv_kernel, 1, cfg.conv_kernel // 2)
        lengths = torch.div(lengths, 2, rounding_mode="floor")
    return lengths


def output_length(n_frames: int, cfg: ModelConfig | None = None) -> int:
    """Time steps the GRU sees for an input of n_frames (must be >= 1)."""
    return int(output_lengths(torch.tensor([n_frames]), cfg or ModelConfig())[0])


def min_frames(cfg: ModelConfig | None = None) -> int:
    """The shortest input (frames) that leaves at least one time step for the GRU."""
    n = 1
    while output_length(n, cfg) < 1:
        n += 1
    return n


class CnnBiGru(nn.Module):
    """The paper's CNN-BiGRU. forward(x (B, T, F), lengths (B,)) -> (z (B, 64), logits (B, C))."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        channels = (1, *cfg.conv_channels)
        blocks = [ConvBlock(1, channels[1], cfg.conv1_kernel, cfg.conv1_stride)]
        blocks += [
            ConvBlock(channels[i], channels[i + 1], cfg.conv_kernel, 1)
            for i in range(1, len(cfg.conv_channels))
        ]
        self.cnn = nn.ModuleList(blocks)
        freq = cfg.n_bins
        freq = conv_out_length(torch.tensor(freq), cfg.conv1_kernel, cfg.conv1_stride, 3) // 2
        for _ in cfg.conv_channels[1:]:
            freq = freq // 2  # 3x3 "same" convs keep the size, each pool halves it
        self.gru_input = int(freq) * cfg.conv_channels[-1]
        self.gru = nn.GRU(self.gru_input, cfg.gru_hidden, batch_first=True, bidirectional=True)
        self.fc1 = nn.Linear(2 * cfg.gru_hidden, cfg.feature_dim)
        self.prelu = nn.PReLU()
        if cfg.head not in ("linear", "cosine"):
            raise ValueError(f"head must be 'linear' or 'cosine', got {cfg.head!r}")
        if cfg.head == "cosine":
            self.fc2 = CosineLinear(cfg.feature_dim, cfg.n_classes, cfg.cosine_scale)
        else:
            self.fc2 = nn.Linear(cfg.feature_dim, cfg.n_classes)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The learned feature z (B, 64) of padded spectrograms x (B, T, F)."""
        if bool((output_lengths(lengths.cpu(), self.cfg) < 1).any()):
            raise ValueError(
                f"an input is too short for the CNN: needs at least {min_frames(self.cfg)} frames"
            )
        lengths = lengths.to(x.device)
        h = time_mask(x.transpose(1, 2).unsqueeze(1), lengths)  # (B, 1, F, T)
        for block in self.cnn:
            h, lengths = block(h, lengths)  # (B, C, F', T')
        b, c, f, t = h.shape
        seq = h.permute(0, 3, 1, 2).reshape(b, t, c * f)  # (B, T', C*F')
        # The GRU runs in float32 even under bf16 autocast: recurrent state accumulates error.
        with torch.autocast(device_type=x.device.type, enabled=False):
            packed = pack_padded_sequence(
                seq.float(), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, h_n = self.gru(packed)  # (2, B, 128): last forward and last backward outputs
        last = torch.cat([h_n[0], h_n[1]], dim=1)  # (B, 256)
        return self.prelu(self.fc1(last))  # (B, 64)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(x, lengths)
        return z, self.fc2(z)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store the conv weights channels-last (in place; returns the model). The CPU convolutions
    and max-pools then run 1.4-1.9x faster, forward and backward (bench/train_speed.py's probe,
    docs/performance.md); outputs differ from the default layout only by float rounding (~1e-7)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)
    return model
