"""Two runs side by side for the Compare page: their maps on one orientation, snapshot frames,
the compare table and a plain-language reading of what changed between them.

Nothing here imports Streamlit; pages stay thin (read inputs, call ser_lab, draw).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ser_lab.errors import RunError
from ser_lab.runs import Run

# ----------------------------------------------------------------------------- maps of two runs


@dataclass(eq=False)
class MapPair:
    """Two runs' maps of one fold as the Compare page draws them.

    normalised: each map divided by its OWN mean inter-center distance on the map (`unit_a`,
    `unit_b`, in map units), so both panels show the shape of z, not its size (the center loss
    shrinks z as a whole: intra- and inter-class distances both fall). Not normalised: both
    maps in their raw units (for PCA, units of z). Either way B is then turned onto A by a
    RIGID Procrustes fit (rotation, reflection, translation; never a scale: `rotation.scale`
    is 1), so no rescaling is hidden in the alignment.
    """

    a: Any
    b: Any
    normalised: bool
    unit_a: float
    unit_b: float
    rotation: Any  # Similarity2D, B onto A, scale 1

    def describe(self) -> str:
        """What the panels show, in one sentence."""
        if self.normalised:
            return (
                "Scale-free: each map is drawn in units of its own mean distance between class "
                f"centers (A divided by {self.unit_a:.3g}, B by {self.unit_b:.3g} map units), so "
                "the panels compare the shape of the classes, not the overall size of z."
            )
        return (
            "Raw units: both maps in their own projection's units (for PCA, units of z), so "
            "the overall size of z is compared too (center loss usually shrinks it)."
        )


def _similarity(fold_map: Any, transform: Any) -> Any:
    """`fold_map` with `transform` applied to every coordinate and to the placing of new
    points (composed into its `alignment`)."""
    from dataclasses import replace as _replace

    from ser_lab.analysis.maps import compose

    total = transform if fold_map.alignment is None else compose(fold_map.alignment, transform)
    return _replace(
        fold_map,
        xy=transform.apply(fold_map.xy),
        centers_xy=transform.apply(fold_map.centers_xy),
        class_means_xy={k: transform.apply(v) for k, v in fold_map.class_means_xy.items()},
        alignment=total,
    )


def map_unit(fold_map: Any) -> float:
    """The mean pairwise distance between the class centers on a map (its natural unit)."""
    from ser_lab.analysis.discriminability import mean_pairwise_distance

    unit = mean_pairwise_distance(np.asarray(fold_map.centers_xy, dtype=np.float64))
    if not math.isfinite(unit) or unit <= 1e-12:
        raise RunError(
            f"run {fold_map.run_id}: its class centers coincide on the map, so the map has no "
            "scale to normalise by"
        )
    return unit


def compare_maps(map_a: Any, map_b: Any, *, normalised: bool = True) -> MapPair:
    """The two maps of the Compare page (see `MapPair`): optionally each scaled by its own
    mean inter-center distance, then B rigidly aligned onto A on their shared utterances."""
    from ser_lab.analysis.projection import Similarity2D, align_to

    unit_a, unit_b = map_unit(map_a), map_unit(map_b)
    if normalised:
        map_a = _similarity(map_a, Similarity2D(np.eye(2), 1.0 / unit_a, np.zeros(2)))
        map_b = _similarity(map_b, Similarity2D(np.eye(2), 1.0 / unit_b, np.zeros(2)))
    _, rotation = align_to(map_a.xy, map_a.utt_ids, map_b.xy, map_b.utt_ids, allow_scale=False)
    return MapPair(map_a, _similarity(map_b, rotation), normalised, unit_a, unit_b, rotation)


def frames_on_map(
    run: Run, fold: int, shown: Any, best_epoch: int | None, splits: Iterable[str] | None = None
) -> list[dict]:
    """A run's per-epoch snapshots of z placed on the map the page shows (`shown`: the same
    projection, scale and alignment), oldest first, and as the LAST frame the shown map itself
    (the kept model, of the best-validation epoch) on the same utterances: so the animation
    ends exactly on the main picture. [] when the fold has no snapshots.

    A frame: {"key", "label", "epoch", "xy", "labels", "split", "utt_ids", "centers_xy"}.
    """
    keep = None if splits is None else set(splits)
    frames = []
    last = None
    for epoch in run.list_snapshots(fold):
        snap = run.load_snapshot(fold, epoch)
        mask = np.ones(len(snap["z"]), dtype=bool)
        if keep is not None:
            mask = np.isin(np.asarray(snap["split"]).astype(str), list(keep))
        if not mask.any():
            continue
        frames.append(
            {
                "key": str(epoch),
                "label": str(epoch),
                "epoch": int(epoch),
                "xy": shown.transform(np.asarray(snap["z"])[mask]),
                "labels": np.asarray(snap["labels"])[mask],
                "split": np.asarray(snap["split"]).astype(str)[mask],
                "utt_ids": np.asarray(snap["utt_ids"]).astype(str)[mask],
                "centers_xy": shown.transform(np.asarray(snap["centers"])),
            }
        )
        last = frames[-1]
    if last is None:
        return []
    index = {u: i for i, u in enumerate(np.asarray(shown.utt_ids).astype(str))}
    pick = np.array([index[u] for u in last["utt_ids"] if u in index], dtype=int)
    kept = {
        "key": "kept",
        "label": "kept",
        "epoch": best_epoch,
        "xy": np.asarray(shown.xy)[pick],
        "labels": np.asarray(shown.labels)[pick],
        "split": np.asarray(shown.split).astype(str)[pick],
        "utt_ids": np.asarray(shown.utt_ids).astype(str)[pick],
        "centers_xy": np.asarray(shown.centers_xy),
    }
    return [*frames, kept]


def common_frames(frames_a: list[dict], frames_b: list[dict]) -> list[str]:
    """The frame keys both runs have, in A's order."""
    keys_b = {f["key"] for f in frames_b}
    return [f["key"] for f in frames_a if f["key"] in keys_b]


