"""How time and memory grow with corpus size and utterance length: training, feature
extraction, UMAP maps; and the cold / cached cost of one UMAP map of 5,000 points.

    nice -n 5 .venv/bin/python bench/scaling.py [--sizes 500 2000 8000] [--threads 1]

Parts (all in one process unless said; the machine's load average is recorded):
- length: one training step (batch 32, forward + backward + Adam) at fixed utterance lengths
  of 1, 2, 4, 8, 14 s: seconds per batch and per frame, and the step's peak RSS growth;
- training vs corpus size N: IEMOCAP-like lengths (see bench/train_speed.py), random
  contents. Memory: RSS growth for holding the features and for their normalised copy (the
  trainer holds both: trainer.prepare_fold). Time: trainer.prepare_fold (normalisation) and
  the epoch estimated as (seconds per padded frame, measured on 2 of the epoch's bucketed
  batches) x (padded frames of the whole bucketed epoch, exact) -- honest, not a full epoch;
- feature extraction: compute_features (Mel) on noise clips of 1-14 s (ms per clip), and over
  N clips of IEMOCAP-like lengths, cold (no cache; the first call's scipy import is timed
  separately). Sizes above --extract-max are extrapolated linearly and labelled so;
- UMAP (ser_lab.analysis.projection.fit_projection) on N clustered 64-d points, plus transforming N/4
  more; numba's one-off compilation is timed separately on a small warm-up fit;
- umap_5000: fit on 4,000 training z, transform 1,000 (project_fold on a run folder, as the
  app does): in a fresh process (imports + compilation + fit), in this process, and the
  cached reopen (project_fold reading fold_0/projections/), also in a fresh process;
- umap_probe: umap-learn's exact small-data neighbour search (below 4,096 points) vs the same
  fit on precomputed distances, side by side (a proposal for ser_lab.analysis.projection, not applied).
  `--parts umap_probe --merge` adds it to an existing scaling.json.
Peak memory: VmHWM from /proc/self/status after resetting it (clear_refs 5); RSS deltas are
approximate (the allocator may keep freed memory). Prints JSON (last stdout line) and writes
bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

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
    padding_stats,
    random_features,
    seconds_to_frames,
)

from ser_lab.config import ObjectiveConfig  # noqa: E402
from ser_lab.data.features import FeatureConfig, compute_features  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.learn.losses import class_weights  # noqa: E402
from ser_lab.learn.model import CnnBiGru, ModelConfig, min_frames  # noqa: E402
from ser_lab.learn.objectives import make_objective  # noqa: E402
from ser_lab.learn.trainer import make_batches, pad_batch, prepare_fold, spec_augment, train_step  # noqa: E402

MB = 1024 * 1024
CPU = torch.device("cpu")


class TrainState:
    """Model, the paper's objective, Adam and class weights as trainer.train_fold builds them
    (bench/train_speed.py measures train_fold itself; this bench times batches in isolation)."""

    def __init__(self, labels: np.ndarray, seed: int = 0, n_bins: int = N_BINS) -> None:
        torch.manual_seed(seed)
        self.model = CnnBiGru(ModelConfig(n_bins=n_bins, n_classes=N_CLASSES))
        self.objective = make_objective(
            ObjectiveConfig("center", lam=0.3, alpha=0.5), N_CLASSES, self.model.cfg.feature_dim
        )
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=3e-4)
        self.weights = class_weights(labels, N_CLASSES)


def train_batches(state: TrainState, features: list[np.ndarray], labels: np.ndarray,
                  batches: list[np.ndarray], *, seed: int = 0) -> float:
    """train_fold's per-batch work (pad, masks, trainer.train_step, copies) over `batches`;
    returns the wall seconds."""
    model, objective, optimiser = state.model, state.objective, state.optimiser
    model.train()
    labels_t = torch.from_numpy(labels)
    n = sum(len(b) for b in batches)
    train_pred = np.zeros(n, dtype=np.int64)
    train_z = np.zeros((n, model.cfg.feature_dim), dtype=np.float32)
    t0 = time.perf_counter()
    at = 0
    for b, idx in enumerate(batches):
        pos = np.arange(at, at + len(idx))
        at += len(idx)
        x, lens = pad_batch([features[i] for i in idx])
        spec_augment(x, lens, np.random.default_rng([seed, 0, 1, b]))
        step = train_step(model, objective, optimiser, x, lens, labels_t[idx], state.weights, CPU)
        for value in step.losses.values():
            float(value.detach())
        train_pred[pos] = step.logits.argmax(1).cpu().numpy()
        train_z[pos] = step.z.detach().float().cpu().numpy()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- memory


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def trim() -> None:
    """Hand freed heap memory back to the OS (glibc malloc_trim), so RSS deltas mean growth."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_mb() -> float:
    """Resident memory (MB) after trimming the allocator."""
    trim()
    return _status_kb("VmRSS") / 1024


