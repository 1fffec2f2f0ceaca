"""Training speed of the paper's CNN-BiGRU on Mel input: bucketed vs plain batches, and where
the time goes.

    nice -n 5 .venv/bin/python bench/train_speed.py [--n 256] [--repeats 3] [--threads 1]

What it measures, all in one process so that only ratios measured side by side are compared
(the machine this was written on is shared; its load average is recorded at start and end):

- A variable-length training set shaped like IEMOCAP: utterance lengths log-normal with a median
  of 3.6 s (mean about 4.5 s, sd about 3 s), cut to 1-14 s like the feature pipeline does.
  Contents are random log-Mel-shaped arrays (128 bins): speed does not depend on content.
- (a) bucketed: the trainer's own `make_batches(lengths, 32, rng)` + `pad_batch`;
  (b) plain: a random permutation cut into batches of 32, each padded to its longest utterance.
  Both run exactly the trainer's per-batch step (pad, SpecAugment masks, forward, weighted
  cross-entropy + center loss, backward, Adam step, center update, the per-batch copies of
  predictions and z) on the same model, the same number of optimiser steps, the same
  utterances. Repeats alternate the order (A B, B A, A B, ...); medians are reported.
- Per-utterance identity: z of the 32 utterances of one plain batch, computed inside their
  plain batch and inside their bucketed batches, must agree within 1e-4 (the model masks
  padding; tests/test_model.py::test_padding_does_not_change_an_utterance checks the same
  against each utterance run alone).
- Where the time goes in a bucketed step: data (pad + masks), CNN / GRU / FC forward, their
  backward (split by tensor hooks at the stage boundaries), loss, optimiser, center update,
  bookkeeping; plus the top operators from torch.profiler.
- How close to the hardware: training FLOPs (torch.utils.flop_counter) per second achieved,
  against a float32 matmul on the same threads measured in the same run.
- A probe of a model change with identical outputs up to float rounding, not applied to
  training: channels_last weights. (Max-pool before ReLU, probed here before at 1.28x, is now
  ser_lab's ConvBlock.) And torch.inference_mode vs torch.no_grad for prediction.

Prints the results as JSON (the last stdout line) and writes bench/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ser_lab.config import ObjectiveConfig  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn.losses import class_weights, weighted_cross_entropy  # noqa: E402
from ser_lab.learn.model import CnnBiGru, ModelConfig, min_frames  # noqa: E402
from ser_lab.learn.objectives import make_objective  # noqa: E402
from ser_lab.learn.trainer import make_batches, pad_batch, spec_augment, train_step  # noqa: E402

FRAMES_PER_S = 100  # 10 ms hop
N_BINS = 128  # Mel
N_CLASSES = 4
CPU = torch.device("cpu")
BATCH = 32
# IEMOCAP-like lengths: log-normal, median 3.6 s, sigma 0.65 -> mean ~4.5 s, sd ~3 s, 14 s cap.
LENGTH_MEDIAN_S = 3.6
LENGTH_SIGMA = 0.65
MIN_S, MAX_S = 1.0, 14.0


# ----------------------------------------------------------------------------- data


def iemocap_like_seconds(n: int, rng: np.random.Generator) -> np.ndarray:
    """n utterance durations (s): log-normal like IEMOCAP's, redrawn below 1 s, cut at 14 s."""
    out = rng.lognormal(np.log(LENGTH_MEDIAN_S), LENGTH_SIGMA, n)
    short = out < MIN_S
    while short.any():
        out[short] = rng.lognormal(np.log(LENGTH_MEDIAN_S), LENGTH_SIGMA, int(short.sum()))
        short = out < MIN_S
    return np.minimum(out, MAX_S)


def seconds_to_frames(seconds: np.ndarray) -> np.ndarray:
    """Frames compute_features gives for clips of these durations (1 + samples // hop)."""
    return 1 + (np.asarray(seconds) * 16000).astype(np.int64) // 160


def random_features(
    frames: np.ndarray, rng: np.random.Generator, n_bins: int = N_BINS
) -> list[np.ndarray]:
    """Standard-normal (T_i, n_bins) float32 arrays: normalised log-Mel-shaped inputs."""
    return [rng.standard_normal((int(t), n_bins), dtype=np.float32) for t in frames]


