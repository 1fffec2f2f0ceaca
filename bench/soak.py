"""Soak test: one long training run, memory sampled after every epoch. Does RSS stay flat?

    nice -n 10 .venv/bin/python bench/soak.py [--epochs 200] [--size tiny] [--lam 0.3] [--out PATH]

What it runs: the trainer (`ser_lab.learn.trainer.train_run`, the same code the CLI and the app use)
for `--epochs` epochs with center loss (lambda 0.3) on the built-in SYNTHETIC corpus, size "tiny" (32 utterances), fold 0 of
a 2-fold speaker split only (`folds=[0]`), on the CPU, into a temporary run store and feature
cache (nothing is written to the repository except the results file). 200 epochs on the
default corpus would take many hours on the shared 2-core machine this was run on, so the
corpus is the tiny one: per epoch the trainer still does everything it does on a large corpus
(batches, center update, validation pass, metrics line, atomic last.pt, best-model copy), only
on fewer utterances. A leak per epoch or per file write shows up regardless of corpus size; a
leak proportional to the number of utterances per epoch would show up ~18x smaller than on the
default corpus (576 utterances), which the per-epoch slope below would still reveal.

How memory is measured: the trainer's progress callback, on every `epoch_done` event, reads
/proc/self/status (VmRSS: current resident set; VmHWM: peak resident set so far) and
resource.getrusage(RUSAGE_SELF).ru_maxrss (the peak as the kernel reports it; KiB on Linux).
Also recorded every epoch: the number of Python objects the garbage collector tracks.

Output: bench/results/soak.json with the settings, RSS at epochs 10 and the last, the peak,
the growth between them, a least-squares slope of RSS over epochs 10..last (MB per epoch and
per 100 epochs), and the whole per-epoch curve. The last stdout line is the same JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE_EPOCH = 10  # RSS is compared from here on (the first epochs allocate caches)


def read_proc_status() -> dict[str, float]:
    """VmRSS and VmHWM of this process in MB (Linux /proc); {} elsewhere."""
    out: dict[str, float] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024.0  # kB -> MB
    return out


def ru_maxrss_mb() -> float:
    """Peak RSS from getrusage (KiB on Linux, bytes on macOS) in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def sample(epoch: int, t0: float) -> dict:
    status = read_proc_status()
    return {
        "epoch": epoch,
        "elapsed_s": round(time.time() - t0, 2),
        "rss_mb": round(status.get("VmRSS", float("nan")), 2),
        "hwm_mb": round(status.get("VmHWM", float("nan")), 2),
        "ru_maxrss_mb": round(ru_maxrss_mb(), 2),
        "gc_objects": len(gc.get_objects()),
    }


def slope(curve: list[dict], key: str, start: int) -> float:
    """Least-squares slope of curve[key] over epochs >= start (units per epoch)."""
    pts = [(s["epoch"], s[key]) for s in curve if s["epoch"] >= start]
    if len(pts) < 2:
        return float("nan")
    x, y = np.array(pts, dtype=float).T
    return float(np.polyfit(x, y, 1)[0])


def run_soak(epochs: int, size: str, seed: int, lam: float) -> dict:
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import new_run, train_run
    from ser_lab.runs import RunStore

    curve: list[dict] = []
    t0 = time.time()
    start = {"before_training": sample(0, t0)}

    def on_progress(event: dict) -> None:
        if event.get("epoch_done"):
            curve.append(sample(int(event["epoch"]), t0))

    cfg = TrainConfig(
        corpus="synthetic", corpus_options={"size": size}, epochs=epochs, n_folds=2, folds=[0], lam=lam,
        workers=1, device="cpu", seed=seed, snapshot_every=0,
    )
    with tempfile.TemporaryDirectory(prefix="ser_lab_soak_") as tmp:
        os.environ["SER_LAB_CACHE"] = str(Path(tmp) / "cache")
        store = RunStore(Path(tmp) / "runs")
        run = new_run(cfg, store, name="soak")
        with run.lock():
            results = train_run(run, progress=on_progress)
        metrics_lines = len(run.read_metrics())
        metrics_bytes = run.metrics_path.stat().st_size
    wall = time.time() - t0

    return {
        "benchmark": "soak",
        "what": (
            f"train_run for {epochs} epochs on the SYNTHETIC corpus, size {size!r} "
            f"({results['folds'][0]['n_test']} test utterances in fold 0), fold 0 of 2 only "
            "(folds=[0]), CPU; RSS sampled in the trainer's progress callback after every epoch"
        ),
        "why_tiny": (
            "200 epochs on the default synthetic corpus are far too slow on the shared 2-core "
            "machine; the per-epoch work (batches, center update, validation, metrics line, "
            "atomic last.pt, best-model copy) is the same, on fewer utterances"
        ),
        "config": cfg.to_dict(),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        },
        "wall_s": round(wall, 1),
        "before_training": start["before_training"],
        "metrics_lines": metrics_lines,
        "metrics_jsonl_bytes": metrics_bytes,
        "final_UA": results["pooled"]["UA"],
        **summarise(curve),
        "curve": curve,
    }


