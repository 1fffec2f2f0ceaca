"""Training speed of the real trainer a user runs: bucketed vs plain batches, how close to the
hardware, and where the time goes.

    nice -n 5 .venv/bin/python bench/train_speed.py [--corpus both] [--n 256] [--epochs 2]
        [--repeats 3] [--threads N] [--root EMODB] [--no-probes]

What it runs: `ser_lab.learn.trainer.train_fold`, the function `train_run` calls for every fold,
exactly as `train_run` calls it: a run folder in a temporary RunStore (`RunStore.create`), the real
`FoldData` of one fold (`prepare_fold`: normalised with the training part's statistics), device
CPU, every `train_step` of the fold through the trainer's own batch loop (pad, SpecAugment,
forward, loss, backward, Adam, center update, finiteness check, copies), validation after every
epoch, the final scoring and saving. The recipe is the trainer's default (batch 32, Adam at
lr 3e-4, SpecAugment) with the paper's center loss switched on (lambda = 0.3, alpha = 0.5; the
default lambda is 0, the softmax baseline, whose step differs only by the center-loss term),
a fixed number of epochs (`--epochs`, patience 0), no snapshots and no map precomputation, so
every run does the same work. The one difference from `train_run`: its `report` callback also
writes status.json at most once a second; here it does nothing.

Threads: torch's default (`torch.get_num_threads()` as a user's process starts: $OMP_NUM_THREADS
if set, else typically the number of physical cores), unless `--threads` sets another; both are
recorded.

Two corpora (`--corpus synthetic-var|emodb|both`):
- synthetic-var: `--n` training utterances (plus n/8 validation and n/8 test) whose lengths are
  IEMOCAP-like: log-normal with a median of 3.6 s (mean about 4.5 s, sd about 3 s), redrawn
  below 1 s and cut at 14 s like the feature pipeline. Contents are random log-Mel-shaped
  arrays (128 bins): speed does not depend on content.
- emodb: fold 0 of the lab's default split (speaker-independent, 5 folds) of EmoDB read through
  the lab's own loader (`trainer.load_data`, features from the feature cache), at `--root`
  (default: ../shared/datasets/emodb); the whole training part of the fold. The lab's copy has
  every file cut or zero-padded to exactly 2.0 s, so bucketing has no padding to save there:
  the EmoDB rows measure the trainer on real data, the synthetic rows measure bucketing.

Bucketed vs plain in one run: `bucketed` is the trainer as it is (`make_batches` groups
utterances of similar length); `plain` replaces, for this bench only, `trainer.make_batches`
by a random permutation cut into batches of 32 with the same signature (unittest.mock; the
evaluation batches, asked for without an rng, stay the trainer's). Everything else is
identical: the same model initialisation, the same utterances, the same number of optimiser
steps. Repeats alternate the order (A B, B A, ...); medians are reported.

Reported per corpus and batching:
- utterances/s: the `utt_per_s` train_fold itself records in metrics.jsonl for every epoch
  (training utterances / `train_time_s`, the wall time of the epoch's batch loop), median over
  epochs x repeats; the speedup is the median over repeats of bucketed / plain.
- share of the float32 peak by FLOP count: training FLOPs per padded frame from
  torch.utils.flop_counter (convolutions and matmuls of forward + backward of a 32 x 400-frame
  batch), times the padded frames of each measured epoch (the batches train_fold actually
  trained on), divided by that epoch's `train_time_s`; the peak is the best of 5 timed
  1024 x 1024 float32 matmuls (2 n^3 FLOPs each, after one untimed) on the same threads in the
  same process, measured before and after the training passes; the higher of the two is the
  peak. Elementwise work (masks, ReLU, pooling) is not counted as FLOPs but takes time.
- where the time goes: one more bucketed `train_fold` (1 epoch) with a `timer` the trainer
  passes to every `train_step` (forward, loss, backward, Adam, center update), forward and
  backward split into CNN / GRU / FC by module and tensor hooks on the model train_fold builds;
  the rest of the epoch's `train_time_s` is the batch loop around the step (pad, masks,
  finiteness check, copies). Its epoch-1 metrics are compared with the untimed bucketed run's
  (the timer only reads clocks: they must be equal). Plus the top operators by self CPU time
  from torch.profiler over one batch of a separate small `train_fold`.
- per-utterance identity: z of the utterances of one plain batch, computed inside that plain
  batch and inside their bucketed batches by the trained model, agree within 1e-4 (the model
  masks padding; tests/test_model.py::test_padding_does_not_change_an_utterance).
- padding: real / padded frames of the measured epochs, and of an IEMOCAP-sized epoch.
- probes on the trained model (`--no-probes` skips them): channels_last weights for a
  training step, and torch.inference_mode vs torch.no_grad for prediction.
- provenance: commit (bench/common.code_state), cpu count, torch version and threads, load
  average at start and end (bench/common.machine).

Prints the results as JSON (the last stdout line) and writes bench/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from common import EMODB_ROOT, code_state, machine  # noqa: E402

from ser_lab.config import TrainConfig  # noqa: E402
from ser_lab.data.splits import Fold  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn import trainer  # noqa: E402
from ser_lab.learn.losses import class_weights, weighted_cross_entropy  # noqa: E402
from ser_lab.learn.model import CnnBiGru, ModelConfig, min_frames  # noqa: E402
from ser_lab.learn.trainer import FoldData, pad_batch, prepare_fold  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

FRAMES_PER_S = 100  # 10 ms hop
N_BINS = 128  # Mel
N_CLASSES = 4
CPU = torch.device("cpu")
BATCH = TrainConfig().batch_size  # 32, the trainer's default
# IEMOCAP-like lengths: log-normal, median 3.6 s, sigma 0.65 -> mean ~4.5 s, sd ~3 s, 14 s cap.
LENGTH_MEDIAN_S = 3.6
LENGTH_SIGMA = 0.65
MIN_S, MAX_S = 1.0, 14.0
SYNTHETIC_LABELS = ("neutral", "angry", "happy", "sad")
MODES = ("bucketed", "plain")
LAM, ALPHA = 0.3, 0.5  # the paper's center loss, as the old bench and the reproduction train it
CORPORA = ("synthetic-var", "emodb")
MAKE_BATCHES = trainer.make_batches  # the trainer's own batcher (bucketing)
# Metric keys that are results of training (not clocks): equal with and without the timer.
TIME_KEYS = ("train_time_s", "utt_per_s", "time")


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


@dataclass
class Corpus:
    """One fold's data as train_fold gets it, and the config a user's run of it would have."""

    name: str
    cfg: TrainConfig
    data: FoldData
    label_names: tuple[str, ...]
    info: dict


def synthetic_corpus(n: int, seed: int, length_scale: float = 1.0) -> Corpus:
    """`n` training utterances with IEMOCAP-like lengths (plus n/8 validation, n/8 test, at
    least 4 each), balanced random labels, as the FoldData of one fold (`prepare_fold`).
    `length_scale` < 1 shortens every utterance by that factor (tests only: the same spread of
    lengths at a fraction of the compute)."""
    rng = np.random.default_rng(seed)
    n_eval = max(4, n // 8)
    total = n + 2 * n_eval
    seconds = iemocap_like_seconds(total, rng) * length_scale
    frames = np.maximum(seconds_to_frames(seconds), min_frames())
    feats = random_features(frames, rng)
    labels = rng.permutation(np.arange(total) % N_CLASSES).astype(np.int64)
    fold = Fold(0, np.arange(n), np.arange(n, n + n_eval), np.arange(n + n_eval, total))
    data = prepare_fold(feats, labels, [f"syn{i:05d}" for i in range(total)], fold)
    cfg = TrainConfig(corpus="synthetic-var", lam=LAM, alpha=ALPHA, seed=seed, normalise="corpus")
    info = {"length_model": f"log-normal, median {LENGTH_MEDIAN_S} s, sigma {LENGTH_SIGMA}, "
                            f"{MIN_S}-{MAX_S} s (IEMOCAP-like); random contents",
            "length_scale": length_scale}
    return Corpus("synthetic-var", cfg, data, SYNTHETIC_LABELS, info)


def emodb_corpus(root: Path, seed: int, features: str = "mel") -> Corpus:
    """Fold 0 of EmoDB under the lab's default split, read as train_run reads it."""
    # normalised with the training part's statistics (prepare_fold's default): the same cost
    cfg = TrainConfig(corpus="emodb", root=str(root), lam=LAM, alpha=ALPHA, seed=seed, features=features,
                      normalise="corpus").validate()
    manifest, feats, folds = trainer.load_data(cfg)
    utt_ids = [u.utt_id for u in manifest.utterances]
    data = prepare_fold(feats, manifest.label_ids(), utt_ids, folds[0])
    info = {"root": str(root), "protocol": cfg.protocol, "n_folds": len(folds), "fold": 0,
            "corpus_utterances": len(manifest)}
    return Corpus("emodb", cfg, data, tuple(manifest.labels), info)


