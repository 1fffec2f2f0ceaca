"""The one statistics module: mean ± std, paired differences with intervals, sensitivity curves.

Every "± std" SER Lab shows (the CLI's `train` / `eval` table, `python -m ser_lab compare`, the
sweep report, the app's Sensitivity page) comes from `mean_std` here, so the same runs always
give the same numbers everywhere.

Conventions (stated once, applied everywhere):

- std is the SAMPLE standard deviation (ddof = 1) over the units given. A single value has no
  std: `MeanStd.std` is None (shown as "n/a" or left out), never NaN and never 0.
- the unit of a comparison is one (seed, fold): a test fold scored by a model trained with one
  seed. Two settings trained over the same seeds and folds (a sweep's points differ only in
  their settings, and the folds depend only on the seed) give PAIRED scores: the same test
  speakers, the same split, the same initial data order. "Does center loss help?" is then a
  question about the paired differences d_u = score_B(u) - score_A(u):
  - paired t-interval: mean(d) ± t_{1-(1-c)/2, n-1} · sd(d) / sqrt(n), the classical interval
    for the mean difference assuming the d_u are independent normal draws
    (`scipy.stats.ttest_rel(b, a).confidence_interval(c)`, computed on the differences);
  - bootstrap percentile interval: `scipy.stats.bootstrap` of the mean of the n differences,
    `n_boot` resamples drawn by a numpy Generator seeded with `seed` (so an interval is
    reproducible to the last digit), percentiles (1-c)/2 and 1-(1-c)/2 of the resampled means.
    It does not assume normality but, with few units, is narrower than the t-interval (it
    ignores that sd itself is estimated).
  Both need at least two units (None otherwise). Both treat the units as independent. Folds of
  one seed share training data, so the true uncertainty is somewhat larger (Nadeau & Bengio
  2003); read a narrow interval with that in mind, and prefer more seeds over more folds.
- where the λ = 0 baseline joins a sensitivity curve (`sensitivity_curve`): at λ = 0 there is
  no center loss, so α has no effect. A λ curve at α = a takes as its λ = 0 point the baseline
  units trained at α = a if there are any, else those of the smallest α the baseline was
  trained with (a sweep trains the baseline once, at its first α). An α curve is a curve of
  center-loss settings at one λ > 0: the baseline is never on it.

All scores are whatever the caller passes in (fractions or percentages); nothing is scaled here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ser_lab.errors import ConfigError

METRICS = ("UA", "WA")
DEFAULT_BOOTSTRAP = 10_000
CURVE_AXES = ("lam", "alpha")


@dataclass
class MeanStd:
    mean: float | None  # None for no values
    std: float | None  # sample standard deviation (ddof = 1); None for fewer than two values
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def _values(values: Iterable[float], what: str = "values") -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"{what} must be a flat list of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{what} hold NaN or infinite numbers")
    return arr


def sample_std(values: Iterable[float]) -> float | None:
    """The sample standard deviation (ddof = 1), or None for fewer than two values."""
    arr = _values(values)
    return float(arr.std(ddof=1)) if len(arr) > 1 else None


def mean_std(values: Iterable[float]) -> MeanStd:
    """Mean and sample std of the values (mean None for none, std None for fewer than two)."""
    arr = _values(values)
    if len(arr) == 0:
        return MeanStd(None, None, 0)
    return MeanStd(float(arr.mean()), sample_std(arr), int(len(arr)))


def t_quantile(confidence: float, dof: int) -> float:
    """The two-sided Student t quantile t_{1-(1-confidence)/2, dof} (e.g. 2.776 for 0.95, 4)."""
    from scipy import stats

    _check_confidence(confidence)
    if dof < 1:
        raise ConfigError(f"a t quantile needs at least 1 degree of freedom, got {dof}")
    return float(stats.t.ppf(1 - (1 - confidence) / 2, dof))


def t_interval(diffs: Iterable[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """The paired t-interval for the mean of the differences `diffs` = b - a (None for fewer
    than two). `scipy.stats.ttest_1samp(d, 0)` is `ttest_rel(b, a)`: the same test on the
    same differences."""
    from scipy import stats

    _check_confidence(confidence)
    d = _values(diffs, "differences")
    if len(d) < 2:
        return None
    if _no_spread(d):  # scipy's interval would be (nan, nan)
        return float(d.mean()), float(d.mean())
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence_level=confidence)
    return float(ci.low), float(ci.high)


def bootstrap_interval(
    diffs: Iterable[float], confidence: float = 0.95, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> tuple[float, float] | None:
    """The seeded percentile bootstrap interval for the mean of `diffs` (None for fewer than two)."""
    from scipy import stats

    _check_confidence(confidence)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer, got {n_boot!r}")
    d = _values(diffs, "differences")
    if len(d) < 2:
        return None
    if _no_spread(d):  # every resample has the same mean
        return float(d.mean()), float(d.mean())
    res = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _no_spread(d: np.ndarray) -> bool:
    """All differences equal up to rounding (e.g. 4.0 and 4.000000000000001)."""
    return float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max()))


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")


@dataclass
class PairedDifference:
    """B - A over the units both settings have (interval ends None for fewer than two units)."""

    n: int  # paired units
    mean: float  # mean difference
    std: float | None  # sample std of the differences
    confidence: float
    t_low: float | None
    t_high: float | None
    t_quantile: float | None  # the t quantile of the interval
    boot_low: float | None
    boot_high: float | None
    n_boot: int
    seed: int
    units: list  # the paired units, sorted
    unpaired: list  # units only one side has (left out)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["units"] = [list(u) if isinstance(u, tuple) else u for u in self.units]
        d["unpaired"] = [list(u) if isinstance(u, tuple) else u for u in self.unpaired]
        return d


def paired_difference(
    a: Mapping[Any, float],
    b: Mapping[Any, float],
    *,
    confidence: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> PairedDifference:
    """Mean of b[u] - a[u] over the units u (e.g. (seed, fold)) in both, with a paired
    t-interval and a seeded bootstrap percentile interval (see the module docstring).

    Units present on one side only are left out and listed in `unpaired`; ConfigError if no
    unit is shared.
    """
    shared = sorted(set(a) & set(b))
    unpaired = sorted(set(a) ^ set(b))
    if not shared:
        raise ConfigError(
            f"the two settings share no (seed, fold) unit: {sorted(a)} vs {sorted(b)}; "
            "compare settings trained with the same seeds and folds"
        )
    d = _values([b[u] - a[u] for u in shared], "differences")
    t_ci = t_interval(d, confidence)
    boot_ci = bootstrap_interval(d, confidence, n_boot, seed)
    return PairedDifference(
        n=len(d),
        mean=float(d.mean()),
        std=sample_std(d),
        confidence=confidence,
        t_low=t_ci[0] if t_ci else None,
        t_high=t_ci[1] if t_ci else None,
        t_quantile=t_quantile(confidence, len(d) - 1) if len(d) > 1 else None,
        boot_low=boot_ci[0] if boot_ci else None,
        boot_high=boot_ci[1] if boot_ci else None,
        n_boot=n_boot,
        seed=seed,
        units=shared,
        unpaired=unpaired,
    )


# ----------------------------------------------------------------------------- curves


@dataclass
class CurvePoint:
    value: float  # the varied setting (λ or α)
    metrics: dict  # metric -> MeanStd

    def to_dict(self) -> dict:
        return {"value": self.value, **{m: s.to_dict() for m, s in self.metrics.items()}}


def sensitivity_curve(
    records: Iterable[Mapping[str, Any]],
    vary: str,
    fixed: Mapping[str, Any],
    metrics: tuple[str, ...] = METRICS,
) -> list[CurvePoint]:
    """Mean and sample std of each metric per value of `vary` ("lam" or "alpha"), over the
    records matching `fixed`, with the baseline placed by the module's rule: on a λ curve at
    α = a, the λ = 0 point is the baseline at α = a, else at its smallest α; never on an α curve.

    records: one per unit, e.g. {"lam": 0.3, "alpha": 0.5, "features": "mel", "seed": 0,
    "fold": 2, "UA": 0.61, "WA": 0.63}. Example: vary="lam", fixed={"alpha": 0.5,
    "features": "mel"} gives UA / WA against λ at α = 0.5. Sorted by value.
    """
    if vary not in CURVE_AXES:
        raise ConfigError(f"a sensitivity curve varies 'lam' or 'alpha', got {vary!r}")
    if vary == "alpha" and "lam" in fixed and _same(fixed["lam"], 0):
        raise ConfigError("an α curve needs a fixed λ > 0 (α has no effect at λ = 0)")
    records = list(records)
    for r in records:
        if vary not in r:
            raise ConfigError(f"a record has no {vary!r} field: {dict(r)}")
    rest = {k: v for k, v in fixed.items() if not (vary == "lam" and k == "alpha")}
    matching = [r for r in records if all(_same(r.get(k), v) for k, v in rest.items())]
    center = [r for r in matching if not _same(r.get("lam"), 0)]
    if "alpha" in fixed:
        center = [r for r in center if _same(r.get("alpha"), fixed["alpha"])]
    rows = center
    if vary == "lam":
        rows = _baseline_rows(matching, fixed.get("alpha")) + center
    by_value: dict[float, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_value.setdefault(r[vary], []).append(r)
    return [
        CurvePoint(value, {m: mean_std(r[m] for r in group) for m in metrics})
        for value, group in sorted(by_value.items())
    ]


def _baseline_rows(records: list[Mapping[str, Any]], alpha: Any) -> list[Mapping[str, Any]]:
    """The λ = 0 records that stand for the baseline on a λ curve at α = `alpha` (None: any α)."""
    base = [r for r in records if _same(r.get("lam"), 0)]
    if alpha is None or not base:
        return base
    same = [r for r in base if _same(r.get("alpha"), alpha)]
    if same:
        return same
    alphas = sorted(r.get("alpha") for r in base if isinstance(r.get("alpha"), (int, float)))
    if not alphas:
        return base
    return [r for r in base if _same(r.get("alpha"), alphas[0])]


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return bool(np.isclose(x, y, rtol=0, atol=1e-12))
    return x == y
