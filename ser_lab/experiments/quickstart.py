"""The quick start: the pair of runs that shows the paper's point in a few minutes.

One definition, used by the home page's button, `python -m ser_lab quickstart` and
`bench/quick_start.py`: a baseline (λ = 0) and a center-loss run (λ = QUICK_START_LAMBDA,
α = QUICK_START_ALPHA) with the same preset, corpus, split and seed — they differ only in λ —
trained side by side, each in its own process with half the cores.

The preset (`launcher.QUICK_START`) was chosen by measurement over seeds 0-9
(bench/results/quick_start.json): the numbers that decide whether a pair "shows the effect"
are the test split's intra/inter ratio (lower = tighter classes) and Fisher criterion (higher
= more separable), both scale-free, from `analysis.compare_runs`.
"""

from __future__ import annotations

import time
from typing import Any

from ser_lab.errors import RunError
from ser_lab.experiments.launcher import quick_start, wait_for
from ser_lab.runs import Run, RunStore

ARMS = ("baseline", "center_loss")


def run_quick_start(store: RunStore | None = None, *, seed: int = 0, timeout: float = 1800.0) -> dict[str, Any]:
    """Launch the quick-start pair for `seed`, wait for both runs, and summarise them.

    Returns `pair_summary` plus `wall_s`, the time from launch until both runs finished.
    A run that fails or is interrupted is a RunError naming it and its log's last line.
    """
    store = store or RunStore()
    t0 = time.monotonic()
    runs = quick_start(store, seed=seed)
    for run in runs:
        state = wait_for(run, timeout=timeout)
        if state != "done":
            error = run.read_status().get("error") or "see its train.log"
            raise RunError(f"quick-start run {run.run_id} ended {state}: {error}")
    summary = pair_summary(*runs)
    summary["wall_s"] = time.monotonic() - t0
    summary["seed"] = seed
    return summary


def pair_summary(baseline: Run, center_loss: Run) -> dict[str, Any]:
    """UA/WA and the test split's intra/inter ratio and Fisher criterion of both runs, and
    whether the center-loss run is tighter (lower ratio) and more separable (higher Fisher)."""
    from ser_lab.analysis.compare import compare_runs

    comparison = compare_runs(baseline, center_loss)
    out: dict[str, Any] = {}
    for arm, side, run in zip(ARMS, ("a", "b"), (baseline, center_loss), strict=True):
        s = comparison[side]
        disc = s["discriminability"]
        out[arm] = {
            "run": run.run_id,
            "UA": s["UA"]["mean"],
            "WA": s["WA"]["mean"],
            "test_intra_inter": disc["test"]["intra_inter_ratio"],
            "test_fisher": disc["test"]["fisher"],
            "test_knn_UA": disc["knn"]["ua"],
            "n_test": sum(int(f.get("n_test", 0)) for f in s["folds"]),
        }
    b, c = out["baseline"], out["center_loss"]
    out["tighter"] = bool(c["test_intra_inter"] < b["test_intra_inter"])
    out["more_separable"] = bool(c["test_fisher"] > b["test_fisher"])
    return out


def format_pair(summary: dict[str, Any]) -> str:
    """One line: the two run ids and how the center-loss run differs from the baseline."""
    b, c = summary["baseline"], summary["center_loss"]
    verdict = (
        "center loss gives tighter, more separable test classes"
        if summary["tighter"] and summary["more_separable"]
        else "this pair does NOT show tighter and more separable test classes with center loss"
    )
    return (
        f"baseline {b['run']} vs center loss {c['run']}: "
        f"UA {100 * b['UA']:.1f} -> {100 * c['UA']:.1f} %, "
        f"test intra/inter {b['test_intra_inter']:.3f} -> {c['test_intra_inter']:.3f}, "
        f"Fisher {b['test_fisher']:.2f} -> {c['test_fisher']:.2f}: {verdict}"
    )