def describe(corpus: Corpus) -> dict:
    data = corpus.data
    frames = np.array([len(data.features[i]) for i in data.train])
    return {
        **corpus.info,
        "train_utterances": len(data.train),
        "val_utterances": len(data.val),
        "test_utterances": len(data.test),
        "n_bins": int(data.features[0].shape[1]),
        "classes": list(corpus.label_names),
        "train_seconds_mean": round(float(frames.mean()) / FRAMES_PER_S, 2),
        "train_seconds_median": round(float(np.median(frames)) / FRAMES_PER_S, 2),
        "train_seconds_max": round(float(frames.max()) / FRAMES_PER_S, 2),
        "optimiser_steps_per_epoch": -(-len(data.train) // corpus.cfg.batch_size),
    }


# ----------------------------------------------------------------------------- the real trainer


class EpochBatcher:
    """Stands in for `trainer.make_batches` (same signature). Training calls (an rng given) get
    the trainer's bucketed batches or plain ones, and the padding of each epoch is recorded;
    evaluation calls (rng None) are the trainer's own."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"batching must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.epochs: list[dict] = []

    def __call__(self, lengths: np.ndarray, batch_size: int,
                 rng: np.random.Generator | None) -> list[np.ndarray]:
        if rng is None:
            return MAKE_BATCHES(lengths, batch_size, None)
        if self.mode == "bucketed":
            batches = MAKE_BATCHES(lengths, batch_size, rng)
        else:
            batches = plain_batches(len(lengths), batch_size, rng)
        self.epochs.append(padding_stats(np.asarray(lengths), batches))
        return batches


def _no_report(event: dict) -> None:
    return None


@dataclass
class FoldRun:
    """One train_fold call: its run, the metrics it recorded and the padding of its epochs."""

    run: object
    metrics: list[dict]
    padding: list[dict]
    wall_s: float


def train_once(corpus: Corpus, mode: str, epochs: int, store: RunStore, *,
               data: FoldData | None = None, timer=None, report=None) -> FoldRun:
    """train_fold on fold 0 of `corpus` in a new run folder of `store`, as train_run calls it."""
    cfg = replace(corpus.cfg, epochs=epochs, patience=0, precompute_maps=False, snapshot_every=0,
                  device="cpu", folds=[0]).validate()
    # store.create, not new_run: synthetic-var lives in memory, there is no corpus folder to check
    run = store.create({"train": cfg.to_dict()}, name=f"train_speed-{corpus.name}-{mode}")
    batcher = EpochBatcher(mode)
    with mock.patch.object(trainer, "make_batches", batcher):
        t0 = time.perf_counter()
        trainer.train_fold(cfg, data or corpus.data, corpus.label_names, 0, run, CPU,
                           report or _no_report, timer=timer)
        wall = time.perf_counter() - t0
    metrics = [r for r in run.read_metrics() if r["fold"] == 0]
    return FoldRun(run, metrics, batcher.epochs, wall)


def trained_model(fold_run: FoldRun) -> CnnBiGru:
    """The model train_fold saved (its best-validation weights)."""
    payload = fold_run.run.load_model(0)
    model = CnnBiGru(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model


def compare_batching(corpus: Corpus, epochs: int, repeats: int, store: RunStore,
                     flops_per_frame: float) -> tuple[dict, FoldRun]:
    """Alternating bucketed / plain train_fold runs; train_fold's own utt/s, medians."""
    per_rep: dict[str, list[FoldRun]] = {m: [] for m in MODES}
    for rep in range(repeats):
        for mode in (MODES if rep % 2 == 0 else MODES[::-1]):
            fr = train_once(corpus, mode, epochs, store)
            per_rep[mode].append(fr)
            rates = ", ".join(f"{r['utt_per_s']:.2f}" for r in fr.metrics)
            print(f"  {corpus.name} rep {rep} {mode}: {rates} utt/s per epoch "
                  f"(train_fold {fr.wall_s:.1f} s)", file=sys.stderr, flush=True)
    out: dict = {}
    for mode, runs in per_rep.items():
        rates = [[r["utt_per_s"] for r in fr.metrics] for fr in runs]
        times = [[r["train_time_s"] for r in fr.metrics] for fr in runs]
        gflops = [flops_per_frame * p["padded_frames"] / r["train_time_s"] / 1e9
                  for fr in runs for r, p in zip(fr.metrics, fr.padding, strict=True)]
        out[mode] = {
            "utt_per_s": round(statistics.median(v for rs in rates for v in rs), 3),
            "utt_per_s_by_repeat": [[round(v, 3) for v in rs] for rs in rates],
            "train_time_s_by_repeat": [[round(v, 4) for v in ts] for ts in times],
            "train_fold_wall_s_by_repeat": [round(fr.wall_s, 2) for fr in runs],
            "achieved_gflops": round(statistics.median(gflops), 3),
            "useful_frame_fraction": round(statistics.median(
                p["useful_fraction"] for fr in runs for p in fr.padding), 4),
            "padded_frames_per_epoch": runs[0].padding[0]["padded_frames"],
            "real_frames_per_epoch": runs[0].padding[0]["real_frames"],
        }
    ratios = [statistics.median(r["utt_per_s"] for r in b.metrics)
              / statistics.median(r["utt_per_s"] for r in p.metrics)
              for b, p in zip(per_rep["bucketed"], per_rep["plain"], strict=True)]
    out["speedup"] = round(statistics.median(ratios), 3)
    out["speedup_by_repeat"] = [round(r, 3) for r in ratios]
    return out, per_rep["bucketed"][0]


def z_agreement(model: CnnBiGru, features: list[np.ndarray], seed: int) -> dict:
    """Max |z| difference for the utterances of one plain batch: inside that plain batch vs
    inside the bucketed batches they fall into."""
    lengths = np.array([len(f) for f in features])
    plain = plain_batches(len(features), BATCH, np.random.default_rng([seed, 99]))[0]
    bucketed = MAKE_BATCHES(lengths, BATCH, np.random.default_rng([seed, 99]))
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
    return {
        "utterances": len(plain),
        "plain_batch_frames": int(lengths[plain].max()),
        "model": "the bucketed run's trained model (train_fold's saved best weights)",
        "max_abs_diff": max_diff,
        "agree_within_1e-4": max_diff <= 1e-4,
        "test": "tests/test_model.py::test_padding_does_not_change_an_utterance",
    }


# ----------------------------------------------------------------------------- where the time goes


@dataclass
class StepTimes:
    """Seconds per stage, summed over the batches of a measurement."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt

    @contextlib.contextmanager
    def timer(self, stage: str) -> Iterator[None]:
        """train_step's `timer`: `with timer(stage):` adds the stage's wall time."""
        t0 = time.perf_counter()
        yield
        self.add(stage, time.perf_counter() - t0)


@contextlib.contextmanager
def stage_hooks(times: StepTimes) -> Iterator[Callable[..., CnnBiGru]]:
    """A CnnBiGru factory whose models split training forward and backward into CNN / GRU /
    FC, for `mock.patch.object(trainer, "CnnBiGru", factory)`: train_fold builds its model
    inside, so the hooks sit on the model it trains.

    Forward: module pre/post hooks at the stage boundaries (training forwards only, not the
    validation ones). Backward (CPU autograd runs in this thread, in reverse order): a tensor
    hook on the FC input fires when the FC and loss backward are done, one on the CNN output
    when the GRU backward is done; the rest, up to loss.backward() returning, is the CNN
    backward. "forward: GRU" includes the reshape + pack_padded_sequence between the CNN and
    the GRU. The hooks only read clocks: gradients and results are unchanged.
    """
    marks: dict[str, float] = {}
    handles = []

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

    def fc_out(mod, *_args) -> None:
        marks["fc_end"] = time.perf_counter()
        if mod.training:
            times.add("forward: CNN", marks["cnn_end"] - marks["cnn_start"])
            times.add("forward: GRU (+pack)", marks["fc_start"] - marks["cnn_end"])

    def factory(*args, **kwargs) -> CnnBiGru:
        model = CnnBiGru(*args, **kwargs)
        handles.extend([
            model.cnn[0].register_forward_pre_hook(mark("cnn_start")),
            model.cnn[-1].register_forward_hook(cnn_out),
            model.fc1.register_forward_pre_hook(fc_in),
            model.fc2.register_forward_hook(fc_out),
        ])
        return model

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
        yield factory
    finally:
        torch.Tensor.backward = original_backward
        for h in handles:
            h.remove()


STEP_STAGES = ("forward (all)", "loss", "backward (all)", "optimiser (Adam)", "center update")
LOOP_REST = "batch loop around the step (pad, SpecAugment, finiteness check, copies)"


def breakdown(corpus: Corpus, store: RunStore, untimed: FoldRun) -> dict:
    """Stage times of one bucketed train_fold epoch, as shares of its train_time_s, with
    train_step's stages timed through train_fold's `timer`. Its epoch-1 metrics are compared
    with the untimed bucketed run's (`untimed`)."""
    times = StepTimes()
    with stage_hooks(times) as factory, mock.patch.object(trainer, "CnnBiGru", factory):
        timed = train_once(corpus, "bucketed", 1, store, timer=times.timer)
    wall = timed.metrics[0]["train_time_s"]
    s = times.seconds
    stages = {
        "forward: CNN": s.get("forward: CNN", 0.0),
        "forward: GRU (+pack)": s.get("forward: GRU (+pack)", 0.0),
        "forward: FC (rest)": s.get("forward (all)", 0.0) - s.get("forward: CNN", 0.0)
        - s.get("forward: GRU (+pack)", 0.0),
        "loss": s.get("loss", 0.0),
        "backward: loss + FC": s.get("backward: loss + FC", 0.0),
        "backward: GRU": s.get("backward: GRU", 0.0),
        "backward: CNN": s.get("backward: CNN", 0.0),
        "backward: rest (zero_grad, unsplit)": s.get("backward (all)", 0.0)
        - s.get("backward: loss + FC", 0.0) - s.get("backward: GRU", 0.0)
        - s.get("backward: CNN", 0.0),
        "optimiser (Adam)": s.get("optimiser (Adam)", 0.0),
        "center update": s.get("center update", 0.0),
        LOOP_REST: wall - sum(s.get(k, 0.0) for k in STEP_STAGES),
    }
    timed_record, untimed_record = timed.metrics[0], untimed.metrics[0]
    diffs = [abs(float(v) - float(untimed_record[k])) for k, v in timed_record.items()
             if k not in TIME_KEYS and isinstance(v, (int, float))]
    return {
        "how": "inside train_fold: its `timer` is handed to every train_step; CNN / GRU / FC "
               "split by hooks on the model train_fold builds; the batch-loop rest is "
               "train_time_s minus the step's stages",
        "epochs": 1,
        "utterances": len(corpus.data.train),
        "train_time_s": round(wall, 3),
        "stages": {k: {"s": round(v, 4), "share": round(v / wall, 4)} for k, v in stages.items()},
        "same_metrics_as_untimed": max(diffs, default=0.0) == 0.0,
        "max_abs_metric_diff_vs_untimed": max(diffs, default=0.0),
    }


def top_ops(corpus: Corpus, store: RunStore, k: int = 10) -> list[dict]:
    """torch.profiler: the k operators with the most self CPU time over the second batch of a
    small bucketed train_fold (2 batches of the fold's training part): one batch of the real
    loop, step and the work around it."""
    from torch.profiler import ProfilerActivity, profile

    data = corpus.data
    small = replace(data, train=data.train[: 2 * BATCH], val=data.val[:8], test=data.test[:8])
    prof = profile(activities=[ProfilerActivity.CPU])
    state = {"on": False, "done": False}

    def report(event: dict) -> None:
        if "batch" not in event or state["done"]:
            return
        if not state["on"] and event["batch"] == 1 and event["n_batches"] >= 2:
            prof.__enter__()
            state["on"] = True
        elif state["on"]:
            prof.__exit__(None, None, None)
            state["on"], state["done"] = False, True

    train_once(corpus, "bucketed", 1, store, data=small, report=report)
    if not state["done"]:
        return []
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    return [
        {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1),
         "share": round(e.self_cpu_time_total / total, 4), "calls": e.count}
        for e in rows[:k]
    ]


