"""Statistics of a sweep, checked against numbers worked out by hand."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from ser_lab.analysis.stats import (
    bootstrap_interval,
    mean_std,
    paired_difference,
    sensitivity_curve,
    t_interval,
    t_quantile,
)
from ser_lab.errors import ConfigError

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def test_mean_std_is_the_sample_std():
    ms = mean_std([50, 60, 55, 65])
    assert ms.mean == pytest.approx(57.5)
    assert ms.std == pytest.approx(math.sqrt(125 / 3))  # squared deviations 56.25+6.25+6.25+56.25
    assert ms.n == 4
    one = mean_std([0.7])
    assert one.mean == 0.7 and one.std is None and one.n == 1  # one value has no std
    none = mean_std([])
    assert none.n == 0 and none.mean is None and none.std is None


def test_t_quantiles_match_the_table():
    assert t_quantile(0.95, 4) == pytest.approx(2.776445, abs=1e-6)
    assert t_quantile(0.95, 1) == pytest.approx(12.706205, abs=1e-5)
    assert t_quantile(0.90, 9) == pytest.approx(1.833113, abs=1e-6)


def test_t_interval_of_one_to_five():
    # mean 3, sd sqrt(2.5), half-width 2.776445 * sqrt(2.5) / sqrt(5) = 1.963243
    low, high = t_interval([1, 2, 3, 4, 5])
    assert low == pytest.approx(3 - 1.963243, abs=1e-5)
    assert high == pytest.approx(3 + 1.963243, abs=1e-5)
    assert t_interval([1.0]) is None and bootstrap_interval([1.0]) is None


def test_equal_differences_give_a_zero_width_interval():
    a = {(0, 0): 50.0, (0, 1): 61.0, (1, 0): 47.0, (1, 1): 70.0}
    b = {u: v + 2.0 for u, v in a.items()}
    d = paired_difference(a, b)
    assert d.n == 4 and d.mean == pytest.approx(2.0)
    assert d.std == pytest.approx(0.0, abs=1e-12)
    assert d.t_low == pytest.approx(2.0) and d.t_high == pytest.approx(2.0)
    assert d.boot_low == pytest.approx(2.0) and d.boot_high == pytest.approx(2.0)
    assert d.t_quantile == pytest.approx(t_quantile(0.95, 3))


def test_paired_difference_is_b_minus_a_and_pairs_by_unit():
    a = {(0, 0): 1.0, (0, 1): 1.0, (0, 2): 1.0, (0, 3): 1.0, (0, 4): 1.0}
    b = {(0, 0): 2.0, (0, 1): 3.0, (0, 2): 4.0, (0, 3): 5.0, (0, 4): 6.0}
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(3.0)  # differences 1..5
    assert (d.t_low, d.t_high) == pytest.approx(t_interval([1, 2, 3, 4, 5]))
    assert d.boot_low >= 1.0 and d.boot_high <= 5.0 and d.boot_low < 3.0 < d.boot_high
    # pairing: shuffling b's values between units changes the differences, not the mean
    swapped = dict(zip(b, reversed(list(b.values()))))
    d2 = paired_difference(a, swapped)
    assert d2.mean == pytest.approx(3.0)


def test_bootstrap_of_two_values_covers_both():
    # Resamples of [0, 1] have means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the
    # 2.5 % and 97.5 % percentiles are 0 and 1.
    assert bootstrap_interval([0.0, 1.0], n_boot=4000, seed=1) == (0.0, 1.0)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(5)
    diffs = rng.normal(1.0, 2.0, size=12)
    first = bootstrap_interval(diffs, seed=3)
    assert bootstrap_interval(diffs, seed=3) == first
    assert bootstrap_interval(diffs, seed=4) != first
    # for a dozen normal differences the percentile interval is close to (and a bit narrower
    # than) the t-interval
    t_low, t_high = t_interval(diffs)
    width = first[1] - first[0]
    assert 0.7 * (t_high - t_low) < width < t_high - t_low


def test_units_of_one_side_only_are_left_out_and_listed():
    a = {(0, 0): 1.0, (0, 1): 2.0, (1, 0): 3.0}
    b = {(0, 0): 2.0, (0, 1): 4.0, (2, 0): 9.0}
    d = paired_difference(a, b)
    assert d.n == 2 and d.mean == pytest.approx(1.5)
    assert d.units == [(0, 0), (0, 1)]
    assert d.unpaired == [(1, 0), (2, 0)]
    assert d.to_dict()["units"] == [[0, 0], [0, 1]]


def test_errors():
    with pytest.raises(ConfigError, match="share no"):
        paired_difference({(0, 0): 1.0}, {(1, 0): 1.0})
    with pytest.raises(ConfigError, match="confidence"):
        t_interval([1, 2, 3], confidence=1.5)
    with pytest.raises(ConfigError, match="NaN"):
        mean_std([1.0, float("nan")])
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_interval([1.0, 2.0], n_boot=0)


def test_sensitivity_curve_groups_by_value_at_the_fixed_setting():
    records = []
    for lam, base in ((0.0, 50.0), (0.3, 60.0), (0.1, 55.0)):
        for seed in (0, 1):
            for fold, offset in ((0, -1.0), (1, 1.0)):
                records.append(
                    {
                        "lam": lam,
                        "alpha": 0.5,
                        "features": "mel",
                        "seed": seed,
                        "fold": fold,
                        "UA": base + offset,
                        "WA": base + 2 * offset,
                    }
                )
    records.append(
        {"lam": 0.3, "alpha": 0.9, "features": "mel", "seed": 0, "fold": 0, "UA": 0.0, "WA": 0.0}
    )
    curve = sensitivity_curve(records, "lam", {"alpha": 0.5, "features": "mel"})
    assert [p.value for p in curve] == [0.0, 0.1, 0.3]  # sorted; the alpha 0.9 record left out
    top = curve[2]
    assert top.metrics["UA"].mean == pytest.approx(60.0) and top.metrics["UA"].n == 4
    assert top.metrics["UA"].std == pytest.approx(math.sqrt(4 / 3))  # deviations +-1, ddof 1
    assert top.metrics["WA"].std == pytest.approx(math.sqrt(16 / 3))
    by_alpha = sensitivity_curve(records, "alpha", {"lam": 0.3})
    assert [p.value for p in by_alpha] == [0.5, 0.9]
    assert by_alpha[1].metrics["UA"].n == 1


def test_intervals_agree_with_scipy():
    rng = np.random.default_rng(11)
    a = rng.normal(60.0, 5.0, size=10)
    b = a + rng.normal(2.0, 3.0, size=10)
    d = paired_difference(dict(enumerate(a)), dict(enumerate(b)), n_boot=2000, seed=7)
    ci = sps.ttest_rel(b, a).confidence_interval(confidence_level=0.95)
    assert (d.t_low, d.t_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    # the classical formula, by hand
    half = t_quantile(0.95, 9) * np.std(b - a, ddof=1) / np.sqrt(10)
    assert (d.t_low, d.t_high) == pytest.approx((np.mean(b - a) - half, np.mean(b - a) + half))
    boot = sps.bootstrap(
        (b - a,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(7)
    ).confidence_interval
    assert (d.boot_low, d.boot_high) == pytest.approx((boot.low, boot.high), abs=1e-12)


def _hand_bootstrap(diffs: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """The percentile bootstrap as SER Lab computed it before it used scipy."""
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n_boot, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


@pytest.mark.parametrize(
    "name", ["synthetic_reproduction", "synthetic_reproduction_e20", "emodb_reproduction", "emodb_reproduction_e40",
             "emodb_reproduction_e20", "emodb_reproduction_corpus", "emodb_reproduction_stft"]
)
def test_committed_intervals_are_reproduced(name):
    """The intervals the README quotes come back to the last digits from the per-fold scores
    stored next to them (and equal the hand-written bootstrap they were first computed with)."""
    data = json.loads((RESULTS / f"{name}.json").read_text())
    for metric in ("UA", "WA"):
        sides = [
            {
                (p["seed"], k): v
                for p in data[side]["per_seed"]
                for k, v in enumerate(p[f"fold_{metric}"])
            }
            for side in ("baseline", "center_loss")
        ]
        got = paired_difference(*sides)
        want = data[f"{metric}_paired"]
        for key in ("mean", "t_low", "t_high", "boot_low", "boot_high"):
            assert getattr(got, key) == pytest.approx(want[key], abs=1e-9), (metric, key)
        diffs = np.array([sides[1][u] - sides[0][u] for u in sorted(sides[0])])
        assert (got.boot_low, got.boot_high) == pytest.approx(_hand_bootstrap(diffs, 10_000, 0))


@pytest.mark.parametrize("path", sorted(RESULTS.glob("objectives_*.json")), ids=lambda p: p.stem)
def test_committed_objective_tables_are_reproduced(path):
    """Every arm's paired difference to the softmax baseline in a committed objectives table
    (README, Other objectives) comes back from the per-fold scores stored beside it."""
    arms = json.loads(path.read_text())["arms"]

    def units(arm: str, metric: str) -> dict:
        return {(p["seed"], k): v for p in arms[arm]["per_seed"] for k, v in enumerate(p[f"fold_{metric}"])}

    for metric in ("UA", "WA"):
        for arm, entry in arms.items():
            if arm == "baseline":
                continue
            got = paired_difference(units("baseline", metric), units(arm, metric))
            want = entry[f"{metric}_paired_vs_baseline"]
            assert got.n == want["n"] == len(units(arm, metric)), (arm, metric)
            for key in ("mean", "t_low", "t_high", "boot_low", "boot_high"):
                assert getattr(got, key) == pytest.approx(want[key], abs=1e-9), (arm, metric, key)


def test_the_baseline_joins_every_lambda_curve_by_one_rule():
    def rec(lam, alpha, seed, ua):
        return {"lam": lam, "alpha": alpha, "seed": seed, "fold": 0, "UA": ua, "WA": ua}

    records = [
        rec(0.0, 0.5, 0, 50.0),
        rec(0.0, 0.5, 1, 52.0),
        rec(0.0, 0.1, 0, 40.0),  # a second baseline, trained at α = 0.1
        rec(0.3, 0.5, 0, 60.0),
        rec(0.3, 0.9, 0, 70.0),
        rec(0.3, 0.1, 0, 65.0),
    ]
    # same α: that baseline
    at_05 = sensitivity_curve(records, "lam", {"alpha": 0.5})
    assert [(p.value, p.metrics["UA"].mean) for p in at_05] == [(0.0, 51.0), (0.3, 60.0)]
    assert at_05[1].metrics["UA"].std is None  # one unit: no std
    # no baseline at this α: the one at the smallest α
    at_09 = sensitivity_curve(records, "lam", {"alpha": 0.9})
    assert [(p.value, p.metrics["UA"].mean) for p in at_09] == [(0.0, 40.0), (0.3, 70.0)]
    # never on an α curve
    by_alpha = sensitivity_curve(records, "alpha", {"lam": 0.3})
    assert [p.value for p in by_alpha] == [0.1, 0.5, 0.9]
    with pytest.raises(ConfigError, match="λ > 0"):
        sensitivity_curve(records, "alpha", {"lam": 0.0})
    with pytest.raises(ConfigError, match="'lam' or 'alpha'"):
        sensitivity_curve(records, "seed", {})