def plain_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The no-bucketing baseline: a random permutation cut into consecutive batches."""
    perm = rng.permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def padding_stats(lengths: np.ndarray, batches: list[np.ndarray]) -> dict:
    """Frames the CNN computes (each batch padded to its longest) vs real frames."""
    real = int(sum(lengths[b].sum() for b in batches))
    padded = int(sum(len(b) * lengths[b].max() for b in batches))
    return {"real_frames": real, "padded_frames": padded, "useful_fraction": round(real / padded, 4)}


# ----------------------------------------------------------------------------- one training step


@dataclass
class StepTimes:
    """Seconds per stage, summed over the batches of a measurement."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt


class TrainState:
    """Model, the paper's objective, Adam and class weights exactly as trainer.train_fold builds them."""

    def __init__(self, labels: np.ndarray, seed: int = 0, n_bins: int = N_BINS) -> None:
        torch.manual_seed(seed)
        self.model = CnnBiGru(ModelConfig(n_bins=n_bins, n_classes=N_CLASSES))
        self.objective = make_objective(
            ObjectiveConfig("center", lam=0.3, alpha=0.5), N_CLASSES, self.model.cfg.feature_dim
        )
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=3e-4)
        self.weights = class_weights(labels, N_CLASSES)


def train_batches(
    state: TrainState,
    features: list[np.ndarray],
    labels: np.ndarray,
    batches: list[np.ndarray],
    *,
    seed: int = 0,
    times: StepTimes | None = None,
) -> float:
    """Run trainer.train_fold's per-batch work over `batches`; returns the wall seconds.

    The step is trainer.train_step itself (device: CPU, so no autocast); the data preparation
    and bookkeeping around it mirror ser_lab/learn/trainer.py. With `times`, each stage is timed
    (train_step's own stages through its `timer`; the clock reads cost microseconds per stage).
    """
    model, objective, optimiser = state.model, state.objective, state.optimiser
    model.train()
    labels_t = torch.from_numpy(labels)
    n = sum(len(b) for b in batches)
    train_pred = np.zeros(n, dtype=np.int64)
    train_z = np.zeros((n, model.cfg.feature_dim), dtype=np.float32)
    clock = _Clock(times)
    t0 = time.perf_counter()
    at = 0
    for b, idx in enumerate(batches):
        pos = np.arange(at, at + len(idx))
        at += len(idx)
        with clock("data: pad + masks"):
            x, lens = pad_batch([features[i] for i in idx])
            spec_augment(x, lens, np.random.default_rng([seed, 0, 1, b]))
            y = labels_t[idx]
        step = train_step(model, objective, optimiser, x, lens, y, state.weights, CPU, timer=clock)
        with clock("bookkeeping (losses, copies)"):
            for value in step.losses.values():
                float(value.detach())
            train_pred[pos] = step.logits.argmax(1).cpu().numpy()
            train_z[pos] = step.z.detach().float().cpu().numpy()
    return time.perf_counter() - t0


class _Clock:
    """`with clock(stage):` adds the stage's wall time to a StepTimes (no-op without one)."""

    def __init__(self, times: StepTimes | None) -> None:
        self.times = times

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.times is None:
            yield
            return
        t0 = time.perf_counter()
        yield
        self.times.add(stage, time.perf_counter() - t0)


@contextlib.contextmanager
def stage_hooks(model: CnnBiGru, times: StepTimes) -> Iterator[None]:
    """Split forward and backward into CNN / GRU / FC with module and tensor hooks.

    Forward: module pre/post hooks at the stage boundaries. Backward (CPU autograd runs in this
    thread, in reverse order): a tensor hook on the FC input fires when the FC and loss
    backward are done, one on the CNN output when the GRU backward is done; the rest, up to
    loss.backward() returning, is the CNN backward. "forward: GRU" includes the
    reshape + pack_padded_sequence between the CNN and the GRU.
    """
    marks: dict[str, float] = {}

    def mark(name: str) -> Callable:
        def hook(*_args) -> None:
            marks[name] = time.perf_counter()

        return hook

    def cnn_out(_mod, _inp, out) -> None:
        marks["cnn_end"] = time.perf_counter()
        h = out[0]
        if h.requires_grad:
            h.register_hook(lambda g: marks.__setitem__("bwd_gru_end", time.perf_counter()))

    def fc_in(_mod, inp) -> None:
        marks["fc_start"] = time.perf_counter()
        if inp[0].requires_grad:
            inp[0].register_hook(lambda g: marks.__setitem__("bwd_fc_end", time.perf_counter()))

    def fc_out(*_args) -> None:
        marks["fc_end"] = time.perf_counter()
        times.add("forward: CNN", marks["cnn_end"] - marks["cnn_start"])
        times.add("forward: GRU (+pack)", marks["fc_start"] - marks["cnn_end"])

    handles = [
        model.cnn[0].register_forward_pre_hook(mark("cnn_start")),
        model.cnn[-1].register_forward_hook(cnn_out),
        model.fc1.register_forward_pre_hook(fc_in),
        model.fc2.register_forward_hook(fc_out),
    ]
    original_backward = torch.Tensor.backward

    def timed_backward(tensor, *args, **kwargs):
        start = time.perf_counter()
        original_backward(tensor, *args, **kwargs)
        end = time.perf_counter()
        if "bwd_fc_end" in marks and "bwd_gru_end" in marks:
            times.add("backward: loss + FC", marks["bwd_fc_end"] - start)
            times.add("backward: GRU", marks["bwd_gru_end"] - marks["bwd_fc_end"])
            times.add("backward: CNN", end - marks["bwd_gru_end"])
        marks.clear()

    torch.Tensor.backward = timed_backward
    try:
        yield
    finally:
        torch.Tensor.backward = original_backward
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------- measurements


