"""The demo runs shipped in checkpoints/: `python -m ser_lab.experiments.demo` (= `make demo-checkpoints`).

The app must have something to show the moment it opens, before anyone has trained anything:
a baseline and a center-loss run (λ = 0.3, α = 0.5) on the built-in synthetic corpus, one
speaker-independent fold, with a z snapshot after every epoch for the training animation.
They are ordinary run folders with fixed ids, `demo-baseline` and `demo-center-loss`, and
`demo: true` in their config, so the app labels them as demo runs.

They are rebuilt deterministically: the same seed, the CPU even where a GPU is present, one
torch thread (so no parallel reduction changes the order of float additions) and the trainer's
deterministic algorithms give the same numbers on the same machine; another CPU may differ in
the last digits.

Only what the app needs is kept (config.json, status.json, metrics.jsonl, results.json and per
fold model.pt, embeddings.npz, snapshots/, and projections/: the PCA and UMAP maps the pages show
first, pickle-free .npz files of about 15 kB, so that the first clip in Explore and the first
Compare on a fresh machine read them instead of waiting for a UMAP fit and numba's compilation);
resume state and logs are dropped, so the pair stays a few MB. Each run is trained under a
hidden folder of the store and renamed into place when complete, so a build that dies leaves
the previous demo runs untouched.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from ser_lab import fileio
from ser_lab.config import TrainConfig
from ser_lab.experiments.launcher import QUICK_START, QUICK_START_ALPHA, QUICK_START_LAMBDA
from ser_lab.learn.trainer import new_run, train_run
from ser_lab.paths import PROJECT_ROOT
from ser_lab.runs import Run, RunStore

DEMO_IDS = ("demo-baseline", "demo-center-loss")
# The demo pair is the quick-start pair of one seed of bench/results/quick_start.json (the
# same preset; only the snapshots are larger, which changes no trained number), so what the
# app shows before anyone trains is what the Home button gives, and the bench says how typical
# that seed is (`typicality`, recorded in the demo runs' config.json and shown by the app).
DEMO_SEED = 9  # rank 5 of 10 by tightening in bench/results/quick_start.json: a typical seed
DEMO_CONFIG = TrainConfig(
    **{**QUICK_START, "seed": DEMO_SEED, "snapshot_size": 300, "device": "cpu"}, demo=True
)
QUICK_START_BENCH = PROJECT_ROOT / "bench" / "results" / "quick_start.json"
# What a demo run folder keeps (relative paths; fold folders are matched by prefix).
KEEP_FILES = ("config.json", "status.json", "metrics.jsonl", "results.json")
KEEP_FOLD_FILES = ("model.pt", "embeddings.npz")
KEEP_FOLD_DIRS = ("snapshots", "projections")


def demo_configs() -> list[tuple[str, TrainConfig]]:
    """(run id, config) of the two demo runs."""
    return [
        (DEMO_IDS[0], replace(DEMO_CONFIG, lam=0.0)),
        (DEMO_IDS[1], replace(DEMO_CONFIG, lam=QUICK_START_LAMBDA, alpha=QUICK_START_ALPHA)),
    ]


def prune(run_dir: Path) -> None:
    """Remove everything the app does not need from a finished run folder."""
    for path in sorted(run_dir.iterdir()):
        if path.is_dir() and path.name.startswith("fold_"):
            for inner in path.iterdir():
                if inner.name in KEEP_FOLD_FILES or (inner.name in KEEP_FOLD_DIRS and inner.is_dir()):
                    continue
                shutil.rmtree(inner) if inner.is_dir() else inner.unlink()
        elif path.name not in KEEP_FILES:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def build_one(run_id: str, cfg: TrainConfig, store: RunStore, *, progress: bool = True) -> Run:
    """Train one demo run and put it in place as <store>/<run_id> (replacing an old one)."""
    staging = store.root / f".demo-build-{run_id}-{secrets.token_hex(3)}"
    try:
        run = new_run(cfg, RunStore(staging), name=run_id)
        t0 = time.time()

        def report(event: dict) -> None:
            if progress and event.get("epoch_done"):
                m = event["metrics"]
                print(
                    f"  {run_id}: epoch {event['epoch']}/{cfg.epochs} "
                    f"loss {m['total_loss']:.3f} val UA {100 * m['val_UA']:.1f}% "
                    f"({time.time() - t0:.0f} s)",
                    flush=True,
                )

        with run.lock():
            train_run(run, progress=report)
        from ser_lab.analysis.maps import precompute_maps

        for k in run.folds_done():  # the trainer caches them too, unless precompute_maps is off
            precompute_maps(run, k)
        config = dict(run.config)
        config.update(run_id=run_id, name=run_id, typicality=typicality(cfg.seed))
        fileio.atomic_write_json(run.dir / "config.json", config)
        prune(run.dir)
        target = store.root / run_id
        trash = store.root / f".deleting-{run_id}-{secrets.token_hex(3)}"
        if target.exists():
            os.rename(target, trash)
        os.rename(run.dir, target)
        shutil.rmtree(trash, ignore_errors=True)
        return Run(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def typicality(seed: int, bench: Path = QUICK_START_BENCH) -> str | None:
    """How the demo seed's pair compares with the other seeds of the quick-start bench, in
    words (None when the bench has no entry for the current preset and this seed)."""
    import json

    import numpy as np

    try:
        data = json.loads(Path(bench).read_text())
    except (OSError, ValueError):
        return None
    preset = {**QUICK_START, "lam": QUICK_START_LAMBDA, "alpha": QUICK_START_ALPHA}
    # a bench written before the normalisation choice existed used the training part's statistics
    recorded = {"normalise": "corpus", **(data.get("preset") or {})}
    per_seed = data.get("per_seed", []) if recorded == preset else []
    mine = [s for s in per_seed if s.get("seed") == seed]
    if not mine:
        return None

    def change(s: dict) -> float:
        return s["center_loss"]["test_intra_inter"] - s["baseline"]["test_intra_inter"]

    changes = np.array([change(s) for s in per_seed])
    rank = int((changes < change(mine[0])).sum()) + 1  # 1 = the largest tightening
    both = sum(s["tighter"] and s["more_separable"] for s in per_seed)
    b, c = mine[0]["baseline"], mine[0]["center_loss"]
    return (
        f"The demo pair is the quick-start pair of seed {seed}: test intra/inter "
        f"{b['test_intra_inter']:.3f} -> {c['test_intra_inter']:.3f}, Fisher "
        f"{b['test_fisher']:.2f} -> {c['test_fisher']:.2f}. Over the {len(per_seed)} seeds of "
        f"bench/results/quick_start.json, center loss was tighter and more separable in {both}; "
        f"this seed's tightening ranks {rank} of {len(per_seed)} (median change of the ratio "
        f"{np.median(changes):+.3f})."
    )


def build_demo(store: RunStore | None = None, *, progress: bool = True) -> list[Run]:
    """Rebuild both demo runs in `store` (default: the project's checkpoints/)."""
    import torch

    store = store or RunStore()
    torch.set_num_threads(1)
    runs = []
    for run_id, cfg in demo_configs():
        if progress:
            print(
                f"training {run_id} (λ={cfg.lam}, α={cfg.alpha}, {cfg.epochs} epochs)", flush=True
            )
        runs.append(build_one(run_id, cfg, store, progress=progress))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ser_lab.experiments.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--store", default=None, help="run store (default: ./checkpoints or $SER_LAB_CHECKPOINTS)"
    )
    args = parser.parse_args(argv)
    store = RunStore(Path(args.store) if args.store else None)
    t0 = time.time()
    runs = build_demo(store)
    for run in runs:
        results = run.read_results() or {}
        mean = results.get("mean", {})
        size = sum(p.stat().st_size for p in run.dir.rglob("*") if p.is_file())
        print(
            f"{run.run_id}: UA {100 * mean.get('UA', float('nan')):.1f}% "
            f"WA {100 * mean.get('WA', float('nan')):.1f}%  {size / 1e6:.1f} MB  in {run.dir}"
        )
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