@contextlib.contextmanager
def peak_rss(out: dict, key: str) -> Iterator[None]:
    """out[key] = peak RSS growth (MB) inside the block (VmHWM reset first, where allowed)."""
    trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        resettable = True
    except OSError:
        resettable = False
    before = rss_mb()
    yield
    peak = _status_kb("VmHWM") / 1024
    out[key] = round(peak - before, 1) if resettable else None


def linear_check(xs: list[float], ys: list[float]) -> dict:
    """Slope of log(y) on log(x) (1.0 = linear growth) and the ratio of y/x, last vs first."""
    lx, ly = np.log(xs), np.log(ys)
    slope = float(np.polyfit(lx, ly, 1)[0]) if len(xs) > 1 else float("nan")
    return {"loglog_slope": round(slope, 3),
            "per_unit_last_over_first": round((ys[-1] / xs[-1]) / (ys[0] / xs[0]), 3)}


# ----------------------------------------------------------------------------- training


def training_by_length(state: TrainState, seconds: list[float], repeats: int) -> dict:
    """One training step of 32 utterances all `s` seconds long, per length."""
    rows = []
    labels = np.arange(BATCH) % N_CLASSES
    rng = np.random.default_rng(0)
    step_s: dict[float, list[float]] = {s: [] for s in seconds}
    peaks: dict[float, float | None] = {}
    for rep in range(repeats):
        order = seconds if rep % 2 == 0 else list(reversed(seconds))
        for s in order:
            t = int(seconds_to_frames(np.array([s]))[0])
            feats = random_features(np.full(BATCH, t), rng)
            mem: dict = {}
            with peak_rss(mem, "peak"):
                step_s[s].append(train_batches(state, feats, labels, [np.arange(BATCH)]))
            peaks[s] = mem["peak"] if s not in peaks else max(peaks[s] or 0, mem["peak"] or 0)
    for s in seconds:
        t = int(seconds_to_frames(np.array([s]))[0])
        med = statistics.median(step_s[s])
        rows.append({"seconds": s, "frames": t, "step_s": round(med, 3),
                     "ms_per_frame": round(med / (BATCH * t) * 1e3, 4),
                     "step_peak_rss_mb": peaks[s]})
    return {"batch": BATCH, "rows": rows,
            "time_vs_length": linear_check([r["frames"] for r in rows], [r["step_s"] for r in rows]),
            "memory_vs_length": linear_check(
                [r["frames"] for r in rows], [max(r["step_peak_rss_mb"] or 1e-3, 1e-3) for r in rows])}


