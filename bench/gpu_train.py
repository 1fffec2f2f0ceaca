"""GPU training throughput of the paper's model on an IEMOCAP-sized set, and the time of a full
reproduction estimated from it. Run through bench/gpu.sh on a CUDA machine.

    python bench/gpu_train.py --device cuda            # 5,500 utterances, writes gpu.json
    python bench/gpu_train.py --device cpu --quick     # a tiny check of the code path only

Two ways of feeding the same model, measured in the same process, alternating:
- resident: every utterance's features pre-computed and held on the GPU in one flat
  (total_frames, 128) tensor; a batch is gathered and zero-padded on the GPU by index
  arithmetic; SpecAugment-style masks (same widths as trainer.spec_augment) are drawn on the
  GPU; losses and predictions stay on the GPU until the epoch ends (no per-batch host syncs
  besides the ones the model and the center update make themselves);
- trainer: exactly ser_lab/learn/trainer.py's per-batch path: pad_batch on the CPU, spec_augment
  on the CPU, .to(device, non_blocking=True) from pageable memory, three float(loss) syncs and
  two .cpu() copies per batch.
Both use bf16 autocast (the GRU in float32, as the model does), bucketed batches
(trainer.make_batches), Adam, center loss with the alpha update, batch 32, and the trainer's
deterministic-algorithms setting. Contents are random (speed does not depend on them); lengths
are IEMOCAP-like (log-normal, mean ~4.5 s, cut at 14 s; see bench/train_speed.py).

Also: prediction throughput (inference_mode, batch 64, sorted by length), GPU busy share
(CUDA kernel time from torch.profiler over a few batches, scaled to the unprofiled epoch wall
time), and the estimated wall time of bench/reproduce.py on IEMOCAP: 2 settings x 5 folds
(leave-one-session-out: train 68 %, validation 12 %, test 20 % of the utterances) x E epochs
(each: train + score validation) + the final scoring of every utterance per fold.
--device cpu exists only to test this script; CPU numbers are labelled and are not GPU numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from train_speed import (  # noqa: E402
    BATCH,
    N_BINS,
    N_CLASSES,
    iemocap_like_seconds,
    seconds_to_frames,
)

from ser_lab.config import ObjectiveConfig  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn.losses import class_weights  # noqa: E402
from ser_lab.learn.model import CnnBiGru, ModelConfig, min_frames  # noqa: E402
from ser_lab.learn.objectives import make_objective  # noqa: E402
from ser_lab.learn.trainer import autocast, make_batches, pad_batch, spec_augment, train_step  # noqa: E402

# bench/reproduce.py on IEMOCAP: leave-one-session-out, val_fraction 0.15 of the training part.
TRAIN_SHARE, VAL_SHARE = 0.8 * 0.85, 0.8 * 0.15


class ResidentData:
    """All features in one flat device tensor; batches gathered and padded on the device."""

    def __init__(self, lengths: np.ndarray, device: torch.device, seed: int) -> None:
        gen = torch.Generator(device=device).manual_seed(seed)
        self.lengths = lengths
        self.lengths_t = torch.from_numpy(lengths)
        self.device = device
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.offsets = torch.from_numpy(offsets).to(device)
        self.lengths_dev = self.lengths_t.to(device)
        self.flat = torch.randn(int(lengths.sum()), N_BINS, device=device, generator=gen)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T_max, F) zero-padded on the device, and the CPU lengths the model needs."""
        lens = self.lengths_t[idx]
        t_max = int(lens.max())
        idx_dev = torch.from_numpy(idx).to(self.device, non_blocking=True)
        start, length = self.offsets[idx_dev], self.lengths_dev[idx_dev]
        steps = torch.arange(t_max, device=self.device)
        keep = steps[None, :] < length[:, None]  # (B, T)
        rows = start[:, None] + torch.minimum(steps[None, :], length[:, None] - 1)
        x = self.flat[rows] * keep[:, :, None]
        return x, lens

    def host_copy(self) -> list[np.ndarray]:
        """The same features as a list of host arrays (for the trainer path)."""
        flat = self.flat.cpu().numpy()
        offsets = self.offsets.cpu().numpy()
        return [flat[o : o + n] for o, n in zip(offsets, self.lengths)]


