"""A sweep's report: one self-contained folder with the paper's table, plots and statistics.

    python -m ser_lab report SWEEP_ID [--out DIR]      (default DIR: <store>/sweeps/<id>-report)

writes

    report.md, report.html   the same content; the HTML has its CSS inline and refers to the
                             images by relative name, so the folder can be moved or zipped
    report.json              every number below, for scripts (bench/sensitivity.py)
    sensitivity_lambda_*.png UA / WA against λ at a fixed α (error bars: sample std over units;
                             the λ = 0 point by the rule of ser_lab.analysis.stats.sensitivity_curve)
    sensitivity_alpha_*.png  UA / WA against α at a fixed λ
    confusion_*.png          pooled confusion matrix of each setting (all folds and seeds)

What is a setting, a unit. A setting is a sweep point without its seed: input features, λ, α
and any other swept field. Its units are its (seed, fold) test folds; the table shows the mean ±
sample std of UA and WA over the units, in percent (see ser_lab.analysis.stats). Each setting with
λ > 0 is compared with its baseline — the λ = 0 setting with the same features and other
fields (the one with the same α if there is one; α has no effect at λ = 0) — by the paired
difference over their shared units, with a 95 % paired t-interval and a seeded bootstrap
percentile interval. Discriminability (ser_lab.analysis.discriminability via ser_lab.analysis.compare) is the
mean over units of the test split's numbers: intra / inter center distances, their ratio,
Fisher criterion, silhouette and the k-NN UA of z.

Only finished runs enter the numbers; the others are listed with their state. A setting with
several finished runs for one seed (e.g. a run repeated by hand) uses the earliest.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser_lab import fileio
from ser_lab.analysis.stats import METRICS, mean_std, paired_difference, sensitivity_curve
from ser_lab.errors import RunError
from ser_lab.experiments.sweep import (
    KEY_FIELDS,
    SweepSpec,
    format_value,
    read_manifest,
    sweep_runs,
    sweeps_dir,
    validate_sweep_id,
)

FEATURE_NAMES = {"mel": "Mel spectrogram", "stft": "STFT spectrogram", "egemaps": "eGeMAPS functionals (88)"}
DISC_KEYS = ("intra", "inter", "intra_inter_ratio", "fisher", "silhouette")
CONFIDENCE = 0.95
N_BOOT = 10_000
BOOT_SEED = 0


@dataclass
class Setting:
    """One sweep point without its seed, with the finished runs and units that belong to it."""

    params: dict  # features, lam, alpha, and any other swept field
    run_ids: list = field(default_factory=list)
    seeds: list = field(default_factory=list)
    units: dict = field(default_factory=dict)  # (seed, fold) -> {"UA", "WA", "run_id"}
    confusion: np.ndarray | None = None  # pooled counts
    labels: list | None = None

    @property
    def key(self) -> tuple:
        return tuple(self.params.values())

    def slug(self) -> str:
        return re.sub(
            r"[^A-Za-z0-9.+=-]+", "_", "-".join(_slug_part(k, v) for k, v in self.params.items())
        )


def _slug_part(name: str, value: Any) -> str:
    return format_value(value) if name == "features" else f"{name}{format_value(value)}"


# ----------------------------------------------------------------------------- collecting


def _other_axes(manifest: dict | None) -> list[str]:
    if not manifest:
        return []
    return [a for a in SweepSpec.from_dict(manifest["spec"]).axes() if a not in KEY_FIELDS]


def collect(store, sweep_id: str) -> dict[str, Any]:
    """The sweep's finished runs grouped into settings, and the runs not (yet) finished."""
    from ser_lab.runs import Run

    validate_sweep_id(sweep_id)
    manifest = read_manifest(store, sweep_id)
    rows = sweep_runs(store, sweep_id)
    if not rows:
        hint = " (its manifest lists points, but no run folder exists yet)" if manifest else ""
        raise RunError(f"no runs of sweep {sweep_id!r} in {store.root}{hint}")
    others = _other_axes(manifest)
    settings: dict[tuple, Setting] = {}
    unfinished = []
    duplicates = []
    for row in sorted(rows, key=lambda r: r.created or ""):
        run = Run(Path(store.root) / row.run_id)
        results = run.read_results() if row.state == "done" else None
        if results is None:
            unfinished.append(
                {
                    "run_id": row.run_id,
                    "name": row.name,
                    "state": row.state,
                    "error": row.error or row.problem,
                }
            )
            continue
        if not add_result(settings, run.config["train"], row.run_id, results, others):
            duplicates.append(row.run_id)
    return {
        "sweep_id": sweep_id,
        "manifest": manifest,
        "settings": sorted_settings(settings.values()),
        "unfinished": unfinished,
        "duplicates": duplicates,
        "other_axes": others,
    }


