"""Sweeps as the Sensitivity and Train pages show them: sweep points, frames, pooled
settings, progress and the sensitivity table of a sweep.

Nothing here imports Streamlit; pages stay thin (read inputs, call ser_lab, draw).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_lab.app.run_tables import is_active, is_finished
from ser_lab.config import ObjectiveConfig
from ser_lab.errors import ConfigError, RunError, SerLabError
from ser_lab.runs import Run, RunStore, RunSummary

# ----------------------------------------------------------------------------- sweeps


def sweep_points(store: RunStore, sweep_id: str) -> list[dict]:
    """The points of a sweep's manifest (all of them, started or not); [] without one."""
    from ser_lab.experiments.sweep import read_manifest

    try:
        manifest = read_manifest(store, sweep_id)
    except SerLabError:
        return []
    return list((manifest or {}).get("points") or [])


def sweep_options(store: RunStore, rows: Iterable[RunSummary]) -> list[str]:
    """Every sweep of the store (with a manifest, or seen on a run), newest first."""
    from ser_lab.experiments.sweep import list_sweeps, read_manifest

    created: dict[str, str] = {}
    for r in rows:
        if r.sweep_id and (r.created or "") > created.get(r.sweep_id, ""):
            created[r.sweep_id] = r.created or ""
    for sweep_id in list_sweeps(store):
        try:
            manifest = read_manifest(store, sweep_id) or {}
        except SerLabError:
            manifest = {}
        created[sweep_id] = max(created.get(sweep_id, ""), str(manifest.get("created") or ""))
    return sorted(created, key=lambda s: (created[s], s), reverse=True)


def sweep_frame(store: RunStore, rows: Iterable[RunSummary], sweep_id: str | None) -> pd.DataFrame:
    """One row per (run, fold) of a sweep (or of every finished run when sweep_id is None):
    run, state, λ, α, seed, fold, UA, WA (fractions; NaN while a run has no result)."""
    records = []
    for r in rows:
        if sweep_id is not None and r.sweep_id != sweep_id:
            continue
        if sweep_id is None and not is_finished(r):
            continue
        run = Run(Path(store.root) / r.run_id)
        try:
            train = run.config.get("train") or {}
        except RunError:
            train = {}
        base = {
            "run": r.run_id,
            "state": r.state,
            "lam": r.lam,
            "alpha": r.alpha,
            "seed": r.seed,
            "features": r.features,
            "corpus": _corpus_name(train) or r.corpus,
            "epochs": r.epochs,
            "patience": train.get("patience"),
            "lr": train.get("lr"),
            "batch_size": train.get("batch_size"),
        }
        results = None
        if r.state == "done":
            try:
                results = run.read_results()
            except RunError:
                results = None
        folds = (results or {}).get("folds") or []
        if not folds:
            records.append({**base, "fold": None, "UA": np.nan, "WA": np.nan})
        for f in folds:
            records.append(
                {
                    **base,
                    "fold": f.get("fold"),
                    "UA": f.get("UA", np.nan),
                    "WA": f.get("WA", np.nan),
                }
            )
    columns = ["run", "state", "lam", "alpha", "seed", "features", "corpus", "epochs", "patience", "lr"]
    columns += ["batch_size", "fold", "UA", "WA"]
    return pd.DataFrame(records, columns=columns)


