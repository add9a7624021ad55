"""The verdict rule of hdlib.book.claims, against values computed by hand or by scipy's
independent routines."""
import math

import numpy as np
import pytest
from scipy import stats

from hdlib.book import claims
from hdlib.book.claims import Claim, Target

BELOW = Target("error is small", "002: Testing", 2.0, "below", "deg")
ABOVE = Target("fits correlate", "book", 0.3, "above", reason="a test target")


def test_interval_is_the_t_interval_at_the_level_of_one_look():
    # values 1, 2, 3: mean 2, sd 1; one look of three tests at 0.05 / 3
    mean, low, high = claims.interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(1 - 0.05 / 6, 2) / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-12)


def test_a_bounded_quantity_gets_an_interval_inside_its_range():
    mean, low, high = claims.interval([0.95, 1.0, 0.99], bounds=(0, 1))
    assert high == 1.0 and 0 <= low < mean


def test_p_value_is_three_times_the_t_test_and_sign_test_for_bounds():
    values = [1.0, 1.4, 1.2, 1.3]
    t = (np.mean(values) - 1.0) / (np.std(values, ddof=1) / 2)
    expected = 2 * stats.t.sf(abs(t), 3)
    assert claims.p_value(values, 1.0) == pytest.approx(min(1, 3 * expected), rel=1e-10)
    # censored: 5 values above 0 (one a lower bound), one bound below 0 says nothing: 5 of 5
    p = claims.p_value([1, 2, 3, 4, 5, -1], 0.0, censored=[0, 0, 0, 0, 1, 1])
    assert p == pytest.approx(3 * 2 * 0.5 ** 5)


def test_holm_matches_the_step_down_formula():
    # sorted 0.01, 0.02, 0.04 of m = 3: 0.03, 0.04, 0.04 (running maximum); nan stays out
    adjusted = claims.holm([0.04, 0.01, math.nan, 0.02])
    assert adjusted[[1, 3, 0]] == pytest.approx([0.03, 0.04, 0.04])
    assert math.isnan(adjusted[2])
    # a later, larger product lifts the running maximum: 0.01 x 3, 0.03 x 2 = 0.06, 0.04 x 1
    assert claims.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert claims.holm([0.6, 0.7]).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("values, target, expected", [
    ([1.0, 1.1, 0.9, 1.0, 1.05, 0.95], BELOW, "holds"),   # far below 2, n = 6
    ([3.0, 3.1, 2.9, 3.0, 3.05, 2.95], BELOW, "fails"),
    ([1.0, 1.1, 0.9], BELOW, "holds"),           # a large effect decides at n = 3 (t = -17)
    ([1.5, 1.9, 1.2], BELOW, "inconclusive"),    # t = -2.3 at n = 3 does not
    ([0.3, 0.31, 0.29, 0.30, 0.31, 0.29], ABOVE, "inconclusive"),
    ([2.5, 2.5, 2.5], BELOW, "fails"),             # no spread: decided by the value
    ([5.0], ABOVE, "inconclusive"),                  # one seed is never evidence
])
def test_verdicts(values, target, expected):
    table = claims.evidence_table([Claim(target, values)])
    assert table["verdict"].tolist() == [expected]


def test_holm_can_turn_a_single_row_verdict_into_inconclusive():
    # alone, p = 0.03 * ... decides; among twenty rows of p ~ 0.5 it must survive m = 21
    values = [1.0, 1.3, 1.15, 1.2, 1.1, 1.25]
    alone = claims.evidence_table([Claim(BELOW, values)])
    p_alone = claims.p_value(values, 2.0)
    assert alone["verdict"][0] == "holds" and p_alone < 0.05
    noise = [Claim(Target(f"r{i}", "book", 0.0, "above", reason="x"),
                   [-1.0, 1.0, 0.1 * i, 0.5]) for i in range(20)]
    crowded = claims.evidence_table([Claim(BELOW, values), *noise])
    expected = "holds" if 21 * p_alone <= 0.05 else "inconclusive"
    assert crowded["verdict"][0] == expected
    assert float(crowded["p (Holm)"][0]) == pytest.approx(min(1, 21 * p_alone), rel=0.05)


