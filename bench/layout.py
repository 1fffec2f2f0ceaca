"""Channels-last conv weights in training (TrainConfig.channels_last) against the default layout:
the real `train_fold` on EmoDB fold 0, Mel and STFT input, same data, seed and epochs.

    nice -n 5 .venv/bin/python bench/layout.py [--features mel stft] [--epochs 2] [--repeats 2]
        [--threads 1] [--root EMODB]

Each repeat trains fold 0 once per layout (order alternating: A B, B A, ...) through
bench/train_speed.train_once (a run folder in a temporary store, the trainer's batch loop,
validation every epoch, fixed epochs, patience 0). Reported per input: train_fold's own
utterances/s (median over epochs x repeats), the median over repeats of the ratio
channels-last / default, and how far apart the two layouts' recorded losses and validation UA
are (float rounding only; it grows with the epochs as two trainings drift apart). Prints JSON as
its last line and writes bench/results/layout.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from common import EMODB_ROOT, code_state, machine  # noqa: E402
from train_speed import emodb_corpus, train_once  # noqa: E402

from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402

LAYOUTS = {"default": False, "channels_last": True}


def measure(corpus, epochs: int, repeats: int, store: RunStore) -> dict:
    """Alternating default / channels-last train_fold runs of one fold (a train_speed.Corpus)."""
    runs: dict[str, list] = {name: [] for name in LAYOUTS}
    for rep in range(repeats):
        order = list(LAYOUTS) if rep % 2 == 0 else list(LAYOUTS)[::-1]
        for name in order:
            variant = replace(corpus, cfg=replace(corpus.cfg, channels_last=LAYOUTS[name]))
            fr = train_once(variant, "bucketed", epochs, store)
            runs[name].append(fr)
            rates = ", ".join(f"{m['utt_per_s']:.2f}" for m in fr.metrics)
            print(f"  {corpus.cfg.features} rep {rep} {name}: {rates} utt/s", file=sys.stderr, flush=True)
    out: dict = {"n_bins": int(corpus.data.features[0].shape[1]), "train_utterances": len(corpus.data.train)}
    for name, frs in runs.items():
        out[name] = {
            "utt_per_s": round(statistics.median(m["utt_per_s"] for fr in frs for m in fr.metrics), 3),
            "utt_per_s_by_repeat": [[round(m["utt_per_s"], 3) for m in fr.metrics] for fr in frs],
        }
    ratios = [statistics.median(m["utt_per_s"] for m in fast.metrics)
              / statistics.median(m["utt_per_s"] for m in plain.metrics)
              for fast, plain in zip(runs["channels_last"], runs["default"], strict=True)]
    out["speedup"] = round(statistics.median(ratios), 3)
    out["speedup_by_repeat"] = [round(r, 3) for r in ratios]
    first_fast, first_plain = runs["channels_last"][0].metrics, runs["default"][0].metrics
    out["max_rel_diff_total_loss_by_epoch"] = [
        abs(a["total_loss"] - b["total_loss"]) / abs(b["total_loss"])
        for a, b in zip(first_fast, first_plain, strict=True)]
    out["val_ua_by_epoch"] = {"default": [m["val_UA"] for m in first_plain],
                              "channels_last": [m["val_UA"] for m in first_fast]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", nargs="+", default=["mel", "stft"], choices=["mel", "stft"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--root", default=str(EMODB_ROOT))
    p.add_argument("--out", default=str(BENCH / "results" / "layout.json"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"what": "train_fold on EmoDB fold 0 (lambda 0.3, alpha 0.5, batch 32, SpecAugment), "
                            "default vs channels-last conv weights", "epochs": args.epochs,
                    "repeats": args.repeats, "code": code_state(), "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        for features in args.features:
            corpus = emodb_corpus(Path(args.root), seed=0, features=features)
            result[features] = measure(corpus, args.epochs, args.repeats, store)
    result["machine_end"] = machine()
    atomic_write_json(Path(args.out), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
