"""hdlib.book.tables: wide frames split into tables that fit the column, headers in words."""
import pandas as pd

from hdlib.book import tables


def test_headers_become_words_and_numbers_are_rounded(capsys):
    frame = pd.DataFrame({"bits_per_spike": [0.123456, 0.2]}, index=["a", "b"])
    [shown] = tables.show(frame, digits=2)
    assert list(shown.columns) == ["bits per spike"]
    assert shown["bits per spike"].tolist() == ["0.12", "0.2"]


def test_units_go_into_the_headers_of_their_columns_only(capsys):
    frame = pd.DataFrame({"error_short": [1.234], "seeds": [3]})
    [shown] = tables.show(frame, units={"error_short": "deg", "absent": "ms"})
    assert list(shown.columns) == ["error short (deg)", "seeds"]


def test_a_wide_frame_is_split_into_groups_that_each_fit():
    frame = pd.DataFrame({f"metric_{k}_long_name": [0.123456789] * 3 for k in range(12)},
                         index=["baseline", "raw inputs", "scalar gain"])
    parts = tables.groups(frame.apply(lambda c: c.map(str)), width_px=400)
    assert [name for part in parts for name in part] == list(frame.columns)  # all, in order
    assert len(parts) > 1
    index_px = tables.column_px("", frame.index)
    for part in parts:  # every group fits beside the index, unless it is one column alone
        width = index_px + sum(tables.column_px(tables.readable(n), frame[n].map(str))
                               for n in part)
        assert width <= 400 or len(part) == 1
    # a narrow frame stays one table
    assert tables.groups(frame.iloc[:, :2].apply(lambda c: c.map(str)), width_px=680) == [
        list(frame.columns[:2])]