# ----------------------------------------------------------------------------- hardware


def flops_per_padded_frame(n_bins: int, n_classes: int, frames: int = 400) -> float:
    """Training FLOPs (torch.utils.flop_counter: convolutions, matmuls) of forward + backward
    of a BATCH x `frames` batch on the trainer's model, per padded frame."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = CnnBiGru(ModelConfig(n_bins=n_bins, n_classes=n_classes))
    x = torch.randn(BATCH, frames, n_bins)
    lens = torch.full((BATCH,), frames)
    y = torch.arange(BATCH) % n_classes
    counter = FlopCounterMode(display=False)
    with counter:
        _, logits = model(x, lens)
        weighted_cross_entropy(logits, y, class_weights(y, n_classes)).backward()
    return counter.get_total_flops() / (BATCH * frames)


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """float32 matmul GFLOP/s on the current threads (best of `repeats` timed n x n matmuls,
    2 n^3 FLOPs each, after one untimed): the practical compute ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def cpu_model() -> str | None:
    """The CPU's name from /proc/cpuinfo (None where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------- model-change probes


def probe_variants(model: CnnBiGru, repeats: int, frames: int = 450) -> dict:
    """One training step (32 x `frames`) per variant, interleaved; medians and z identity."""
    torch.manual_seed(1)
    x = torch.randn(BATCH, frames, model.cfg.n_bins)
    lens = torch.randint(int(frames * 0.85), frames + 1, (BATCH,))
    lens[0] = frames
    model.eval()
    with torch.inference_mode():
        z_ref, _ = model(x, lens)
    variants = ["current", "channels_last"]
    models = {}
    for name in variants:
        m = CnnBiGru(model.cfg)
        m.load_state_dict(model.state_dict())
        models[name] = m.to(memory_format=torch.channels_last) if name == "channels_last" else m
    times: dict[str, list[float]] = {k: [] for k in variants}
    diffs = {}
    for rep in range(repeats):
        names = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in names:
            m = models[name]
            m.train()
            t0 = time.perf_counter()
            z, logits = m(x, lens)
            logits.sum().backward()
            times[name].append(time.perf_counter() - t0)
            m.zero_grad(set_to_none=True)
            if rep == 0:
                m.eval()
                with torch.inference_mode():
                    diffs[name] = float((m(x, lens)[0] - z_ref).abs().max())
    base = statistics.median(times["current"])
    return {
        "batch": [BATCH, frames],
        "step_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "speedup_vs_current": {k: round(base / statistics.median(v), 3) for k, v in times.items()},
        "max_abs_z_diff_vs_current": diffs,
        "what": "forward + backward of one batch on the trained model's weights; current = "
                "ser_lab's model; channels_last = model.to(memory_format=torch.channels_last)",
    }


def probe_inference_mode(model: CnnBiGru, repeats: int, frames: int = 450) -> dict:
    """Prediction forward (batch 64) under torch.no_grad vs torch.inference_mode."""
    x = torch.randn(64, frames, model.cfg.n_bins)
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
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"batch": [64, frames], "forward_s": {k: round(v, 3) for k, v in med.items()},
            "speedup": round(med["no_grad"] / med["inference_mode"], 3)}


# ----------------------------------------------------------------------------- main


def measure_corpus(corpus: Corpus, epochs: int, repeats: int, store: RunStore,
                   seed: int) -> tuple[dict, CnnBiGru]:
    """Everything for one corpus; returns its result and the bucketed run's trained model."""
    n_bins = int(corpus.data.features[0].shape[1])
    flops = flops_per_padded_frame(n_bins, len(corpus.label_names))  # also warms the kernels up
    out: dict = {"data": describe(corpus), "train_gflop_per_padded_frame": round(flops / 1e9, 5)}
    print(f"{corpus.name}: bucketed vs plain ...", file=sys.stderr, flush=True)
    comparison, bucketed_run = compare_batching(corpus, epochs, repeats, store, flops)
    out.update(comparison)
    model = trained_model(bucketed_run)
    features = [corpus.data.features[i] for i in corpus.data.train]
    out["z_agreement"] = z_agreement(model, features, seed)
    print(f"{corpus.name}: breakdown ...", file=sys.stderr, flush=True)
    out["breakdown"] = breakdown(corpus, store, bucketed_run)
    out["profiler_top_ops"] = top_ops(corpus, store)
    return out, model