def add_result(settings: dict[tuple, Setting], train: dict, run_id: str, results: dict,
               others: list[str]) -> bool:
    """File one finished run (its config's "train" part and results.json) under its setting in
    `settings`; False, and nothing filed, when that setting has the run's seed already."""
    params = {
        "features": train["features"],
        "lam": float(train["lam"]),
        "alpha": float(train["alpha"]),
    }
    params.update({a: train.get(a) for a in others})
    key = tuple(json.dumps(v, sort_keys=True) for v in params.values())
    setting = settings.setdefault(key, Setting(params))
    seed = int(train["seed"])
    if seed in setting.seeds:
        return False
    _add_run(setting, run_id, seed, results)
    return True


def sorted_settings(settings) -> list[Setting]:
    """Settings in the order of their parameters (numbers before anything else)."""
    def order(s: Setting) -> tuple:
        return tuple(
            (0, v, "") if isinstance(v, (int, float)) else (1, 0, json.dumps(v))
            for v in s.params.values()
        )

    return sorted(settings, key=order)


def _add_run(setting: Setting, run_id: str, seed: int, results: dict) -> None:
    labels = list(results["labels"])
    if setting.labels is None:
        setting.labels = labels
        setting.confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    elif setting.labels != labels:
        raise RunError(
            f"run {run_id} has classes {labels}, other runs of its setting {setting.labels}"
        )
    setting.run_ids.append(run_id)
    setting.seeds.append(seed)
    for fold in results["folds"]:
        setting.units[(seed, int(fold["fold"]))] = {
            "UA": float(fold["UA"]),
            "WA": float(fold["WA"]),
            "run_id": run_id,
        }
        setting.confusion += np.asarray(fold["confusion"], dtype=np.int64)


# ----------------------------------------------------------------------------- numbers


def table_rows(settings: list[Setting]) -> list[dict]:
    """The paper-style table: one row per setting, UA / WA mean ± std in percent."""
    rows = []
    for s in settings:
        row = {**s.params, "input": FEATURE_NAMES.get(s.params["features"], s.params["features"])}
        for m in METRICS:
            ms = mean_std(100 * u[m] for u in s.units.values())
            row[f"{m}_mean"], row[f"{m}_std"] = ms.mean, ms.std
        row["n_units"], row["n_seeds"], row["runs"] = len(s.units), len(s.seeds), list(s.run_ids)
        rows.append(row)
    return rows


def baseline_for(setting: Setting, settings: list[Setting]) -> Setting | None:
    """The λ = 0 setting with the same features and other fields (same α preferred)."""
    if setting.params["lam"] == 0:
        return None
    rest = {k: v for k, v in setting.params.items() if k not in ("lam", "alpha")}
    candidates = [
        s
        for s in settings
        if s.params["lam"] == 0
        and {k: v for k, v in s.params.items() if k not in ("lam", "alpha")} == rest
    ]
    same_alpha = [s for s in candidates if s.params["alpha"] == setting.params["alpha"]]
    return (same_alpha or candidates or [None])[0]


