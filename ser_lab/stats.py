"""Statistics of a sweep: mean ± std, paired differences with confidence intervals, curves.

The unit of a comparison is one (seed, fold): a test fold scored by a model trained with one
seed. Two settings trained over the same seeds and folds (a sweep's points differ only in
their settings, and the folds depend only on the seed) give PAIRED scores: the same test
speakers, the same split, the same initial data order. The question "does center loss help?"
is then a question about the paired differences d_u = score_B(u) - score_A(u):

- mean ± std: `mean_std(values)`: mean and SAMPLE standard deviation (ddof = 1, NaN for
  fewer than two values) over the units — what the report's table shows as "mean ± std".
- paired t-interval: mean(d) ± t_{1-(1-c)/2, n-1} · sd(d) / sqrt(n), the classical interval
  for the mean difference, assuming the d_u are independent draws from a normal law.
- bootstrap percentile interval: resample the n differences with replacement `n_boot` times
  (numpy Generator seeded with `seed`, so the interval is reproducible), take the mean of
  each resample, and report the (1-c)/2 and 1-(1-c)/2 percentiles of those means. It does not
  assume normality, but with few units it is narrower than the t-interval (it ignores that sd
  itself is estimated).

Both intervals treat the units as independent. Folds of one seed share training data, so the
true uncertainty is somewhat larger (Nadeau & Bengio 2003); read a narrow interval with that in
mind, and prefer more seeds over more folds to tighten it honestly.

Sensitivity curves (`sensitivity_curve`) give UA / WA against λ at a fixed α (or against α at
a fixed λ): one point per value, mean and std over that setting's units.

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


@dataclass
class MeanStd:
    mean: float
    std: float  # sample standard deviation (ddof = 1); NaN for n < 2
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


def mean_std(values: Iterable[float]) -> MeanStd:
    """Mean and sample std of the values (NaN mean and std for none, NaN std for one)."""
    arr = _values(values)
    if len(arr) == 0:
        return MeanStd(float("nan"), float("nan"), 0)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")
    return MeanStd(float(arr.mean()), std, int(len(arr)))


def t_quantile(confidence: float, dof: int) -> float:
    """The two-sided Student t quantile t_{1-(1-confidence)/2, dof} (e.g. 2.776 for 0.95, 4)."""
    from scipy import stats

    _check_confidence(confidence)
    if dof < 1:
        raise ConfigError(f"a t quantile needs at least 1 degree of freedom, got {dof}")
    return float(stats.t.ppf(1 - (1 - confidence) / 2, dof))


def t_interval(diffs: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """The paired t-interval for the mean of `diffs` ((NaN, NaN) for fewer than two)."""
    d = _values(diffs, "differences")
    if len(d) < 2:
        return float("nan"), float("nan")
    half = t_quantile(confidence, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def bootstrap_interval(
    diffs: Iterable[float], confidence: float = 0.95, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval for the mean of `diffs` ((NaN, NaN) for none)."""
    _check_confidence(confidence)
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer, got {n_boot!r}")
    d = _values(diffs, "differences")
    if len(d) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")


@dataclass
class PairedDifference:
    """B - A over the units both settings have."""

    n: int  # paired units
    mean: float  # mean difference
    std: float  # sample std of the differences (NaN for n < 2)
    confidence: float
    t_low: float
    t_high: float
    t_quantile: float  # the t quantile used (NaN for n < 2)
    boot_low: float
    boot_high: float
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
    t_low, t_high = t_interval(d, confidence)
    boot_low, boot_high = bootstrap_interval(d, confidence, n_boot, seed)
    return PairedDifference(
        n=len(d),
        mean=float(d.mean()),
        std=float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
        confidence=confidence,
        t_low=t_low,
        t_high=t_high,
        t_quantile=t_quantile(confidence, len(d) - 1) if len(d) > 1 else float("nan"),
        boot_low=boot_low,
        boot_high=boot_high,
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
    """Mean and std of each metric per value of `vary`, over the records matching `fixed`.

    records: one per unit, e.g. {"lam": 0.3, "alpha": 0.5, "features": "mel", "seed": 0,
    "fold": 2, "UA": 0.61, "WA": 0.63}. Example: vary="lam", fixed={"alpha": 0.5,
    "features": "mel"} gives UA / WA against λ at α = 0.5. Sorted by value.
    """
    by_value: dict[float, list[Mapping[str, Any]]] = {}
    for r in records:
        if vary not in r:
            raise ConfigError(f"a record has no {vary!r} field: {dict(r)}")
        if all(_same(r.get(k), v) for k, v in fixed.items()):
            by_value.setdefault(r[vary], []).append(r)
    return [
        CurvePoint(value, {m: mean_std(r[m] for r in rows) for m in metrics})
        for value, rows in sorted(by_value.items())
    ]


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return bool(np.isclose(x, y, rtol=0, atol=1e-12))
    return x == y