def best_epoch(comparison: dict, side: str, fold: int) -> int | None:
    """The best-validation epoch of the model a side's map shows (from results.json, which the
    trainer writes from model.pt's best_epoch); None if unknown."""
    for f in comparison[side.lower()]["folds"]:
        if f.get("fold") == fold and f.get("best_epoch"):
            return int(f["best_epoch"])
    return None


def fold_spread(comparison: dict, side: str, fold: int) -> dict[str, float] | None:
    """Test intra-class and inter-center distance of one fold of a side, in units of z."""
    for f in comparison[side.lower()]["discriminability"]["folds"]:
        if f.get("fold") == fold and f.get("test"):
            return {"intra": float(f["test"]["intra"]), "inter": float(f["test"]["inter"])}
    return None


def comparison_rows(comparison: dict) -> list[dict[str, Any]]:
    """The rows of `ser_lab.analysis.compare.compare_rows` (the one comparison table, the one
    `python -m ser_lab compare` prints) as plain records: key, metric, A, B, diff (B − A;
    accuracies in percent; None where undefined), unit, better. The Compare page's table,
    the panel that reads it and `python -m ser_lab compare --json` all use these rows
    (`many_rows` of the pair)."""
    from ser_lab.analysis.compare import pair_as_many

    rows = many_rows(pair_as_many(comparison))
    return [{("diff" if k == "B − A" else k): v for k, v in row.items()} for row in rows]


def compare_table(comparison: dict) -> pd.DataFrame:
    """`comparison_rows` (the table `python -m ser_lab compare` prints) as a frame with
    A, B and B − A columns (accuracies in percent)."""
    table = pd.DataFrame(comparison_rows(comparison), columns=["metric", "A", "B", "diff"])
    return table.rename(columns={"diff": "B − A"})


# The metrics the panel reads out, in this order (the paper's claim is about the first two
# discriminability numbers: center loss makes z tighter and more separable).
READ_KEYS = ("UA", "WA", "test_intra_inter", "test_fisher", "knn_UA", "test_silhouette")
READ_NAMES = {
    "UA": "UA",
    "WA": "WA",
    "test_intra_inter": "test intra/inter ratio",
    "test_fisher": "test Fisher criterion",
    "knn_UA": "5-NN UA of z",
    "test_silhouette": "test silhouette",
}
# |B − A| below this is "unchanged" (percentage points for accuracies, relative for the rest)
SAME_PCT_POINTS = 0.05
SAME_RELATIVE = 0.005
CHANCE_MARGIN = 5.0  # UA within this many points of 100 / n_classes counts as chance level