def device_masks(x: torch.Tensor, lens: torch.Tensor, gen: torch.Generator,
                 n_masks: int = 2, max_bins: int = 12, max_frames: int = 20) -> torch.Tensor:
    """trainer.spec_augment's masks (same widths and spans), drawn and applied on the device."""
    b, t, f = x.shape
    dev = x.device
    length = lens.to(dev)
    bins = torch.arange(f, device=dev)
    steps = torch.arange(t, device=dev)
    keep = torch.ones(b, t, f, dtype=torch.bool, device=dev)
    for _ in range(n_masks):
        width = torch.randint(0, max_bins + 1, (b,), device=dev, generator=gen)
        start = (torch.rand(b, device=dev, generator=gen) * (f - width + 1)).long()
        band = (bins[None, :] >= start[:, None]) & (bins[None, :] < (start + width)[:, None])
        span_max = torch.clamp(length // 10, max=max_frames)
        span = (torch.rand(b, device=dev, generator=gen) * (span_max + 1)).long()
        t0 = (torch.rand(b, device=dev, generator=gen) * (length - span + 1)).long()
        spanned = (steps[None, :] >= t0[:, None]) & (steps[None, :] < (t0 + span)[:, None])
        keep &= ~band[:, None, :]
        keep &= ~spanned[:, :, None]
    return x * keep


class Setup:
    """Model, the paper's objective, Adam, class weights on the device (as trainer.train_fold builds)."""

    def __init__(self, labels: np.ndarray, device: torch.device, seed: int) -> None:
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)  # as trainer.seed_everything
        self.device = device
        self.model = CnnBiGru(ModelConfig(n_bins=N_BINS, n_classes=N_CLASSES)).to(device)
        self.objective = make_objective(ObjectiveConfig("center", lam=0.3, alpha=0.5), N_CLASSES, 64, device)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=3e-4)
        self.weights = class_weights(labels, N_CLASSES).to(device)
        self.labels = torch.from_numpy(labels)
        self.labels_dev = self.labels.to(device)

    def step(self, x: torch.Tensor, lens: torch.Tensor, y: torch.Tensor):
        """trainer.train_step itself: the step a user's training runs."""
        out = train_step(self.model, self.objective, self.optimiser, x, lens, y, self.weights, self.device)
        losses = out.losses
        return out.z, out.logits, losses["softmax_loss"], losses["center_loss"], losses["total_loss"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def epoch_resident(s: Setup, data: ResidentData, batches: list[np.ndarray], seed: int) -> float:
    """One epoch, features on the device; returns wall seconds (synchronised)."""
    s.model.train()
    gen = torch.Generator(device=s.device).manual_seed(seed)
    n = sum(len(b) for b in batches)
    sums = torch.zeros(3, device=s.device)
    preds = torch.zeros(n, dtype=torch.long, device=s.device)
    zs = torch.zeros(n, 64, device=s.device)
    sync(s.device)
    t0 = time.perf_counter()
    at = 0
    for idx in batches:
        x, lens = data.batch(idx)
        x = device_masks(x, lens, gen)
        y = s.labels_dev[torch.from_numpy(idx).to(s.device, non_blocking=True)]
        z, logits, l_s, l_c, loss = s.step(x, lens, y)
        sums += torch.stack([l_s.detach(), l_c.detach(), loss.detach()]) * len(idx)
        preds[at : at + len(idx)] = logits.argmax(1)
        zs[at : at + len(idx)] = z.detach().float()
        at += len(idx)
    sums.cpu()
    sync(s.device)
    return time.perf_counter() - t0


def epoch_trainer(s: Setup, features: list[np.ndarray], batches: list[np.ndarray],
                  seed: int) -> float:
    """One epoch exactly as ser_lab/learn/trainer.py feeds the device; returns wall seconds."""
    s.model.train()
    n = sum(len(b) for b in batches)
    train_pred = np.zeros(n, dtype=np.int64)
    train_z = np.zeros((n, 64), dtype=np.float32)
    sums = {"s": 0.0, "c": 0.0, "t": 0.0}
    sync(s.device)
    t0 = time.perf_counter()
    at = 0
    for b, idx in enumerate(batches):
        pos = slice(at, at + len(idx))
        at += len(idx)
        x, lens = pad_batch([features[i] for i in idx])
        spec_augment(x, lens, np.random.default_rng([seed, 0, 1, b]))
        y = s.labels[idx].to(s.device)
        z, logits, l_s, l_c, loss = s.step(x.to(s.device, non_blocking=True), lens, y)
        for key, value in (("s", l_s), ("c", l_c), ("t", loss)):
            sums[key] += float(value.detach()) * len(idx)
        train_pred[pos] = logits.argmax(1).cpu().numpy()
        train_z[pos] = z.detach().float().cpu().numpy()
    sync(s.device)
    return time.perf_counter() - t0


def predict_rate(s: Setup, data: ResidentData, idx: np.ndarray) -> float:
    """Utterances per second scoring features on the device (batch 64, sorted by length)."""
    s.model.eval()
    batches = [idx[p] for p in make_batches(data.lengths[idx], 64, None)]
    with torch.inference_mode():
        for warm in batches[:2]:
            x, lens = data.batch(warm)
            with autocast(s.device):
                s.model(x, lens)
        sync(s.device)
        t0 = time.perf_counter()
        outs = []
        for bidx in batches:
            x, lens = data.batch(bidx)
            with autocast(s.device):
                z, logits = s.model(x, lens)
            outs.append(torch.softmax(logits.float(), dim=1))
        torch.cat(outs).cpu()
        sync(s.device)
    s.model.train()
    return len(idx) / (time.perf_counter() - t0)


def kernel_seconds(s: Setup, data: ResidentData, batches: list[np.ndarray], seed: int) -> dict:
    """CUDA kernel time (union of kernel intervals) over `batches` from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if s.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        epoch_resident(s, data, batches, seed)
    spans = sorted(
        (e.time_range.start, e.time_range.end) for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.end > e.time_range.start
    )
    busy, cur_start, cur_end = 0.0, None, None
    for start, end in spans:
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                busy += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        busy += cur_end - cur_start
    return {"kernel_s": busy / 1e6, "utterances": int(sum(len(b) for b in batches)),
            "kernels": len(spans)}


def estimate_full_run(n: int, train_rate: float, pred_rate: float, epochs: int) -> dict:
    """Wall time of 2 settings x 5 folds x `epochs` on an n-utterance corpus (seconds)."""
    n_train, n_val = n * TRAIN_SHARE, n * VAL_SHARE
    per_epoch = n_train / train_rate + n_val / pred_rate
    per_fold = epochs * per_epoch + n / pred_rate
    total = 2 * 5 * per_fold
    return {"epochs": epochs, "per_epoch_s": round(per_epoch, 2), "per_fold_s": round(per_fold, 1),
            "total_s": round(total, 1), "total_min": round(total / 60, 2),
            "assumes": "2 settings x 5 folds, one process at a time; train 68 %, validation "
                       "12 % scored every epoch, every utterance scored once per fold; features "
                       "already extracted (cold extraction is in bench/results/features.json)"}


def run(device_name: str = "cuda", *, quick: bool = False, n_full: int = 5500, repeats: int = 2,
        epochs_full: int = 20, profile_batches: int = 20, seed: int = 0) -> dict:
    """All measurements (see the module docstring); returns the result dict."""
    if device_name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu --quick to test the script")
    device = torch.device(device_name)
    n = 32 if quick else n_full
    rng = np.random.default_rng(seed)
    seconds = iemocap_like_seconds(n, rng)
    if quick:
        seconds = np.clip(seconds / 6, 0.35, None)  # short clips: a quick check of the code path
    lengths = np.maximum(seconds_to_frames(seconds), min_frames())
    labels = rng.integers(0, N_CLASSES, n)

    result: dict = {
        "benchmark": "gpu_train",
        "device": str(device),
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
        "is_gpu_result": device.type == "cuda" and not quick,
        "quick": quick,
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                    "cuda": torch.version.cuda, "torch_threads": torch.get_num_threads(),
                    "loadavg_start": [round(v, 2) for v in os.getloadavg()]},
        "data": {"utterances": n, "seconds_mean": round(float(lengths.mean()) / 100, 2),
                 "seconds_max": round(float(lengths.max()) / 100, 2), "batch_size": BATCH},
        "settings": {"autocast": "bf16" if device.type == "cuda" else "off (CPU)",
                     "bucketing": "trainer.make_batches", "deterministic": "warn_only (as trainer)"},
    }
    t0 = time.perf_counter()
    data = ResidentData(lengths, device, seed)
    features = data.host_copy()
    result["data"]["device_feature_bytes"] = int(data.flat.numel() * 4)
    result["data"]["setup_s"] = round(time.perf_counter() - t0, 2)
    s = Setup(labels, device, seed)

    warm = make_batches(lengths, BATCH, np.random.default_rng(123))[:3]
    epoch_resident(s, data, warm, 0)
    epoch_trainer(s, features, warm, 0)
    rates: dict[str, list[float]] = {"resident": [], "trainer": []}
    for rep in range(repeats):
        batches = make_batches(lengths, BATCH, np.random.default_rng([seed, rep]))
        for mode in (("resident", "trainer") if rep % 2 == 0 else ("trainer", "resident")):
            if mode == "resident":
                wall = epoch_resident(s, data, batches, rep)
            else:
                wall = epoch_trainer(s, features, batches, rep)
            rates[mode].append(n / wall)
            print(f"rep {rep} {mode}: {n / wall:.1f} utt/s ({wall:.2f} s)", file=sys.stderr,
                  flush=True)
    train_rate = statistics.median(rates["resident"])
    trainer_rate = statistics.median(rates["trainer"])
    pred_idx = np.arange(n)[: max(64, int(n * 0.2))]
    pred_rate = predict_rate(s, data, pred_idx)
    result["train_utt_per_s"] = round(train_rate, 1)
    result["trainer_path_utt_per_s"] = round(trainer_rate, 1)
    result["resident_over_trainer_path"] = round(train_rate / trainer_rate, 3)
    result["train_utt_per_s_all"] = {k: [round(v, 1) for v in r] for k, r in rates.items()}
    result["epoch_s_resident"] = round(n / train_rate, 2)
    result["predict_utt_per_s"] = round(pred_rate, 1)

    prof_batches = make_batches(lengths, BATCH, np.random.default_rng(7))[: profile_batches]
    k = kernel_seconds(s, data, prof_batches, 0)
    busy = k["kernel_s"] / k["utterances"] * train_rate  # kernel s per utt x utt per wall s
    on_gpu = device.type == "cuda"
    result["gpu_busy_share"] = round(min(busy, 1.0), 4) if on_gpu else None
    result["gpu_idle_share"] = round(1 - min(busy, 1.0), 4) if on_gpu else None
    result["gpu_busy_note"] = (f"CUDA kernel time (union of intervals) over {k['utterances']} "
                               f"profiled utterances ({k['kernels']} kernels), per utterance, "
                               "times the unprofiled resident training rate")
    if device.type == "cuda":
        result["max_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    result["full_run_estimate_iemocap"] = estimate_full_run(5500, train_rate, pred_rate,
                                                            epochs_full)
    result["full_run_estimate_iemocap_trainer_path"] = estimate_full_run(
        5500, trainer_rate, pred_rate, epochs_full)
    if not result["is_gpu_result"]:
        result["note"] = "NOT a GPU measurement: a check of the script's code path only"
    result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests the code path)")
    parser.add_argument("--n", type=int, default=5500, help="utterances (IEMOCAP: ~5,500)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating epochs per mode")
    parser.add_argument("--epochs-full", type=int, default=20, help="epochs of the estimated run")
    parser.add_argument("--profile-batches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu.json")
    args = parser.parse_args()
    result = run(args.device, quick=args.quick, n_full=args.n, repeats=args.repeats,
                 epochs_full=args.epochs_full, profile_batches=args.profile_batches, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
