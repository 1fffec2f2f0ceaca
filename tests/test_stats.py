"""Statistics of a sweep, checked against numbers worked out by hand."""

import math

import numpy as np
import pytest

from ser_lab.errors import ConfigError
from ser_lab.stats import (
    bootstrap_interval,
    mean_std,
    paired_difference,
    sensitivity_curve,
    t_interval,
    t_quantile,
)


def test_mean_std_is_the_sample_std():
    ms = mean_std([50, 60, 55, 65])
    assert ms.mean == pytest.approx(57.5)
    assert ms.std == pytest.approx(math.sqrt(125 / 3))  # squared deviations 56.25+6.25+6.25+56.25
    assert ms.n == 4
    one = mean_std([0.7])
    assert one.mean == 0.7 and math.isnan(one.std) and one.n == 1
    none = mean_std([])
    assert none.n == 0 and math.isnan(none.mean)


def test_t_quantiles_match_the_table():
    assert t_quantile(0.95, 4) == pytest.approx(2.776445, abs=1e-6)
    assert t_quantile(0.95, 1) == pytest.approx(12.706205, abs=1e-5)
    assert t_quantile(0.90, 9) == pytest.approx(1.833113, abs=1e-6)


def test_t_interval_of_one_to_five():
    # mean 3, sd sqrt(2.5), half-width 2.776445 * sqrt(2.5) / sqrt(5) = 1.963243
    low, high = t_interval([1, 2, 3, 4, 5])
    assert low == pytest.approx(3 - 1.963243, abs=1e-5)
    assert high == pytest.approx(3 + 1.963243, abs=1e-5)
    assert all(math.isnan(v) for v in t_interval([1.0]))


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
