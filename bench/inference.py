"""Benchmark clip inference: cold start and warm latency of `Predictor.predict` on a 5 s clip.

    .venv/bin/python bench/inference.py [--size medium] [--calls 50] [--threads 1] [--fresh]

1. Trains (once; reused afterwards) a 1-epoch run on the synthetic corpus (medium: 192
   utterances) in a fixed bench store under the system temp folder (`--store`), and fills
   its map cache (PCA and UMAP), as a run looked at in the app has it.
2. Builds a 5 s test clip: test utterances of the run's corpus, concatenated and cut to 5.0 s,
   written as a 16 kHz 16-bit WAV; the clip is passed as bytes, as the app passes an upload.
3. Cold: a FRESH Python process imports SER Lab (reported separately as import_ms), then times
   `Predictor.from_run` + the first `predict` (projection and neighbours on). That is cold_ms:
   model loading, the first torch forward, reading the maps from the disk cache (UMAP places
   new points in numpy from the cached map: no refit, no numba), the embeddings and the
   corpus manifest. cold_cpu_ms is the CPU time of the same span (robust to a busy machine). cold_without_umap_ms is the same minus the UMAP
   parts (load_umap + projection_umap of that first call). A second fresh process times the
   first predict without projection (cold_no_projection_ms).
4. Warm: in this process, after a warm-up, `--calls` calls of the full pipeline (decode ->
   features -> model -> distances -> PCA + UMAP positions -> neighbours): median and p90 of
   wall time and of process CPU time, and the median of each stage. Then the same with torch's
   default thread count (threads=None), for comparison with the chosen `--threads`.

The machine may be shared: the load average before and after is recorded, and CPU time is
given next to wall time (on a busy machine wall time includes waiting for a core).
Prints the results as JSON (the last stdout line) and writes bench/results/inference.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN_NAME = "bench-inference"
CLIP_SECONDS = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "ser_lab_bench_inference"))
    parser.add_argument("--size", default="medium", help="synthetic corpus size (tiny, small, medium, default)")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per forward")
    parser.add_argument("--fresh", action="store_true", help="train a new run even if one exists")
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--clip", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-projection", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    base = Path(args.store)
    os.environ["SER_LAB_CACHE"] = str(base / "cache")
    os.environ["SER_LAB_CHECKPOINTS"] = str(base / "runs")
    if args.cold_child:
        return cold_child(args)
    return run_bench(args, base)


# ----------------------------------------------------------------------------- cold (child)


def cold_child(args: argparse.Namespace) -> int:
    """In a fresh process: import, from_run, first predict. Prints one JSON line."""
    t0 = time.perf_counter()
    from ser_lab.inference import Predictor
    from ser_lab.runs import RunStore

    t1, c1 = time.perf_counter(), time.process_time()
    clip = Path(args.clip).read_bytes()
    run = RunStore().get(args.run)
    predictor = Predictor.from_run(run, fold=0, device="cpu", threads=args.threads)
    t2 = time.perf_counter()
    result = predictor.predict(clip, with_projection=not args.no_projection)
    t3, c3 = time.perf_counter(), time.process_time()
    out = {
        "import_ms": 1000 * (t1 - t0),
        "from_run_ms": 1000 * (t2 - t1),
        "first_predict_ms": 1000 * (t3 - t2),
        "cold_ms": 1000 * (t3 - t1),
        "cold_cpu_ms": 1000 * (c3 - c1),  # CPU time of this process: robust to a busy machine
        "first_predict_stages_ms": result.timings,
        "load_ms": predictor.load_timings,
        "predicted": result.predicted,
    }
    print(json.dumps(out))
    return 0


def run_cold(args: argparse.Namespace, run_id: str, clip: Path, no_projection: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cold-child", "--store", args.store,
           "--run", run_id, "--clip", str(clip), "--threads", str(args.threads)]
    if no_projection:
        cmd.append("--no-projection")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"cold child failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_ms"] = 1000 * wall  # interpreter start-up and exit included
    return out


# ----------------------------------------------------------------------------- setup


def get_run(args: argparse.Namespace):
    """The bench run (trained here the first time), with its maps cached on disk."""
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import new_run, train_run
    from ser_lab.runs import RunStore

    store = RunStore()
    if not args.fresh:
        for summary in store.list():
            if summary.name == f"{RUN_NAME}-{args.size}" and summary.state == "done":
                return store.get(summary.run_id), False
    cfg = TrainConfig(corpus="synthetic", corpus_options={"size": args.size}, epochs=1, n_folds=2,
                      folds=[0], workers=1, device="cpu", seed=0)
    run = new_run(cfg, store, name=f"{RUN_NAME}-{args.size}")
    with run.lock():
        train_run(run)
    return store.get(run.run_id), True


def make_clip(run, path: Path) -> dict:
    """5.0 s of the run's test utterances, concatenated, as a 16 kHz 16-bit WAV."""
    import numpy as np
    import soundfile as sf

    from ser_lab.data.audio import load_audio
    from ser_lab.inference import Predictor

    emb = run.load_embeddings(0)
    paths = Predictor.from_run(run).paths()
    pieces, total, used = [], 0, []
    for utt_id in emb["utt_ids"][emb["split"] == "test"]:
        samples = load_audio(paths[str(utt_id)]).samples
        pieces.append(samples)
        used.append(str(utt_id))
        total += samples.size
        if total >= CLIP_SECONDS * 16000:
            break
    clip = np.concatenate(pieces)[: int(CLIP_SECONDS * 16000)]
    if clip.size < CLIP_SECONDS * 16000:
        raise SystemExit("not enough test audio for a 5 s clip")
    buf = io.BytesIO()
    sf.write(buf, clip, 16000, format="WAV", subtype="PCM_16")
    path.write_bytes(buf.getvalue())
    return {"seconds": CLIP_SECONDS, "bytes": path.stat().st_size, "from_utterances": used}