def comparisons(settings: list[Setting]) -> list[dict]:
    """Every λ > 0 setting against its baseline: paired UA / WA differences in points."""
    out = []
    for s in settings:
        base = baseline_for(s, settings)
        if base is None:
            continue
        entry: dict[str, Any] = {"setting": dict(s.params), "baseline": dict(base.params)}
        try:
            for m in METRICS:
                a = {u: 100 * v[m] for u, v in base.units.items()}
                b = {u: 100 * v[m] for u, v in s.units.items()}
                entry[m] = paired_difference(
                    a, b, confidence=CONFIDENCE, n_boot=N_BOOT, seed=BOOT_SEED
                ).to_dict()
        except Exception as e:  # noqa: BLE001 - e.g. no shared unit: say so in the report
            entry["problem"] = str(e)
        out.append(entry)
    return out


def curves(settings: list[Setting], others: list[str]) -> list[dict]:
    """UA / WA vs λ at each α of the center-loss settings, and vs α at each λ > 0, wherever
    the curve has at least two points. The λ = 0 baseline joins the λ curves by the one rule
    of `ser_lab.analysis.stats.sensitivity_curve` (its own α, else its smallest)."""
    records = [
        {**s.params, "seed": seed, "fold": fold, **{m: 100 * u[m] for m in METRICS}}
        for s in settings
        for (seed, fold), u in s.units.items()
    ]
    out = []
    groups = sorted(
        {
            json.dumps({k: s.params[k] for k in ("features", *others)}, sort_keys=True)
            for s in settings
        }
    )
    for group in groups:
        fixed_rest = json.loads(group)
        members = [s for s in settings if all(s.params[k] == v for k, v in fixed_rest.items())]
        center = [s for s in members if s.params["lam"] != 0]
        for vary, hold in (("lam", "alpha"), ("alpha", "lam")):
            for held in sorted({s.params[hold] for s in center}):
                points = sensitivity_curve(records, vary, {**fixed_rest, hold: held})
                if len(points) < 2:
                    continue
                out.append(
                    {
                        "vary": vary,
                        "fixed": {**fixed_rest, hold: held},
                        "points": [p.to_dict() for p in points],
                    }
                )
    return out


def discriminability_summary(store, settings: list[Setting]) -> tuple[list[dict], list[str]]:
    """Per setting: mean over units of the test split's discriminability and k-NN UA, read from
    each unit's embeddings in the store."""
    from ser_lab.analysis.compare import run_discriminability
    from ser_lab.runs import Run

    return summarise_discriminability(
        settings, lambda run_id, fold: run_discriminability(Run(Path(store.root) / run_id), fold))


def summarise_discriminability(
    settings: list[Setting], fold_stats: Callable[[str, int], dict]
) -> tuple[list[dict], list[str]]:
    """Per setting: mean over units of the test split's discriminability and k-NN UA, where
    `fold_stats(run_id, fold)` gives a fold's {"test": ..., "knn": ...} as
    `ser_lab.analysis.compare.run_discriminability` does; a unit it fails on is a problem."""
    out, problems = [], []
    for s in settings:
        values: dict[str, list[float]] = {k: [] for k in (*DISC_KEYS, "knn_UA")}
        for (_seed, fold), unit in sorted(s.units.items()):
            try:
                d = fold_stats(unit["run_id"], fold)
            except Exception as e:  # noqa: BLE001 - a missing embeddings file must not sink the report
                problems.append(f"{unit['run_id']} fold {fold}: {e}")
                continue
            test = d.get("test") or {}
            for k in DISC_KEYS:
                if isinstance(test.get(k), (int, float)) and math.isfinite(test[k]):
                    values[k].append(float(test[k]))
            knn = d.get("knn") or {}
            if isinstance(knn.get("ua"), (int, float)):
                values["knn_UA"].append(100 * float(knn["ua"]))
        out.append({**s.params, **{k: mean_std(v).to_dict() for k, v in values.items()}})
    return out, problems


# ----------------------------------------------------------------------------- classical reference

# What must agree for an eGeMAPS + SVM run to share the sweep's folds (ser_lab.learn.classical).
REFERENCE_KEYS = ("corpus", "classes", "corpus_options", "protocol", "n_folds", "val_fraction")