def compare_batching(
    state: TrainState, features: list[np.ndarray], labels: np.ndarray, repeats: int, seed: int
) -> dict:
    """Alternating bucketed / plain epochs over the same utterances; medians of utt/s."""
    lengths = np.array([len(f) for f in features])
    n = len(features)
    rates: dict[str, list[float]] = {"bucketed": [], "plain": []}
    padding: dict[str, list[float]] = {"bucketed": [], "plain": []}
    ratios = []
    for rep in range(repeats):
        order = ("bucketed", "plain") if rep % 2 == 0 else ("plain", "bucketed")
        for mode in order:
            rng = np.random.default_rng([seed, rep])
            if mode == "bucketed":
                batches = make_batches(lengths, BATCH, rng)
            else:
                batches = plain_batches(n, BATCH, rng)
            seconds = train_batches(state, features, labels, batches, seed=rep)
            rates[mode].append(n / seconds)
            padding[mode].append(padding_stats(lengths, batches)["useful_fraction"])
            print(f"  rep {rep} {mode}: {n / seconds:.2f} utt/s ({seconds:.1f} s)",
                  file=sys.stderr, flush=True)
        ratios.append(rates["bucketed"][-1] / rates["plain"][-1])
    return {
        "bucketed_utt_per_s": round(statistics.median(rates["bucketed"]), 3),
        "plain_utt_per_s": round(statistics.median(rates["plain"]), 3),
        "speedup": round(statistics.median(ratios), 3),
        "speedup_per_repeat": [round(r, 3) for r in ratios],
        "bucketed_utt_per_s_all": [round(r, 3) for r in rates["bucketed"]],
        "plain_utt_per_s_all": [round(r, 3) for r in rates["plain"]],
        "useful_frame_fraction": {k: round(statistics.median(v), 4) for k, v in padding.items()},
    }


def z_agreement(model: CnnBiGru, features: list[np.ndarray], seed: int) -> dict:
    """Max |z| difference for the utterances of one plain batch: inside that plain batch vs
    inside the bucketed batches they fall into."""
    lengths = np.array([len(f) for f in features])
    plain = plain_batches(len(features), BATCH, np.random.default_rng([seed, 99]))[0]
    bucketed = make_batches(lengths, BATCH, np.random.default_rng([seed, 99]))
    model.eval()
    with torch.inference_mode():
        x, lens = pad_batch([features[i] for i in plain])
        z_plain, _ = model(x, lens)
        max_diff = 0.0
        wanted = set(plain.tolist())
        for batch in bucketed:
            hit = [j for j, i in enumerate(batch) if int(i) in wanted]
            if not hit:
                continue
            x, lens = pad_batch([features[i] for i in batch])
            z_b, _ = model(x, lens)
            for j in hit:
                row = int(np.flatnonzero(plain == batch[j])[0])
                max_diff = max(max_diff, float((z_b[j] - z_plain[row]).abs().max()))
    model.train()
    return {
        "utterances": len(plain),
        "plain_batch_frames": int(lengths[plain].max()),
        "max_abs_diff": max_diff,
        "agree_within_1e-4": max_diff <= 1e-4,
        "test": "tests/test_model.py::test_padding_does_not_change_an_utterance",
    }