def training_by_size(state: TrainState, sizes: list[int], sample_batches: int, repeats: int,
                     seed: int) -> dict:
    """Per corpus size: feature memory, normalisation time, estimated epoch time.

    Memory and prepare_fold are measured size by size (features freed in between). The epoch
    time is (seconds per padded frame) x (padded frames of the whole bucketed epoch): the
    seconds per padded frame come from `sample_batches` of each size's bucketed epoch, timed
    in rounds that alternate the order of the sizes, so a change in machine load hits every
    size alike. Only the sampled batches' features are kept between the two steps.
    """
    rows, samples = [], {}
    for n in sizes:
        rng = np.random.default_rng([seed, n])
        frames = np.maximum(seconds_to_frames(iemocap_like_seconds(n, rng)), min_frames())
        labels = rng.integers(0, N_CLASSES, n)
        base = rss_mb()
        feats = random_features(frames, rng)
        feat_rss = rss_mb() - base
        fold = SimpleNamespace(train=np.arange(int(n * 0.7)),
                               val=np.arange(int(n * 0.7), int(n * 0.85)),
                               test=np.arange(int(n * 0.85), n))
        before = rss_mb()
        t0 = time.perf_counter()
        data = prepare_fold(feats, labels, [str(i) for i in range(n)], fold)
        prep_s = time.perf_counter() - t0
        norm_rss = rss_mb() - before
        batches = make_batches(frames, BATCH, np.random.default_rng([seed, n, 1]))
        pick = np.random.default_rng([seed, n, 2]).choice(len(batches), sample_batches,
                                                          replace=False)
        sampled = [batches[i] for i in pick]
        keep = np.concatenate(sampled)
        samples[n] = ([data.features[i] for i in keep], labels[keep],
                      padding_stats(frames, sampled)["padded_frames"])
        pad = padding_stats(frames, batches)
        rows.append({
            "utterances": n,
            "audio_hours": round(float(frames.sum()) / 100 / 3600, 2),
            "features_mb": round(sum(f.nbytes for f in feats) / MB, 1),
            "features_rss_growth_mb": round(feat_rss, 1),
            "normalised_copy_rss_growth_mb": round(norm_rss, 1),
            "prepare_fold_s": round(prep_s, 3),
            "useful_frame_fraction": pad["useful_fraction"],
            "epoch_padded_frames": pad["padded_frames"],
            "sampled_batches": sample_batches,
        })
        del feats, data
        print(f"  size N={n}: {rows[-1]}", file=sys.stderr, flush=True)
    per_frame: dict[int, list[float]] = {n: [] for n in sizes}
    for rep in range(repeats):
        for n in (sizes if rep % 2 == 0 else list(reversed(sizes))):
            feats, labels, padded = samples[n]
            k = len(feats) // sample_batches
            sampled = [np.arange(i * k, (i + 1) * k) for i in range(sample_batches)]
            per_frame[n].append(train_batches(state, feats, labels, sampled) / padded)
    for row in rows:
        s_per_frame = statistics.median(per_frame[row["utterances"]])
        epoch_s = s_per_frame * row["epoch_padded_frames"]
        row.update(ms_per_padded_frame=round(s_per_frame * 1e3, 4),
                   epoch_s_estimated=round(epoch_s, 1),
                   ms_per_utterance_estimated=round(epoch_s / row["utterances"] * 1e3, 1))
    ns = [r["utterances"] for r in rows]
    return {
        "rows": rows,
        "epoch_time_vs_n": linear_check(ns, [r["epoch_s_estimated"] for r in rows]),
        "feature_memory_vs_n": linear_check(ns, [r["features_mb"] for r in rows]),
        "prepare_fold_vs_n": linear_check(ns, [r["prepare_fold_s"] for r in rows]),
        "method": "epoch_s_estimated = s per padded frame (median over rounds alternating the "
                  "sizes, on sampled bucketed batches) x exact padded frames of the whole "
                  "bucketed epoch (not a full epoch); the trainer holds the features and their "
                  "normalised copy (trainer.prepare_fold), i.e. about 2 x features_mb",
    }


# ----------------------------------------------------------------------------- features