# ----------------------------------------------------------------------------- warm


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def time_warm(predictor, clip: bytes, calls: int) -> dict:
    for _ in range(3):
        predictor.predict(clip)
    wall, cpu, stages = [], [], []
    for _ in range(calls):
        t, c = time.perf_counter(), time.process_time()
        result = predictor.predict(clip)
        cpu.append(1000 * (time.process_time() - c))
        wall.append(1000 * (time.perf_counter() - t))
        stages.append(result.timings)
    keys = [k for k in stages[0] if all(k in s for s in stages)]
    return {
        "calls": calls,
        "warm_median_ms": round(statistics.median(wall), 2),
        "warm_p90_ms": round(percentile(wall, 0.9), 2),
        "warm_min_ms": round(min(wall), 2),
        "warm_cpu_median_ms": round(statistics.median(cpu), 2),
        "warm_cpu_p90_ms": round(percentile(cpu, 0.9), 2),
        "stage_median_ms": {k: round(statistics.median(s[k] for s in stages), 3) for k in keys},
    }


def run_bench(args: argparse.Namespace, base: Path) -> int:
    import torch

    from ser_lab.fileio import atomic_write_json
    from ser_lab.inference import Predictor

    load_before = os.getloadavg()
    run, trained = get_run(args)
    base.mkdir(parents=True, exist_ok=True)
    clip_path = base / "clip_5s.wav"
    clip_info = make_clip(run, clip_path)
    clip = clip_path.read_bytes()

    # the maps' disk cache, as a run that was looked at in the app has it
    Predictor.from_run(run).warm_up()
    n_train = int((run.load_embeddings(0)["split"] == "train").sum())

    cold = run_cold(args, run.run_id, clip_path, no_projection=False)
    cold_np = run_cold(args, run.run_id, clip_path, no_projection=True)
    first = cold["first_predict_stages_ms"]
    umap_ms = first.get("load_umap", 0.0) + first.get("projection_umap", 0.0)

    predictor = Predictor.from_run(run, fold=0, device="cpu", threads=args.threads)
    predictor.warm_up()
    warm = time_warm(predictor, clip, args.calls)
    default_threads = torch.get_num_threads()
    untuned = Predictor.from_run(run, fold=0, device="cpu", threads=None)
    untuned.warm_up()
    warm_default = time_warm(untuned, clip, max(10, args.calls // 2))

    results = {
        "warm_median_ms": warm["warm_median_ms"],
        "warm_p90_ms": warm["warm_p90_ms"],
        "warm_cpu_median_ms": warm["warm_cpu_median_ms"],
        "cold_ms": round(cold["cold_ms"], 1),
        "cold_cpu_ms": round(cold["cold_cpu_ms"], 1),
        "cold_without_umap_ms": round(cold["cold_ms"] - umap_ms, 1),
        "cold_no_projection_ms": round(cold_np["cold_ms"], 1),
        "import_ms": round(cold["import_ms"], 1),
        "cold": cold,
        "cold_no_projection": cold_np,
        "warm": warm,
        "warm_torch_default_threads": {"threads": default_threads, **warm_default},
        "clip": clip_info,
        "run": {"run_id": run.run_id, "trained_now": trained, "corpus": f"synthetic/{args.size}",
                "n_train_points": n_train},
        "threads": args.threads,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
    }
    out = ROOT / "bench" / "results" / "inference.json"
    atomic_write_json(out, results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