def run(corpora: tuple[str, ...] = CORPORA, n: int = 256, epochs: int = 2, repeats: int = 3,
        threads: int | None = None, seed: int = 0, root: Path = EMODB_ROOT, probes: bool = True,
        length_scale: float = 1.0) -> dict:
    """All measurements; returns the result dict. `threads` None: torch's default."""
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown or not corpora:
        raise ValueError(f"corpora must be some of {CORPORA}, got {corpora!r}")
    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    result: dict = {
        "benchmark": "train_speed",
        "code": code_state(),
        "machine": machine(torch_default_threads=default_threads,
                           threads_from="--threads" if threads is not None else "torch default"),
        "settings": {"corpora": list(corpora), "n": n, "epochs": epochs, "repeats": repeats,
                     "seed": seed, "batch_size": BATCH, "modes": list(MODES),
                     "trainer": f"ser_lab.learn.trainer.train_fold, fold 0, default recipe with "
                                f"center loss lambda {LAM}, alpha {ALPHA}; patience 0, no "
                                "snapshots, no map precomputation, device cpu"},
    }
    peak_start = matmul_gflops()
    # IEMOCAP-sized epoch (5,500 utterances): padding with the trainer's pools of 50 batches.
    big = seconds_to_frames(iemocap_like_seconds(5500, np.random.default_rng(seed + 1)))
    result["padding_iemocap_size"] = {
        "bucketed": padding_stats(big, MAKE_BATCHES(big, BATCH, np.random.default_rng(0))),
        "plain": padding_stats(big, plain_batches(len(big), BATCH, np.random.default_rng(0))),
    }
    result["corpora"] = {}
    probe_model = None
    with tempfile.TemporaryDirectory(prefix="train_speed-") as tmp:
        store = RunStore(Path(tmp) / "runs")
        for name in corpora:
            corpus = (synthetic_corpus(n, seed, length_scale) if name == "synthetic-var"
                      else emodb_corpus(root, seed))
            result["corpora"][name], model = measure_corpus(corpus, epochs, repeats, store, seed)
            if probe_model is None:
                probe_model = model
            del corpus
    peak_end = matmul_gflops()
    peak = max(peak_start, peak_end)
    result["peak"] = {
        "matmul_gflops_start": round(peak_start, 2),
        "matmul_gflops_end": round(peak_end, 2),
        "peak_gflops": round(peak, 2),
        "threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "how": "float32 peak of this machine as this process sees it: a 1024 x 1024 float32 "
               "matmul (2 * 1024^3 FLOPs), best of 5 timed after one untimed, on the same torch "
               "threads as the training, measured before and after the training passes; the "
               "higher of the two",
    }
    for out in result["corpora"].values():
        for mode in MODES:
            out[mode]["fraction_of_peak"] = round(out[mode]["achieved_gflops"] / peak, 4)
        out["flops_note"] = (
            "achieved GFLOP/s = train_gflop_per_padded_frame (torch.utils.flop_counter: "
            "convolutions and matmuls of forward + backward of a 32 x 400-frame batch) x the "
            "padded frames of each measured epoch / its train_time_s; median over epochs x "
            "repeats. Elementwise ops (ReLU, masks, pooling) count as 0 FLOPs but take time")
    if probes and probe_model is not None:
        print("probes ...", file=sys.stderr, flush=True)
        result["probe_model_changes"] = probe_variants(probe_model, max(repeats, 3))
        result["probe_inference_mode"] = probe_inference_mode(probe_model, max(repeats, 3))
    result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=(*CORPORA, "both"), default="both")
    parser.add_argument("--n", type=int, default=256, help="synthetic-var training utterances")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per train_fold")
    parser.add_argument("--repeats", type=int, default=3, help="alternating A/B repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's default, what a user gets)")
    parser.add_argument("--root", type=Path, default=EMODB_ROOT, help="EmoDB folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-probes", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_speed.json")
    args = parser.parse_args()
    for name in ("n", "epochs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    corpora = CORPORA if args.corpus == "both" else (args.corpus,)
    result = run(corpora, args.n, args.epochs, args.repeats, args.threads, args.seed, args.root,
                 probes=not args.no_probes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