def extraction(sizes: list[int], extract_max: int, seconds: list[float], seed: int) -> dict:
    """compute_features timings by clip length and by number of clips (cold: no cache)."""
    cfg = FeatureConfig(kind="mel")
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal(16000 * 20) * 0.1).astype(np.float32)
    t0 = time.perf_counter()
    compute_features(noise[:16000], cfg)
    first_call_s = time.perf_counter() - t0
    by_length = []
    for s in seconds:
        clip = noise[: int(s * 16000)]
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            compute_features(clip, cfg)
            ts.append(time.perf_counter() - t0)
        by_length.append({"seconds": s, "ms": round(statistics.median(ts) * 1e3, 2)})
    by_size = []
    for n in sizes:
        durations = iemocap_like_seconds(n, np.random.default_rng([seed, n]))
        if n > extract_max:
            per_audio_s = by_size[-1]["s"] / by_size[-1]["audio_s"]
            by_size.append({"clips": n, "audio_s": round(float(durations.sum()), 1),
                            "s": round(per_audio_s * float(durations.sum()), 2),
                            "extrapolated": True})
            continue
        starts = rng.integers(0, len(noise) - 14 * 16000, n)
        mem: dict = {}
        out = []
        with peak_rss(mem, "peak"):
            t0 = time.perf_counter()
            for st, d in zip(starts, durations):
                out.append(compute_features(noise[st : st + int(d * 16000)], cfg))
            took = time.perf_counter() - t0
        by_size.append({"clips": n, "audio_s": round(float(durations.sum()), 1), "s": round(took, 2),
                        "clips_per_s": round(n / took, 1), "peak_rss_mb": mem["peak"],
                        "features_mb": round(sum(o.nbytes for o in out) / MB, 1),
                        "extrapolated": False})
        del out
        print(f"  extract N={n}: {by_size[-1]}", file=sys.stderr, flush=True)
    measured = [r for r in by_size if not r["extrapolated"]]
    return {
        "first_call_s": round(first_call_s, 3),
        "by_length": by_length,
        "time_vs_length": linear_check([r["seconds"] for r in by_length], [r["ms"] for r in by_length]),
        "by_size": by_size,
        "time_vs_clips_measured": linear_check([r["clips"] for r in measured], [r["s"] for r in measured]),
        "note": "one process, one core; extract_corpus adds decoding (load_audio) and hashing and "
                "can use a process per core: see bench/results/features.json for whole corpora",
    }


# ----------------------------------------------------------------------------- UMAP