@dataclass(frozen=True)
class MetricMove:
    """How one metric moved from A to B, and whether that is the better direction."""

    key: str
    name: str
    a: float
    b: float
    diff: float
    unit: str
    better: str  # "higher" or "lower"
    direction: str  # "rose", "fell", "unchanged" or "undefined"

    @property
    def improved(self) -> bool | None:
        """True if B is better than A on this metric, False if worse, None if no change."""
        if self.direction in ("unchanged", "undefined"):
            return None
        return (self.direction == "rose") == (self.better == "higher")

    def text(self) -> str:
        def num(v: float, signed: bool = False) -> str:
            if self.unit == "%":
                return f"{v:{'+' if signed else ''}.1f}" + (" points" if signed else " %")
            return f"{v:{'+' if signed else ''}.3f}"

        if self.direction == "undefined":
            return f"{self.name}: not defined for one of the runs"
        verdict = {True: "better", False: "worse", None: "no change"}[self.improved]
        if self.direction == "unchanged":
            return f"{self.name} unchanged at {num(self.b)} ({self.better} is better)"
        return (
            f"{self.name} {self.direction} from {num(self.a)} to {num(self.b)} "
            f"({num(self.diff, True)}): {verdict}, since {self.better} is better"
        )


@dataclass(frozen=True)
class ComparisonReading:
    """A comparison read out in plain words (see `read_comparison`)."""

    verdict: str  # "supports", "contradicts", "mixed" or "not tested"
    headline: str
    moves: list[MetricMove]
    facts: list[str]  # how many test utterances and folds, what B fixes and breaks, caveats
    center_side: str | None  # "A" or "B": the center-loss side, when the pair is one

    def lines(self) -> list[str]:
        return [m.text() for m in self.moves]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "headline": self.headline,
            "center_side": self.center_side,
            "metrics": [
                {**asdict(m), "improved": m.improved, "text": m.text()} for m in self.moves
            ],
            "facts": list(self.facts),
        }


def _lams(side: dict) -> list[float | None]:
    return [c.get("lam") for c in side.get("configs") or []]


def _center_side(comparison: dict) -> str | None:
    """"B" when every run of A is a baseline (λ = 0) and every run of B has λ > 0, "A" for
    the reverse, None otherwise (two baselines, two center-loss runs, unknown λ, or a run of
    another objective than the paper's, objectives.py: its λ weighs another term)."""
    la, lb = _lams(comparison["a"]), _lams(comparison["b"])
    if not la or not lb or None in la or None in lb:
        return None
    configs = [*(comparison["a"].get("configs") or []), *(comparison["b"].get("configs") or [])]
    if any(c.get("objective", "center") != "center" for c in configs):
        return None
    if all(v == 0 for v in la) and all(v > 0 for v in lb):
        return "B"
    if all(v > 0 for v in la) and all(v == 0 for v in lb):
        return "A"
    return None


def _move(row: dict) -> MetricMove:
    def num(value: float | None) -> float:
        return math.nan if value is None else float(value)

    a, b, diff = num(row["A"]), num(row["B"]), num(row["diff"])
    if not (math.isfinite(a) and math.isfinite(b)):
        direction = "undefined"
    else:
        tol = SAME_PCT_POINTS if row["unit"] == "%" else SAME_RELATIVE * max(abs(a), abs(b), 1e-12)
        direction = "unchanged" if abs(diff) < tol else ("rose" if diff > 0 else "fell")
    return MetricMove(
        key=row["key"],
        name=READ_NAMES[row["key"]],
        a=a,
        b=b,
        diff=diff,
        unit=row["unit"],
        better=row["better"],
        direction=direction,
    )