def _same_root(a: Any, b: Any) -> bool:
    if not a or not b:
        return not a and not b
    return Path(a).resolve() == Path(b).resolve()


def classical_reference(store, settings: list[Setting], *, with_discriminability: bool = True,
                        sweep_config: dict | None = None) -> dict | None:
    """The eGeMAPS + linear SVM baseline on the sweep's own test folds, if the store has it.

    Finished `egemaps-svm` runs (earliest per seed) on the same corpus, classes, protocol and
    folds as the sweep's runs, for the sweep's seeds, restricted to the (seed, fold) units the
    sweep has: its UA / WA over those units, the discriminability of its standardised
    functionals (unless with_discriminability is False: it reads every unit's embeddings), and
    every setting's paired difference to it. None when there is no such run.

    `sweep_config` is the train config of one of the sweep's runs; without it, that of its first
    run in `store` (a sweep known from run cards need not have its runs in the store).
    """
    from ser_lab.learn.classical import MODEL
    from ser_lab.runs import Run

    if not settings or not settings[0].run_ids:
        return None
    first = sweep_config if sweep_config is not None else (
        Run(Path(store.root) / settings[0].run_ids[0]).config.get("train") or {})
    units = {u for s in settings for u in s.units}
    seeds = {seed for seed, _ in units}
    ref = Setting({"features": "egemaps"})
    for row in sorted(store.list(), key=lambda r: r.created or ""):
        if row.state != "done":
            continue
        run = Run(Path(store.root) / row.run_id)
        try:
            config = run.config
            results = run.read_results()
        except RunError:
            continue
        train = config.get("train") or {}
        if config.get("model") != MODEL or not results or not _same_root(train.get("root"), first.get("root")):
            continue
        if any(train.get(k) != first.get(k) for k in REFERENCE_KEYS):
            continue
        seed = train.get("seed")
        if seed not in seeds or seed in ref.seeds:
            continue
        shared = [f for f in results["folds"] if (seed, int(f["fold"])) in units]
        if shared:
            _add_run(ref, row.run_id, int(seed), {**results, "folds": shared})
    if not ref.units:
        return None
    disc, problems = discriminability_summary(store, [ref]) if with_discriminability else ([None], [])
    versus = []
    for s in settings:
        entry: dict[str, Any] = {"setting": dict(s.params)}
        try:
            for m in METRICS:
                a = {u: 100 * v[m] for u, v in ref.units.items()}
                b = {u: 100 * v[m] for u, v in s.units.items()}
                entry[m] = paired_difference(a, b, confidence=CONFIDENCE, n_boot=N_BOOT, seed=BOOT_SEED).to_dict()
        except Exception as e:  # noqa: BLE001 - e.g. no shared unit: say so in the report
            entry["problem"] = str(e)
        versus.append(entry)
    return {
        "run_ids": ref.run_ids,
        "seeds": ref.seeds,
        "table": table_rows([ref])[0],
        "discriminability": disc[0],
        "comparisons": versus,
        "problems": problems,
    }


REFERENCE_TITLE = "The hand-crafted reference: eGeMAPS + linear SVM on the same test folds"
REFERENCE_HEADER = ["input", "UA %", "WA %", "units", "seeds", "Fisher", "silhouette", "k-NN UA %"]


def _reference_rows(ref: dict) -> tuple[list[list[str]], list[list[str]]]:
    """The reference's table row and every setting's paired difference to it."""
    t, d = ref["table"], ref["discriminability"]
    row = [
        t["input"], pm(t["UA_mean"], t["UA_std"]), pm(t["WA_mean"], t["WA_std"]),
        str(t["n_units"]), str(t["n_seeds"]), _num(d["fisher"]["mean"], 3),
        _num(d["silhouette"]["mean"], 3), _num(d["knn_UA"]["mean"]),
    ]
    versus = []
    for c in ref["comparisons"]:
        name = f"{_fixed_text(c['setting'])} vs eGeMAPS + SVM"
        if "problem" in c:
            versus.append([name, c["problem"], "", "", "", ""])
            continue
        cells = [name]
        for m in METRICS:
            x = c[m]
            cells += [
                _num(x["mean"], signed=True),
                f"[{_num(x['t_low'], signed=True)}, {_num(x['t_high'], signed=True)}] / "
                f"[{_num(x['boot_low'], signed=True)}, {_num(x['boot_high'], signed=True)}]",
            ]
        versus.append(cells + [str(c["UA"]["n"])])
    return [row], versus