def with_objective(store: RunStore, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (one row per run and fold, as sweep_frame) plus each run's "objective" and the
    value of that objective's main hyper-parameter ("main_value", objectives.MAIN_PARAMETER),
    read from its config (runs from before objectives existed are the paper's "center")."""
    from ser_lab.learn.objectives import MAIN_PARAMETER

    names, values = {}, {}
    for run_id in frame["run"].unique():
        try:
            train = Run(Path(store.root) / run_id).config.get("train", {})
        except RunError:
            train = {}
        names[run_id] = name = train.get("objective", "center")
        param = MAIN_PARAMETER.get(name, "lam")
        values[run_id] = train.get(param, getattr(ObjectiveConfig(), param))
    return frame.assign(objective=frame["run"].map(names), main_value=frame["run"].map(values))


def objective_sensitivity(frame: pd.DataFrame, objective: str) -> tuple[str, pd.DataFrame]:
    """(parameter, curve): UA / WA against the main hyper-parameter of `objective`, over the
    rows of a `with_objective` frame trained with it; the curve as `sensitivity` computes it."""
    from ser_lab.learn.objectives import MAIN_PARAMETER

    param = MAIN_PARAMETER[objective]
    rows = frame[frame["objective"] == objective]
    # sensitivity's own aggregation, on the main value put in its λ column (no α filter).
    curve = sensitivity(rows.assign(lam=rows["main_value"]), "lam").rename(columns={"lam": param})
    return param, curve


def _corpus_name(train: dict) -> str | None:
    """The corpus of a run's train config, with the synthetic size ("synthetic/tiny"): runs on
    two sizes of the built-in corpus are on different data."""
    name = train.get("corpus")
    if name == "synthetic":
        size = (train.get("corpus_options") or {}).get("size", "default")
        return f"synthetic/{size}"
    return name


POOLED_SETTINGS = {
    "epochs": "epochs",
    "patience": "patience",
    "lr": "learning rate",
    "batch_size": "batch size",
    "corpus": "corpus",
    "features": "features",
}


def pooled_differences(frame: pd.DataFrame) -> list[str]:
    """The settings (other than λ, α and the seed) in which the finished runs of a sweep
    frame differ, e.g. ["epochs (3, 8)", "learning rate (0.0003, 0.001)"]: a curve that pools
    them mixes unlike runs."""
    done = frame.dropna(subset=["UA"]).drop_duplicates("run")
    out = []
    for column, name in POOLED_SETTINGS.items():
        values = {v for v in done[column] if v is not None and v == v}
        if len(values) > 1:
            ordered = sorted(values, key=lambda v: (not isinstance(v, (int, float)), v))
            out.append(f"{name} ({', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in ordered)})")
    return out


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands: state is "running" (its process is alive or one of its runs
    trains), "finished" (every planned point done), or "stopped" (nothing runs, some points
    are not done)."""

    state: str
    planned: int
    done: int
    failed: int
    training: int

    def text(self) -> str:
        of = f" of {self.planned}" if self.planned else ""
        if self.state == "running":
            return f"Running: {self.done}{of} runs done, {self.training} training now."
        if self.state == "finished":
            bad = f", {self.failed} failed" if self.failed else ""
            return f"Finished: all {self.done}{of} runs done{bad}."
        return (
            f"Stopped: {self.done}{of} runs done, {self.failed} failed or interrupted; "
            "nothing is training."
        )


def sweep_progress(
    store: RunStore, rows: Iterable[RunSummary], sweep_id: str, process_alive: bool
) -> SweepProgress:
    """The state of one sweep from its manifest, its run folders and whether its launcher
    process is alive."""
    runs = [r for r in rows if r.sweep_id == sweep_id]
    planned = len(sweep_points(store, sweep_id))
    done = sum(r.state == "done" for r in runs)
    failed = sum(r.state in ("failed", "interrupted") for r in runs)
    training = sum(is_active(r) for r in runs)
    if process_alive or training:
        state = "running"
    elif done >= planned if planned else bool(runs) and done == len(runs):
        # Without a manifest (runs made one by one, e.g. by bench/sensitivity.py) the runs
        # seen are the plan: one interrupted run means not finished.
        state = "finished"
    else:
        state = "stopped"
    return SweepProgress(state, planned, done, failed, training)


def sensitivity(frame: pd.DataFrame, axis: str, fixed: float | None = None) -> pd.DataFrame:
    """Mean, sample std (over folds and seeds; NaN for a single unit) and count of UA and WA
    per value of `axis` ("lam" or "alpha"), in percent: `ser_lab.analysis.stats.sensitivity_curve`
    (the sweep report's curves), with its rule for the baseline.

    For the λ curve, `fixed` is the α the center-loss runs must have (the λ = 0 point is the
    baseline at that α, else at its smallest α). For the α curve, `fixed` is the λ (> 0).
    None: every finished run, pooled.
    """
    from ser_lab.analysis.stats import sensitivity_curve

    if axis not in ("lam", "alpha"):
        raise ConfigError(f"axis must be 'lam' or 'alpha', got {axis!r}")
    columns = [axis, "UA_mean", "UA_std", "WA_mean", "WA_std", "n"]
    records = frame.dropna(subset=["UA"]).to_dict("records")
    held = {"lam": "alpha", "alpha": "lam"}[axis]
    points = sensitivity_curve(records, axis, {} if fixed is None else {held: fixed})
    out = []
    for p in points:
        row = {axis: p.value, "n": p.metrics["UA"].n}
        for m in ("UA", "WA"):
            ms = p.metrics[m]
            row[f"{m}_mean"] = 100 * ms.mean
            row[f"{m}_std"] = np.nan if ms.std is None else 100 * ms.std
        out.append(row)
    return pd.DataFrame(out, columns=columns)


def parse_values(text: str, what: str, *, integer: bool = False) -> list[float]:
    """ "0, 0.1, 0.3" -> [0.0, 0.1, 0.3] (ConfigError naming `what` on a bad entry)."""
    values = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(int(part) if integer else float(part))
        except ValueError:
            kind = "whole numbers" if integer else "numbers"
            raise ConfigError(
                f"{what}: expected {kind} separated by commas, got {part!r}"
            ) from None
    if not values:
        raise ConfigError(f"{what}: give at least one value")
    return values


def demo_typicality(store: RunStore, comparison: dict[str, Any]) -> list[str]:
    """The recorded typicality notes of the demo runs in a comparison (ser_lab.experiments.demo.typicality:
    which quick-start seed the demo pair is and how it ranks among the bench's seeds)."""
    notes: list[str] = []
    for side in ("a", "b"):
        for run_id in comparison[side].get("run_ids", []):
            try:
                text = store.get(run_id).config.get("typicality")
            except (OSError, SerLabError):
                continue
            if isinstance(text, str) and text not in notes:
                notes.append(text)
    return notes