def _differences(comparison: dict) -> list[str]:
    """Settings (other than λ and α) in which the two sides differ."""
    keys = ("corpus", "features", "objective", "epochs", "n_folds", "protocol", "seed")
    # a run from before objectives existed has none recorded: it trained the paper's "center"
    defaults = {"objective": "center"}

    def values(side: dict, k: str) -> set[str]:
        return {json.dumps(c.get(k, defaults.get(k))) for c in side.get("configs") or []}

    out = []
    for k in keys:
        va, vb = values(comparison["a"], k), values(comparison["b"], k)
        if va and vb and va != vb:
            out.append(f"{k} ({', '.join(sorted(va))} vs {', '.join(sorted(vb))})")
    return out


def read_comparison(comparison: dict) -> ComparisonReading:
    """Read a `compare_runs` result for the user: which metrics moved which way and by how
    much (UA, WA, test intra/inter, Fisher, 5-NN UA, silhouette), over how many test
    utterances and folds, and whether the pair supports the paper's claim.

    The claim (Dai et al.): center loss makes z more discriminative, read here as a LOWER test
    intra/inter ratio AND a HIGHER test Fisher criterion for the center-loss run than for the
    baseline (both numbers are scale-free, so the shrink of z under the center loss cannot
    fake them). "supports": both hold; "contradicts": neither; "mixed": one; "not tested":
    the pair is not a baseline (λ = 0) against a center-loss run (λ > 0).
    """
    rows = {r["key"]: r for r in comparison_rows(comparison)}
    moves = [_move(rows[k]) for k in READ_KEYS]
    by_key = {m.key: m for m in moves}
    center = _center_side(comparison)
    a, b = comparison["a"], comparison["b"]
    n_test = [sum(int(f.get("n_test") or 0) for f in s["folds"]) for s in (a, b)]
    n_folds = [len(s["folds"]) for s in (a, b)]
    facts = []
    if n_test[0] == n_test[1] and n_folds[0] == n_folds[1]:
        facts.append(
            f"Measured on {n_test[0]} test utterances over {n_folds[0]} "
            f"fold{'s' if n_folds[0] != 1 else ''} per side."
        )
    else:
        facts.append(
            f"Measured on {n_test[0]} test utterances over {n_folds[0]} fold(s) for A, "
            f"{n_test[1]} over {n_folds[1]} for B."
        )
    changed = comparison.get("changed") or {}
    if changed.get("n_shared"):
        facts.append(
            f"Of the {changed['n_shared']} test utterances both scored, B gets "
            f"{changed['n_fixed']} right that A got wrong and {changed['n_broken']} wrong that "
            "A got right."
        )
    if 0 < min(n_test) < 200:
        facts.append(
            f"With about {min(n_test)} test utterances one utterance is worth "
            f"{100 / min(n_test):.1f} points of WA: differences of a few points can be chance."
        )
    chance = 100.0 / max(len(comparison["labels"]), 1)
    at_chance = [
        s for s, m in (("A", by_key["UA"].a), ("B", by_key["UA"].b)) if m < chance + CHANCE_MARGIN
    ]
    if at_chance:
        facts.insert(
            0,
            f"{' and '.join(at_chance)} {'is' if len(at_chance) == 1 else 'are'} at chance level "
            f"(UA within {CHANCE_MARGIN:g} points of {chance:.0f} % with "
            f"{len(comparison['labels'])} classes): such a model has not learnt the classes, "
            "so its feature-space numbers mean little.",
        )
    differ = _differences(comparison)
    if differ:
        facts.append("The two sides differ in more than λ and α: " + "; ".join(differ) + ".")

    if center is None:
        verdict = "not tested"
        headline = (
            "This pair is not a baseline (λ = 0) against a center-loss run (λ > 0), so it does "
            "not test the paper's claim; the numbers below only say how B differs from A."
        )
    else:
        ratio, fisher = by_key["test_intra_inter"], by_key["test_fisher"]
        sign = 1 if center == "B" else -1  # the moves are B − A; read them center − baseline
        tighter = ratio.direction != "undefined" and sign * ratio.diff < 0
        separable = fisher.direction != "undefined" and sign * fisher.diff > 0
        side = f"the center-loss run ({center})"
        if tighter and separable:
            verdict = "supports"
            headline = (
                f"This pair supports the paper's claim: {side} has the lower test intra/inter "
                "ratio (tighter classes) and the higher test Fisher criterion (better separated)."
            )
        elif not tighter and not separable:
            verdict = "contradicts"
            headline = (
                f"This pair does NOT support the paper's claim: {side} has neither the lower test "
                "intra/inter ratio nor the higher test Fisher criterion; its z is not more "
                "discriminative than the baseline's here."
            )
        else:
            verdict = "mixed"
            good = "the lower intra/inter ratio" if tighter else "the higher Fisher criterion"
            bad = "the higher Fisher criterion" if tighter else "the lower intra/inter ratio"
            headline = (
                f"This pair does NOT clearly support the paper's claim: {side} has {good} but "
                f"not {bad}."
            )
        if at_chance:
            headline += " But read it with care: a run is at chance level (see below)."
        if center == "A":
            headline += " (Here A is the center-loss run: \"rose\" and \"fell\" below read B − A.)"
    return ComparisonReading(verdict, headline, moves, facts, center)


