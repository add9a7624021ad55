import math

import pytest

from hdlib.fitters import recipe_comparison as rc


def test_epochs_to_level_counts_the_first_epoch_at_or_below():
    assert rc.epochs_to_level([5.0, 3.0, 4.0, 2.0], 3.0) == 2
    assert rc.epochs_to_level([5.0, 3.0], 1.0) is None


def test_largest_rise_above_the_running_best():
    # best so far: 4, 2, 2, 2, 1 -> rises 0, 0, 50%, 25%, 0
    assert rc.largest_rise_pct([4.0, 2.0, 3.0, 2.5, 1.0]) == pytest.approx(50.0)
    assert rc.largest_rise_pct([3.0, 2.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match="val_loss"):
        rc.largest_rise_pct([])


def _record():
    record = {}
    record.update(rc.run_record("a", {"val_loss": [4.0, 3.0, 2.0, 1.0],
                                      "train_loss": [4.0, 3.0, 2.0, 1.0]}, 5, 32))
    record.update(rc.run_record("b", {"val_loss": [3.0, 2.5], "train_loss": [3.0, 2.0]},
                                10, 64))
    return record


def test_cost_to_the_references_final_loss():
    record = _record()
    # level = final loss of b = 2.5: a reaches it after 3 epochs of 5 steps, b after 2 epochs
    # of 10 steps
    assert rc.to_level(record, ["a", "b"], "b", "steps") == {"a": 15.0, "b": 20.0}
    assert rc.to_level(record, ["a", "b"], "b", "sequences") == {"a": 15.0 * 32,
                                                                "b": 20.0 * 64}
    assert rc.log2_ratio_to_level(record, "a", "b") == pytest.approx(math.log2(480 / 1280))
    # level = final loss of a = 1.0: b never gets there and counts its 2 epochs plus one
    assert rc.to_level(record, ["a", "b"], "a", "steps") == {"a": 20.0, "b": 30.0}
    with pytest.raises(ValueError, match="unit"):
        rc.to_level(record, ["a"], "a", "seconds")


def test_relative_gap_and_paired_values():
    record = _record()
    assert rc.relative_gap_pct(record, "b", "a") == pytest.approx(150.0)
    assert record["b/largest_rise_pct"] == 0.0
    values = rc.paired_values([record, {**record, "a/final_val_loss": 2.5}],
                              lambda r: rc.relative_gap_pct(r, "b", "a"))
    assert values == pytest.approx([150.0, 0.0])


def test_run_record_rejects_bad_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        rc.run_record("a", {"val_loss": [1.0], "train_loss": [1.0]}, 5, 0)


def test_paired_measures_by_hand():
    record = _record()
    record.update(rc.run_record("c", {"val_loss": [2.0, 1.5], "train_loss": [2.0, 1.0]}, 5, 32))
    measures = rc.paired_measures([record], "a", controls=["c"], presets=["a", "b"])
    assert measures["c above reference (%)"] == pytest.approx([50.0])
    # b never reaches a's final 1.0: 3 epochs of 10 steps (64 sequences each) against 4 x 5
    assert measures["b: log2 steps ratio"] == pytest.approx([math.log2(30 / 20)])
    assert measures["b: log2 sequences ratio"] == pytest.approx([math.log2(1920 / 640)])
    assert measures["b: reached the level"] == [0.0]
    assert measures["b: rise minus reference (points)"] == [0.0]
    assert measures["largest val / train"] == pytest.approx([1.5])  # c: 1.5 / 1.0
    with pytest.raises(ValueError, match="reference"):
        rc.paired_measures([record], "a", controls=[], presets=["b"])