def clustered_z(n: int, seed: int, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """n points in 4 overlapping Gaussian classes, z-like (PReLU output scale)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, (N_CLASSES, dim))
    labels = rng.integers(0, N_CLASSES, n)
    return (centers[labels] + rng.normal(0, 1.0, (n, dim))).astype(np.float32), labels


def umap_scaling(sizes: list[int], seed: int) -> dict:
    from ser_lab.analysis.projection import fit_projection

    t0 = time.perf_counter()
    z, _ = clustered_z(300, seed)
    fit_projection(z[:200], "umap").transform(z[200:])
    warmup_s = time.perf_counter() - t0
    rows = []
    for n in sizes:
        z, _ = clustered_z(n + n // 4, seed + n)
        mem: dict = {}
        with peak_rss(mem, "peak"):
            t0 = time.perf_counter()
            proj = fit_projection(z[:n], "umap")
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            proj.transform(z[n:])
            transform_s = time.perf_counter() - t0
        rows.append({"points": n, "fit_s": round(fit_s, 2), "transform_s": round(transform_s, 2),
                     "transformed_points": n // 4, "peak_rss_mb": mem["peak"]})
        print(f"  umap N={n}: {rows[-1]}", file=sys.stderr, flush=True)
    return {"first_use_s": round(warmup_s, 2),
            "first_use_note": "import umap + numba compilation + a 200-point fit, once per process",
            "rows": rows,
            "fit_time_vs_n": linear_check([r["points"] for r in rows], [r["fit_s"] for r in rows])}


def make_run(store_root: Path, n_train: int, n_other: int, seed: int):
    """A run folder whose fold 0 holds n_train training z and n_other val/test z."""
    from ser_lab.runs import RunStore

    n = n_train + n_other
    z, labels = clustered_z(n, seed)
    run = RunStore(store_root).create({"train": {"corpus": "bench"}}, name="umap-bench")
    probs = np.full((n, N_CLASSES), 1.0 / N_CLASSES, dtype=np.float32)
    split = np.array(["train"] * n_train + ["val"] * (n_other // 2)
                     + ["test"] * (n_other - n_other // 2))
    centers = np.stack([z[labels == c].mean(0) for c in range(N_CLASSES)]).astype(np.float32)
    run.save_embeddings(0, z=z, labels=labels, preds=labels, probs=probs,
                        utt_ids=np.array([f"u{i:05d}" for i in range(n)]), split=split,
                        centers=centers, label_names=np.array(["neutral", "angry", "happy", "sad"]))
    return run


_CHILD = """
import sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from ser_lab.analysis.maps import project_fold
from ser_lab.runs import Run
t1 = time.perf_counter()
m = project_fold(Run({run_dir!r}), 0, "umap")
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "project_fold_s": t2 - t1, "from_cache": m.from_cache}}))
"""


def _child(run_dir: Path) -> dict:
    code = _CHILD.format(root=str(ROOT), run_dir=str(run_dir))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["process_wall_s"] = time.perf_counter() - t0
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in info.items()}


def umap_5000(seed: int) -> dict:
    """Cold and cached UMAP map of 5,000 points (fit 4,000, transform 1,000) via project_fold."""
    from ser_lab.analysis.maps import project_fold
    from ser_lab.analysis.projection import fit_projection

    out: dict = {"fit_points": 4000, "transformed_points": 1000}
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "a", 4000, 1000, seed)
        out["cold_fresh_process"] = _child(run.dir)  # no cache yet: fits, maps, writes the cache
        out["cached_reopen_fresh_process"] = _child(run.dir)
        z, _ = clustered_z(5000, seed)
        t0 = time.perf_counter()
        fit_projection(z[:4000], "umap").transform(z[4000:])
        out["fit_projection_in_process_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        reopened = project_fold(run, 0, "umap")  # the fresh process above wrote the cache
        out["project_fold_cached_in_process_s"] = round(time.perf_counter() - t0, 4)
        t0 = time.perf_counter()
        reopened.transform(z[:1])
        out["place_one_new_point_on_cached_map_s"] = round(time.perf_counter() - t0, 4)
        out["from_cache"] = reopened.from_cache
    return out


def umap_precomputed_probe(sizes: list[int], seed: int) -> dict:
    """umap-learn below 4,096 points: its exact neighbour search vs precomputed distances.

    For fewer than 4,096 points umap-learn computes all pairwise distances through sklearn's
    pairwise_distances with its numba metric as a Python callable: n^2 / 2 Python calls, most
    of a 2,000-4,000-point fit. Handing UMAP a BLAS-computed distance matrix
    (metric="precomputed") finds the same exact neighbours. Measured here side by side (order
    alternating), with how far the fuzzy neighbour graphs and the resulting maps differ.
    Not applied to ser_lab.analysis.projection (a proposal for its owner).
    """
    import warnings

    import umap
    from sklearn.metrics import pairwise_distances

    def fit(z: np.ndarray, precomputed: bool):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            if precomputed:
                model = umap.UMAP(random_state=0, metric="precomputed")
                xy = model.fit_transform(pairwise_distances(z))
            else:
                model = umap.UMAP(random_state=0)
                xy = model.fit_transform(z)
            return time.perf_counter() - t0, model, xy

    z_small, _ = clustered_z(200, seed)
    fit(z_small, True)  # compile the precomputed path's numba code outside the timings
    fit(z_small, False)
    rows = []
    for i, n in enumerate(sizes):
        z, _ = clustered_z(n, seed + 2 * n)
        results = {}
        for precomputed in ((False, True) if i % 2 == 0 else (True, False)):
            results[precomputed] = fit(z, precomputed)
        (t_default, m_default, xy_default), (t_pre, m_pre, xy_pre) = results[False], results[True]
        g_a, g_b = m_default.graph_.tocsr(), m_pre.graph_.tocsr()
        same_pattern = bool((g_a != 0).toarray().__eq__((g_b != 0).toarray()).all())
        rows.append({
            "points": n,
            "default_fit_s": round(t_default, 2),
            "precomputed_fit_s": round(t_pre, 2),
            "speedup": round(t_default / t_pre, 2),
            "same_neighbour_graph_edges": same_pattern,
            "max_graph_weight_diff": float(abs(g_a - g_b).max()),
            "map_max_abs_diff": round(float(np.abs(xy_default - xy_pre).max()), 3),
            "map_extent": round(float(np.ptp(xy_default)), 3),
        })
        print(f"  umap probe N={n}: {rows[-1]}", file=sys.stderr, flush=True)
    return {"rows": rows, "note": umap_precomputed_probe.__doc__.split("\n\n")[1].strip()}


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--lengths", type=float, nargs="+", default=[1, 2, 4, 8, 14])
    parser.add_argument("--extract-max", type=int, default=2000,
                        help="largest corpus size whose extraction is measured (larger: extrapolated)")
    parser.add_argument("--sample-batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", nargs="+",
                        default=["length", "size", "extract", "umap", "umap5000", "umap_probe"],
                        choices=["length", "size", "extract", "umap", "umap5000", "umap_probe"])
    parser.add_argument("--probe-sizes", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--merge", action="store_true",
                        help="update the parts run now in an existing --out JSON, keep the rest")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scaling.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict = {
        "benchmark": "scaling",
        "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads, "torch": torch.__version__,
                    "python": platform.python_version(),
                    "loadavg_start": [round(v, 2) for v in os.getloadavg()]},
    }
    state = TrainState(np.arange(BATCH) % N_CLASSES, args.seed)
    timings = {}
    if "length" in args.parts:
        t0 = time.perf_counter()
        train_batches(state, random_features(np.full(8, 200), np.random.default_rng(0)),
                      np.arange(8) % N_CLASSES, [np.arange(8)])  # warm-up
        result["training_by_length"] = training_by_length(state, args.lengths, args.repeats)
        timings["length"] = time.perf_counter() - t0
    if "size" in args.parts:
        t0 = time.perf_counter()
        result["training_by_size"] = training_by_size(state, args.sizes, args.sample_batches,
                                                        args.repeats, args.seed)
        timings["size"] = time.perf_counter() - t0
    if "extract" in args.parts:
        t0 = time.perf_counter()
        result["feature_extraction"] = extraction(args.sizes, args.extract_max, args.lengths, args.seed)
        timings["extract"] = time.perf_counter() - t0
    if "umap" in args.parts:
        t0 = time.perf_counter()
        result["umap"] = umap_scaling(args.sizes, args.seed)
        timings["umap"] = time.perf_counter() - t0
    if "umap5000" in args.parts:
        t0 = time.perf_counter()
        result["umap_5000"] = umap_5000(args.seed)
        timings["umap5000"] = time.perf_counter() - t0
    if "umap_probe" in args.parts:
        t0 = time.perf_counter()
        result["umap_precomputed_probe"] = umap_precomputed_probe(args.probe_sizes, args.seed)
        timings["umap_probe"] = time.perf_counter() - t0
    result["bench_wall_s"] = {k: round(v, 1) for k, v in timings.items()}
    result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    if args.merge and args.out.is_file():
        # keep the parts not rerun this time; their own load averages stay with them
        previous = json.loads(args.out.read_text())
        previous_machine = previous.get("machine", {})
        previous.update({k: v for k, v in result.items() if k not in ("machine", "bench_wall_s")})
        previous.setdefault("bench_wall_s", {}).update(result["bench_wall_s"])
        previous["machine_by_part"] = {
            **previous.get("machine_by_part", {}),
            **{part: result["machine"] for part in timings},
        }
        previous["machine"] = previous_machine
        result = previous
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