# ----------------------------------------------------------------------------- plots


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plot_curve(curve: dict) -> bytes:
    """UA and WA (percent) against the varied setting, error bars = std over units."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    x = np.array([p["value"] for p in curve["points"]], dtype=float)
    for m, marker in zip(METRICS, ("o", "s")):
        y = np.array([p[m]["mean"] for p in curve["points"]])
        # no error bar where a point has a single unit (no std)
        err = np.array([p[m]["std"] or 0.0 for p in curve["points"]], dtype=float)
        ax.errorbar(x, y, yerr=err, marker=marker, capsize=3, label=m)
    symbol = "λ" if curve["vary"] == "lam" else "α"
    if curve["vary"] == "lam" and len(x) > 2 and x.max() > 0:
        positive = x[x > 0]
        ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 0.01)
    ax.set_xlabel(symbol)
    ax.set_ylabel("%")
    ax.set_title(f"{_fixed_text(curve['fixed'])}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def plot_confusion(setting: Setting) -> bytes:
    """Row-normalised pooled confusion matrix, cells annotated with % and counts."""
    from matplotlib.figure import Figure

    cm = setting.confusion
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(setting.labels)
    fig = Figure(figsize=(0.9 * n + 1.5, 0.8 * n + 1.2))
    ax = fig.add_subplot()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{100 * norm[i, j]:.0f}%\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(n), setting.labels, rotation=30)
    ax.set_yticks(range(n), setting.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_fixed_text(setting.params), fontsize=9)
    return _png(fig)


def _fixed_text(params: dict) -> str:
    names = {"lam": "λ", "alpha": "α", "features": "input"}
    return ", ".join(f"{names.get(k, k)} = {format_value(v)}" for k, v in params.items())


# ----------------------------------------------------------------------------- writing


def build_report(store, sweep_id: str, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the report folder of a sweep; returns its numbers (also saved as report.json)."""
    data = collect(store, sweep_id)
    out = Path(out_dir) if out_dir else sweeps_dir(store) / f"{sweep_id}-report"
    return write_report(out, data, discriminability_summary(store, data["settings"]),
                        classical_reference(store, data["settings"]))


def write_report(out: str | Path, data: dict[str, Any], discriminability: tuple[list[dict], list[str]],
                 reference: dict | None) -> dict[str, Any]:
    """The report folder (report.json / .md / .html and the plots) of collected settings
    (`collect`'s dict), their discriminability (`summarise_discriminability`) and the classical
    reference row (or None); returns the report's numbers."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweep_id = data["sweep_id"]
    settings: list[Setting] = data["settings"]
    report: dict[str, Any] = {
        "sweep_id": sweep_id,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "out_dir": str(out),
        "base": (data["manifest"] or {}).get("spec", {}).get("base"),
        "other_axes": data["other_axes"],
        "table": table_rows(settings),
        "comparisons": comparisons(settings),
        "curves": curves(settings, data["other_axes"]),
        "unfinished": data["unfinished"],
        "duplicates": data["duplicates"],
        "confusion": [
            {**s.params, "labels": s.labels, "counts": s.confusion.tolist()} for s in settings
        ],
    }
    report["discriminability"], report["discriminability_problems"] = discriminability
    report["reference"] = reference
    for curve in report["curves"]:
        fixed = "_".join(_slug_part(k, v) for k, v in curve["fixed"].items())
        curve["image"] = _safe_name(
            f"sensitivity_{'lambda' if curve['vary'] == 'lam' else 'alpha'}_{fixed}.png"
        )
        fileio.atomic_write_bytes(out / curve["image"], plot_curve(curve))
    for entry, s in zip(report["confusion"], settings):
        entry["image"] = _safe_name(f"confusion_{s.slug()}.png")
        fileio.atomic_write_bytes(out / entry["image"], plot_confusion(s))
    fileio.atomic_write_json(out / "report.json", json_safe(report))
    fileio.atomic_write_text(out / "report.md", render_markdown(report))
    fileio.atomic_write_text(out / "report.html", render_html(report))
    return report


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", name)


def json_safe(obj: Any) -> Any:
    """NaN becomes null (JSON has no NaN); tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


