"""The verdict rule of hdlib.book.claims, against hand-computed t-intervals."""
import math

import pytest

from hdlib.book import claims


def test_interval_matches_the_t_formula():
    # values 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302652729911275
    mean, low, high = claims.interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert mean == 2.0
    assert low == pytest.approx(2.0 - half, rel=1e-9)
    assert high == pytest.approx(2.0 + half, rel=1e-9)


@pytest.mark.parametrize("values, threshold, side, expected", [
    ([1.0, 1.1, 0.9], 0.5, "above", "holds"),      # interval ~[0.75, 1.25], all above 0.5
    ([1.0, 1.1, 0.9], 0.5, "below", "fails"),
    ([1.0, 1.1, 0.9], 1.0, "above", "inconclusive"),
    ([2.0, 2.0, 2.0], 1.0, "below", "fails"),      # zero spread: a deterministic check
    ([2.0, 2.0, 2.0], 3.0, "below", "holds"),
    ([5.0], 1.0, "above", "inconclusive"),          # one seed is never evidence
])
def test_verdict_rule(values, threshold, side, expected):
    assert claims.verdict(values, threshold, side) == expected


def test_evidence_table_has_the_five_columns_and_the_rule():
    table = claims.evidence_table([
        claims.Claim("error is small", "002: Testing", [1.0, 1.2, 0.8], 2.0, "below", "deg"),
        claims.Claim("fits correlate", "book", [0.3, 0.31, 0.29], 0.3, "above")])
    assert list(table.columns) == ["claim", "source", "measured", "n", "verdict"]
    assert table["verdict"].tolist() == ["holds", "inconclusive"]
    assert table["n"].tolist() == [3, 3]
    assert table["measured"][0].startswith("1.00 deg [")


@pytest.mark.parametrize("values", [[], [1.0, float("nan")]])
def test_bad_values_name_the_argument(values):
    with pytest.raises(ValueError, match="values must be"):
        claims.interval(values)
