"""The quick-start pair over seeds: does the Home button's default show the paper's point?

For each seed, runs exactly what the Home button and `python -m ser_lab quickstart --seed N`
run (`ser_lab.experiments.quickstart.run_quick_start`: both runs side by side, one process per run with
half the cores each) and records the pair's wall time, UA/WA and the test split's intra/inter
ratio, Fisher criterion and 5-NN UA of both runs. The summary counts the seeds where center
loss gives the lower intra/inter ratio and the higher Fisher criterion.

    python bench/quick_start.py                        # seeds 0-9 -> bench/results/quick_start.json
    python bench/quick_start.py --seeds 10 11 --out /tmp/qs.json

Resumable: seeds already in the output file (for the same preset) are kept, not re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import code_state  # noqa: E402

from ser_lab.experiments.launcher import QUICK_START, QUICK_START_ALPHA, QUICK_START_LAMBDA  # noqa: E402
from ser_lab.experiments.quickstart import run_quick_start  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402
from ser_lab.runs import RunStore  # noqa: E402


def summarise(per_seed: list[dict]) -> dict:
    walls = [s["wall_s"] for s in per_seed]
    both = [s["tighter"] and s["more_separable"] for s in per_seed]

    def arm(name: str, key: str) -> dict:
        vals = np.array([s[name][key] for s in per_seed], dtype=float)
        return {"median": float(np.median(vals)), "min": float(vals.min()), "max": float(vals.max())}

    return {
        "n_seeds": len(per_seed),
        "tighter": int(sum(s["tighter"] for s in per_seed)),
        "more_separable": int(sum(s["more_separable"] for s in per_seed)),
        "tighter_and_more_separable": int(sum(both)),
        "wall_s_median": float(np.median(walls)),
        "wall_s_max": float(np.max(walls)),
        **{f"{name}_{key}": arm(name, key) for name in ("baseline", "center_loss")
           for key in ("UA", "test_intra_inter", "test_fisher", "test_knn_UA")},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "quick_start.json"))
    ap.add_argument("--store", default=None, help="run store for the pairs (default: a temporary folder)")
    args = ap.parse_args(argv)

    preset = {**QUICK_START, "lam": QUICK_START_LAMBDA, "alpha": QUICK_START_ALPHA}
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    kept = {s["seed"]: s for s in previous.get("per_seed", []) if previous.get("preset") == preset}
    store = RunStore(args.store or tempfile.mkdtemp(prefix="ser-lab-quick-start-"))
    per_seed = [kept[s] for s in args.seeds if s in kept]
    for seed in args.seeds:
        if seed in kept:
            continue
        load = os.getloadavg()
        result = run_quick_start(store, seed=seed)
        result["loadavg_before"] = [round(v, 2) for v in load]
        result["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
        per_seed.append(result)
        b, c = result["baseline"], result["center_loss"]
        print(f"seed {seed}: {result['wall_s']:.0f} s, ratio {b['test_intra_inter']:.3f} -> "
              f"{c['test_intra_inter']:.3f}, Fisher {b['test_fisher']:.2f} -> {c['test_fisher']:.2f}, "
              f"UA {100 * b['UA']:.1f} -> {100 * c['UA']:.1f}", file=sys.stderr, flush=True)
        write(out, preset, per_seed)  # after every seed: an interrupted bench keeps its seeds
    print(json.dumps(write(out, preset, per_seed)))
    return 0


def write(out: Path, preset: dict, per_seed: list[dict]) -> dict:
    per_seed.sort(key=lambda s: s["seed"])
    summary = summarise(per_seed)
    atomic_write_json(out, {"preset": preset, "per_seed": per_seed, "summary": summary,
                            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                        "python": platform.python_version()},
                            "commit": code_state()["commit"], "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    return summary


if __name__ == "__main__":
    sys.exit(main())