def _num(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def pm(mean: float, std: float, digits: int = 2) -> str:
    """ "61.23 ± 2.10" (the std reads "n/a" for a single unit)."""
    return f"{_num(mean, digits)} ± {_num(std, digits)}"


def _table_header(others: list[str]) -> list[str]:
    return ["input", "λ", "α", *others, "UA %", "WA %", "units", "seeds"]


def _table_cells(row: dict, others: list[str]) -> list[str]:
    return [
        row["input"],
        format_value(row["lam"]),
        format_value(row["alpha"]),
        *(format_value(row[o]) for o in others),
        pm(row["UA_mean"], row["UA_std"]),
        pm(row["WA_mean"], row["WA_std"]),
        str(row["n_units"]),
        str(row["n_seeds"]),
    ]


def format_table(table: list[dict], others: list[str] = ()) -> str:
    """The results table as aligned text (for the terminal); others: extra swept fields."""
    others = list(others)
    head = _table_header(others)
    body = [_table_cells(r, others) for r in table]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return "\n".join(lines)


def _comparison_cells(c: dict) -> list[str]:
    name = f"{_fixed_text(c['setting'])} vs λ = 0 (α = {format_value(c['baseline']['alpha'])})"
    if "problem" in c:
        return [name, c["problem"], "", "", "", ""]
    cells = [name]
    for m in METRICS:
        d = c[m]
        cells.append(f"{_num(d['mean'], signed=True)}")
        cells.append(
            f"[{_num(d['t_low'], signed=True)}, {_num(d['t_high'], signed=True)}] / "
            f"[{_num(d['boot_low'], signed=True)}, {_num(d['boot_high'], signed=True)}]"
        )
    cells.append(str(c["UA"]["n"]))
    return cells


COMPARISON_HEADER = [
    "setting",
    "Δ UA (pts)",
    "95 % CI: t / bootstrap",
    "Δ WA (pts)",
    "95 % CI: t / bootstrap",
    "pairs",
]
DISC_HEADER = [
    "input",
    "λ",
    "α",
    "intra",
    "inter",
    "intra/inter",
    "Fisher",
    "silhouette",
    "k-NN UA %",
]


def _disc_cells(d: dict, others: list[str]) -> list[str]:
    cells = [
        FEATURE_NAMES.get(d["features"], d["features"]),
        format_value(d["lam"]),
        format_value(d["alpha"]),
    ]
    cells += [format_value(d[o]) for o in others]
    cells += [_num(d[k]["mean"], 3) for k in DISC_KEYS]
    cells.append(_num(d["knn_UA"]["mean"]))
    return cells


INTRO = (
    "Mean ± sample std over (seed, fold) units, test folds only. Model selection: best "
    "validation UA on a speaker-disjoint validation part of each training fold. Differences are "
    "paired over the units both settings share (B − A, in percentage points), with a paired "
    f"t-interval and a percentile bootstrap ({N_BOOT} resamples, seed {BOOT_SEED}); both treat "
    "units as independent, which folds of one seed are not quite, so read them as optimistic."
)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    others = report["other_axes"]
    parts = [f"# Sweep {report['sweep_id']}", "", INTRO, ""]
    if report.get("base"):
        parts += [
            "Shared settings: "
            + ", ".join(f"{k} = {format_value(v)}" for k, v in report["base"].items()),
            "",
        ]
    parts += [
        "## Results",
        "",
        _md_table(_table_header(others), [_table_cells(r, others) for r in report["table"]]),
        "",
    ]
    if report["comparisons"]:
        parts += [
            "## Center loss against the softmax-only baseline",
            "",
            _md_table(COMPARISON_HEADER, [_comparison_cells(c) for c in report["comparisons"]]),
            "",
        ]
    if report["curves"]:
        parts += ["## Sensitivity", ""]
        parts += [f"![{c['image']}]({c['image']})" for c in report["curves"]] + [""]
    parts += [
        "## Discriminability of z (test split, mean over units)",
        "",
        _md_table(
            DISC_HEADER[:3] + others + DISC_HEADER[3:],
            [_disc_cells(d, others) for d in report["discriminability"]],
        ),
        "",
    ]
    if report.get("reference"):
        rows, versus = _reference_rows(report["reference"])
        parts += [f"## {REFERENCE_TITLE}", "", _md_table(REFERENCE_HEADER, rows), "",
                  _md_table(COMPARISON_HEADER, versus), ""]
    parts += ["## Confusion matrices (pooled over folds and seeds)", ""]
    parts += [f"![{c['image']}]({c['image']})" for c in report["confusion"]] + [""]
    parts += _notes(report, lambda s: s)
    return "\n".join(parts).rstrip() + "\n"


def _notes(report: dict, esc) -> list[str]:
    notes = []
    for u in report["unfinished"]:
        notes.append(
            f"- not finished: {esc(u['name'])} ({esc(u['run_id'])}): {esc(u['state'])}"
            + (f" — {esc(str(u['error']))}" if u.get("error") else "")
        )
    notes += [f"- duplicate run left out: {esc(r)}" for r in report["duplicates"]]
    notes += [f"- discriminability skipped: {esc(p)}" for p in report["discriminability_problems"]]
    return (["## Notes", "", *notes, ""]) if notes else []


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 48%; margin: 0.3em; vertical-align: top; }
p.note { color: #555; font-size: 0.9em; }
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict) -> str:
    others = report["other_axes"]
    title = html.escape(f"Sweep {report['sweep_id']}")
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p class='note'>{html.escape(INTRO)}</p>",
    ]
    if report.get("base"):
        shared = ", ".join(f"{k} = {format_value(v)}" for k, v in report["base"].items())
        parts.append(f"<p class='note'>Shared settings: {html.escape(shared)}</p>")
    parts += [
        "<h2>Results</h2>",
        _html_table(_table_header(others), [_table_cells(r, others) for r in report["table"]]),
    ]
    if report["comparisons"]:
        parts += [
            "<h2>Center loss against the softmax-only baseline</h2>",
            _html_table(COMPARISON_HEADER, [_comparison_cells(c) for c in report["comparisons"]]),
        ]
    if report["curves"]:
        parts.append("<h2>Sensitivity</h2><div>")
        parts += [
            f"<img src='{html.escape(c['image'])}' alt='{html.escape(c['image'])}'>"
            for c in report["curves"]
        ]
        parts.append("</div>")
    parts += [
        "<h2>Discriminability of z (test split, mean over units)</h2>",
        _html_table(
            DISC_HEADER[:3] + others + DISC_HEADER[3:],
            [_disc_cells(d, others) for d in report["discriminability"]],
        ),
    ]
    if report.get("reference"):
        rows, versus = _reference_rows(report["reference"])
        parts += [f"<h2>{html.escape(REFERENCE_TITLE)}</h2>", _html_table(REFERENCE_HEADER, rows),
                  _html_table(COMPARISON_HEADER, versus)]
    parts.append("<h2>Confusion matrices (pooled over folds and seeds)</h2><div>")
    parts += [
        f"<img src='{html.escape(c['image'])}' alt='{html.escape(c['image'])}'>"
        for c in report["confusion"]
    ]
    parts.append("</div>")
    notes = _notes(report, html.escape)
    if notes:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{n[2:]}</li>" for n in notes[2:-1]] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