def comparison_json(comparison: dict) -> dict[str, Any]:
    """The comparison table as one JSON-ready object (`python -m ser_lab compare --json`):
    the runs of each side, the rows of the table, what changed, and the plain reading."""

    changed = comparison.get("changed") or {}
    return _json_clean(
        {
            "a": {"runs": comparison["a"]["run_ids"], "configs": comparison["a"].get("configs")},
            "b": {"runs": comparison["b"]["run_ids"], "configs": comparison["b"].get("configs")},
            "labels": list(comparison["labels"]),
            "rows": comparison_rows(comparison),
            "changed": {
                k: changed.get(k)
                for k in ("n_shared", "n_fixed", "n_broken", "both_right", "both_wrong")
            },
            "reading": read_comparison(comparison).to_dict(),
        }
    )


def many_rows(many: dict) -> list[dict[str, Any]]:
    """The rows of `ser_lab.analysis.compare.compare_many_rows` (the table of up to four runs
    that `python -m ser_lab compare A B C D` prints) as plain records: key, metric, a value per
    run (A, B, ...), each run after A minus A ("B − A", ...; accuracies in percent, None where
    undefined), unit, better. The Compare page's grid table and `compare --json` use them."""
    from ser_lab.analysis.compare import compare_many_rows

    names = many["names"]
    rows = []
    for r in compare_many_rows(many):
        scale = 100.0 if r.percent else 1.0
        rows.append(
            {
                "key": r.key,
                "metric": r.metric,
                **{n: None if v is None else v * scale for n, v in zip(names, r.values, strict=True)},
                **{f"{n} − A": None if d is None else d * scale for n, d in zip(names[1:], r.diffs, strict=True)},
                "unit": "%" if r.percent else "",
                "better": r.better,
            }
        )
    return rows


def many_table(many: dict) -> pd.DataFrame:
    """`many_rows` as a frame: metric, a column per run, then each run after A minus A."""
    names = many["names"]
    columns = ["metric", *names, *(f"{n} − A" for n in names[1:])]
    return pd.DataFrame(many_rows(many), columns=columns)


def many_json(many: dict) -> dict[str, Any]:
    """A comparison of up to four runs as one JSON-ready object (`python -m ser_lab compare
    A B C D --json`): the runs of each side, the rows, and what changed against A."""
    from ser_lab.analysis.compare import many_sides

    pairs, sides = many["pairs"], many_sides(many)
    keys = ("n_shared", "n_fixed", "n_broken", "both_right", "both_wrong")
    return _json_clean(
        {
            "runs": {n: {"runs": s["run_ids"], "configs": s.get("configs")}
                     for n, s in zip(many["names"], sides, strict=True)},
            "labels": list(many["labels"]),
            "rows": many_rows(many),
            "changed_against_A": {n: {k: p["changed"].get(k) for k in keys}
                                  for n, p in zip(many["names"][1:], pairs, strict=True)},
        }
    )


def _json_clean(value: Any) -> Any:
    """`value` with every non-finite float as None (JSON has no NaN) and numpy scalars as
    Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