def breakdown(state: TrainState, features: list[np.ndarray], labels: np.ndarray,
              n_batches: int, seed: int) -> dict:
    """Stage times over a few bucketed batches (shares of the step's wall time)."""
    lengths = np.array([len(f) for f in features])
    batches = make_batches(lengths, BATCH, np.random.default_rng([seed, 7]))[:n_batches]
    times = StepTimes()
    with stage_hooks(state.model, times):
        wall = train_batches(state, features, labels, batches, times=times)
    fine = {k: v for k, v in times.seconds.items() if ":" in k and not k.startswith("data")}
    coarse = {k: v for k, v in times.seconds.items() if k not in fine}
    stages = {**coarse, **fine}
    order = [
        "data: pad + masks", "forward: CNN", "forward: GRU (+pack)", "forward: FC (rest)",
        "loss", "backward: loss + FC", "backward: GRU", "backward: CNN", "optimiser (Adam)",
        "center update", "bookkeeping (losses, copies)",
    ]
    fwd_parts = stages.get("forward: CNN", 0.0) + stages.get("forward: GRU (+pack)", 0.0)
    stages["forward: FC (rest)"] = stages.get("forward (all)", 0.0) - fwd_parts
    table = {k: {"s": round(stages.get(k, 0.0), 4), "share": round(stages.get(k, 0.0) / wall, 4)}
             for k in order}
    return {
        "batches": len(batches),
        "utterances": int(sum(len(b) for b in batches)),
        "wall_s": round(wall, 3),
        "stages": table,
        "unaccounted_share": round(1 - sum(v["share"] for v in table.values()), 4),
    }


def top_ops(state: TrainState, features: list[np.ndarray], labels: np.ndarray, seed: int,
            k: int = 10) -> list[dict]:
    """torch.profiler: the k operators with the most self CPU time in one bucketed batch."""
    from torch.profiler import ProfilerActivity, profile

    lengths = np.array([len(f) for f in features])
    batch = make_batches(lengths, BATCH, np.random.default_rng([seed, 8]))[:1]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_batches(state, features, labels, batch)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    return [
        {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1),
         "share": round(e.self_cpu_time_total / total, 4), "calls": e.count}
        for e in rows[:k]
    ]