def window(curve: list[dict], first: int, last: int) -> dict:
    """min / median / max of RSS (MB) and the Python object count over epochs first..last."""
    rss = [s["rss_mb"] for s in curve if first <= s["epoch"] <= last]
    objects = [s["gc_objects"] for s in curve if first <= s["epoch"] <= last]
    return {
        "epochs": [first, last],
        "rss_min_mb": round(min(rss), 2),
        "rss_median_mb": round(float(np.median(rss)), 2),
        "rss_max_mb": round(max(rss), 2),
        "gc_objects_median": int(np.median(objects)),
    }


def summarise(curve: list[dict]) -> dict:
    """The numbers the verdict rests on, all computed from the per-epoch curve.

    RSS after an epoch moves between a few levels (the allocator keeps or hands back freed
    blocks depending on that epoch's batch shapes), so one sample at epoch 10 against one at
    the last epoch says little: a leak shows as a rising floor (min) and median over windows
    of epochs, a rising peak (VmHWM), a positive slope, or a growing Python object count.
    """
    by_epoch = {s["epoch"]: s for s in curve}
    ref = by_epoch.get(REFERENCE_EPOCH, curve[0])
    last = curve[-1]
    n = last["epoch"]
    width = max(n // 5, 1)
    early = window(curve, REFERENCE_EPOCH, REFERENCE_EPOCH + width)
    late = window(curve, n - width, n)
    floor_growth = late["rss_min_mb"] - early["rss_min_mb"]
    median_growth = late["rss_median_mb"] - early["rss_median_mb"]
    flat = abs(floor_growth) < 0.05 * early["rss_min_mb"] and median_growth < 0.05 * early["rss_median_mb"]
    return {
        "s_per_epoch": round((last["elapsed_s"] - curve[0]["elapsed_s"]) / max(len(curve) - 1, 1), 2),
        "epoch_10": ref,
        "epoch_last": last,
        "rss_growth_mb_epoch_10_to_last": round(last["rss_mb"] - ref["rss_mb"], 2),
        "peak_rss_mb": max(s["hwm_mb"] for s in curve),
        "peak_rss_mb_epoch_10_to_last": [ref["hwm_mb"], last["hwm_mb"]],
        "rss_slope_mb_per_100_epochs": round(100.0 * slope(curve, "rss_mb", REFERENCE_EPOCH), 3),
        "window_early": early,
        "window_late": late,
        "rss_floor_growth_mb": round(floor_growth, 2),
        "rss_median_growth_mb": round(median_growth, 2),
        "gc_objects_epoch_10_to_last": [ref["gc_objects"], last["gc_objects"]],
        "verdict": (
            "flat: the RSS floor and median of the last epochs are within 5 % of the early ones"
            if flat else "NOT flat: RSS floor or median grew by 5 % or more"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--size", default="tiny", help="synthetic corpus size (default tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lam", type=float, default=0.3, help="center loss weight (default 0.3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument(
        "--resummarise", type=Path, default=None, metavar="SOAK_JSON",
        help="do not train: recompute the summary of an earlier result from its curve",
    )
    args = parser.parse_args()
    if args.epochs < REFERENCE_EPOCH:
        parser.error(f"--epochs must be >= {REFERENCE_EPOCH}")
    if args.resummarise:
        result = json.loads(args.resummarise.read_text())
        result.pop("rss_growth_pct_epoch_10_to_last", None)  # replaced by the window summary
        result.update(summarise(result["curve"]))
        result["summary_note"] = "summary recomputed from this run's curve (--resummarise)"
    else:
        result = run_soak(args.epochs, args.size, args.seed, args.lam)
    from ser_lab.fileio import atomic_write_json

    atomic_write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}))


if __name__ == "__main__":
    main()