def test_zero_spread_and_stale_rows_say_so():
    same = Claim(BELOW, [0.04, 0.04, 0.04])
    assert same.measured() == "0.04 deg, the same in all 3 runs"
    mixed = Claim(BELOW, [1.0, 1.1, 0.9], versions=["a", "a", "b"])
    table = claims.evidence_table([same, mixed])
    assert table["verdict"].tolist() == ["holds", "stale"]
    assert table["p (Holm)"].tolist() == ["–", "–"]
    assert table["code"].tolist() == ["", "a, b"]
    same = claims.evidence_table([Claim(BELOW, [1.0, 1.1, 0.9], versions=["abc"] * 3)])
    assert "code" not in same and same.attrs["code"] == "abc"
    assert "measuring code abc" in claims.styled(same).to_html()


def test_undecided_rows_get_more_seeds_until_the_last_look():
    short = Claim(BELOW, [1.5, 1.9, 1.2])
    capped = Claim(ABOVE, list(np.linspace(0.28, 0.32, 10)))
    assert claims.undecided([short, capped]) == [0]


def test_checks_pass_only_when_every_value_is_on_the_side():
    target = Target("gap", "000: Testing", 1e-5, "below", reason="")
    good, bad = claims.check(target, [1e-7, 2e-7, 0.0]), claims.check(target, [1e-7, 1e-3])
    assert good.passed and not bad.passed
    assert good.result == "worst of 3: 2.0e-07"
    table = claims.checks_table([good, bad])
    assert table["pass"].tolist() == ["pass", "FAIL"]


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="values must be"):
        claims.interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="side"):
        Target("x", "book", 0.0, "sideways", reason="r")
    with pytest.raises(ValueError, match="reason"):
        Target("x", "book", 0.0, "above")
    with pytest.raises(ValueError, match="censored"):
        Claim(BELOW, [1.0, 2.0], censored=[True])
    with pytest.raises(ValueError, match="paired"):
        claims.paired([1.0, 2.0], [1.0])


def test_a_row_of_bounds_is_decided_by_the_sign_test_not_as_deterministic():
    target = Target("slower", "001: Examples", 0.0, "above")
    few = Claim(target, [0.04] * 6, censored=[True] * 6)
    assert not few.deterministic
    assert few.measured() == "0.04 on average; 6 of 6 above 0; 6 of 6 are lower bounds"
    assert few.p_value() == pytest.approx(3 * 2 * 0.5 ** 6)  # 0.094: not yet
    assert claims.evidence_table([few])["verdict"][0] == "inconclusive"
    ten = Claim(target, [0.04] * 10, censored=[True] * 10)
    assert claims.evidence_table([ten])["verdict"][0] == "holds"  # 3 x 2 / 1024


def test_training_option_measures_from_a_record():
    from hdlib.book import chapter_claims

    record = {"cosine (default)/final_val_loss": 1.02, "cosine (default)/tracking_error_deg": 3.0,
              "options/least_moved_groups": 0.2, "options/least_moved_one_rate": 0.05,
              "options/most_moved_groups": 0.8, "options/most_moved_one_rate": 0.8,
              "options/final_val_loss_unconstrained": 1.0,
              "options/inside_bounds_unconstrained": 6 / 7,
              "options/early_error_best": 2.5, "options/early_error_last": 2.75}
    measures = chapter_claims._option_measures(record)
    assert measures["per_group_balance"] == pytest.approx(2.0)  # log2(16) - log2(4)
    assert measures["constraints_cost"] == pytest.approx(2.0)  # 100 * 0.02 / 1.0
    assert measures["plausible"] == pytest.approx(6 / 7)
    assert measures["early_stopping_helps"] == pytest.approx(-0.5)
    assert measures["best_state_helps"] == pytest.approx(-0.25)


def test_a_deterministic_value_at_the_threshold_is_on_neither_side():
    target = claims.Target("x is below zero", "book", 0.0, "below", reason="r")
    at = claims.Claim(target, [0.0, 0.0, 0.0])
    below = claims.Claim(target, [-1.0, -1.0, -1.0])
    assert at.deterministic and at.verdict(math.nan) == "inconclusive"
    assert below.verdict(math.nan) == "holds"