def hardware_fraction(state: TrainState, features: list[np.ndarray], labels: np.ndarray,
                      bucketed_utt_per_s: float, seed: int) -> dict:
    """Achieved training GFLOP/s vs a float32 matmul on the same threads (same run)."""
    from torch.utils.flop_counter import FlopCounterMode

    lengths = np.array([len(f) for f in features])
    batches = make_batches(lengths, BATCH, np.random.default_rng([seed, 0]))
    padded_frames = padding_stats(lengths, batches)["padded_frames"]
    t = 400
    x = torch.randn(BATCH, t, N_BINS)
    lens = torch.full((BATCH,), t)
    y = torch.from_numpy(labels[:BATCH])
    counter = FlopCounterMode(display=False)
    with counter:
        z, logits = state.model(x, lens)
        loss = weighted_cross_entropy(logits, y, state.weights)
        loss.backward()
    state.optimiser.zero_grad(set_to_none=True)
    flops_per_padded_frame = counter.get_total_flops() / (BATCH * t)
    epoch_flops = flops_per_padded_frame * padded_frames
    epoch_s = len(features) / bucketed_utt_per_s
    achieved = epoch_flops / epoch_s / 1e9
    peak = matmul_gflops()
    return {
        "train_gflop_per_padded_frame": round(flops_per_padded_frame / 1e9, 5),
        "achieved_gflops": round(achieved, 2),
        "matmul_gflops_same_threads": round(peak, 2),
        "fraction_of_matmul": round(achieved / peak, 3),
        "note": "FLOPs from torch.utils.flop_counter (convolutions, matmuls) for a 32 x 400-frame "
                "batch, scaled by the padded frames of the measured bucketed epoch; elementwise "
                "ops (ReLU, masks, pooling) are not counted as FLOPs but take time",
    }


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """float32 matmul GFLOP/s on the current threads: the practical compute ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


# ----------------------------------------------------------------------------- model-change probes


def probe_variants(state: TrainState, repeats: int, frames: int = 450) -> dict:
    """One training step (32 x `frames`) per variant, interleaved; medians and z identity."""
    torch.manual_seed(1)
    x = torch.randn(BATCH, frames, N_BINS)
    lens = torch.randint(int(frames * 0.85), frames + 1, (BATCH,))
    lens[0] = frames
    reference = state.model
    with torch.inference_mode():
        z_ref, _ = reference(x, lens)
    variants = ["current", "channels_last"]
    models = {}
    for name in variants:
        m = CnnBiGru(reference.cfg)
        m.load_state_dict(reference.state_dict())
        models[name] = m.to(memory_format=torch.channels_last) if name == "channels_last" else m
    times: dict[str, list[float]] = {k: [] for k in variants}
    diffs = {}
    for rep in range(repeats):
        names = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in names:
            m = models[name]
            t0 = time.perf_counter()
            z, logits = m(x, lens)
            logits.sum().backward()
            times[name].append(time.perf_counter() - t0)
            m.zero_grad(set_to_none=True)
            if rep == 0:
                with torch.inference_mode():
                    diffs[name] = float((m(x, lens)[0] - z_ref).abs().max())
    base = statistics.median(times["current"])
    return {
        "batch": [BATCH, frames],
        "step_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "speedup_vs_current": {k: round(base / statistics.median(v), 3) for k, v in times.items()},
        "max_abs_z_diff_vs_current": diffs,
        "what": "forward + backward of one batch; current = ser_lab's model (its ConvBlock "
                "pools before the ReLU since that change was measured here and applied); "
                "channels_last = model.to(memory_format=torch.channels_last)",
    }


def probe_inference_mode(model: CnnBiGru, repeats: int, frames: int = 450) -> dict:
    """Prediction forward (batch 64) under torch.no_grad vs torch.inference_mode."""
    x = torch.randn(64, frames, N_BINS)
    lens = torch.full((64,), frames)
    model.eval()
    times: dict[str, list[float]] = {"no_grad": [], "inference_mode": []}
    for rep in range(repeats):
        for name in (("no_grad", "inference_mode") if rep % 2 == 0
                     else ("inference_mode", "no_grad")):
            ctx = torch.no_grad() if name == "no_grad" else torch.inference_mode()
            with ctx:
                t0 = time.perf_counter()
                model(x, lens)
                times[name].append(time.perf_counter() - t0)
    model.train()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"batch": [64, frames], "forward_s": {k: round(v, 3) for k, v in med.items()},
            "speedup": round(med["no_grad"] / med["inference_mode"], 3)}


# ----------------------------------------------------------------------------- main


def machine_info(threads: int) -> dict:
    return {
        "cpus": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
    }


def run(n: int, repeats: int, threads: int, seed: int, probes: bool = True,
        breakdown_batches: int = 3) -> dict:
    """All measurements; returns the result dict."""
    torch.set_num_threads(threads)
    result: dict = {"benchmark": "train_speed", "machine": machine_info(threads)}
    rng = np.random.default_rng(seed)
    frames = np.maximum(seconds_to_frames(iemocap_like_seconds(n, rng)), min_frames())
    features = random_features(frames, rng)
    labels = rng.integers(0, N_CLASSES, n)
    result["data"] = {
        "utterances": n,
        "batch_size": BATCH,
        "optimiser_steps_per_measurement": -(-n // BATCH),
        "seconds_mean": round(float(frames.mean()) / FRAMES_PER_S, 2),
        "seconds_median": round(float(np.median(frames)) / FRAMES_PER_S, 2),
        "seconds_max": round(float(frames.max()) / FRAMES_PER_S, 2),
        "length_model": f"log-normal, median {LENGTH_MEDIAN_S} s, sigma {LENGTH_SIGMA}, "
                        f"{MIN_S}-{MAX_S} s (IEMOCAP-like); random contents",
    }
    # IEMOCAP-sized epoch (5,500 utterances): padding with the trainer's pools of 50 batches.
    big = seconds_to_frames(iemocap_like_seconds(5500, np.random.default_rng(seed + 1)))
    result["padding_iemocap_size"] = {
        "bucketed": padding_stats(big, make_batches(big, BATCH, np.random.default_rng(0))),
        "plain": padding_stats(big, plain_batches(len(big), BATCH, np.random.default_rng(0))),
    }
    state = TrainState(labels, seed)
    train_batches(state, features, labels, make_batches(frames, BATCH, None)[:1])  # warm-up
    print("bucketed vs plain:", file=sys.stderr, flush=True)
    result.update(compare_batching(state, features, labels, repeats, seed))
    result["z_agreement"] = z_agreement(state.model, features, seed)
    print("breakdown...", file=sys.stderr, flush=True)
    result["breakdown"] = breakdown(state, features, labels, breakdown_batches, seed)
    result["profiler_top_ops"] = top_ops(state, features, labels, seed)
    result["hardware"] = hardware_fraction(state, features, labels,
                                           result["bucketed_utt_per_s"], seed)
    if probes:
        print("probes...", file=sys.stderr, flush=True)
        result["probe_model_changes"] = probe_variants(state, max(repeats, 3))
        result["probe_inference_mode"] = probe_inference_mode(state.model, max(repeats, 3))
    result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="utterances per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating A/B repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-probes", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_speed.json")
    args = parser.parse_args()
    result = run(args.n, args.repeats, args.threads, args.seed, probes=not args.no_probes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
