"""Each per-value reader of the record fast path equals the Polars cast it mirrors
(``canonical_columns``), value for value, on generated and hand-picked inputs."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.features.inputs import canonical_columns
from forgeml.features.scalars import float_text, to_number, to_text, to_timestamp
from forgeml.features.timestamps import WHITESPACE


def canonical(values: list[Any], dtype: Any, ctype: Any) -> list[Any]:
    """What the Polars path makes of ``values`` in a column of ``dtype`` typed ``ctype``
    (timestamps as microseconds since the epoch)."""
    frame = pl.DataFrame({"c": pl.Series("c", values, dtype=dtype)})
    exprs, _ = canonical_columns(frame.schema, {"c": ctype})
    out = frame.select(exprs)
    if ctype == "datetime":
        out = out.select(pl.col("c").dt.epoch("us"))
    return out.get_column("c").to_list()


# Strings that look like numbers, almost numbers, boolean words, and noise.
number_like = st.one_of(
    st.from_regex(r"\A[+-]?[0-9]{0,4}(\.[0-9]{0,4})?([eE][+-]?[0-9]{0,3})?\Z"),
    st.floats().map(repr),
    st.floats().map(float_text),
    st.sampled_from(
        ["1_000", "0x10", "١٢", "１", "inf", "-Infinity", "nan", "1e400", "1,5", "1 000", "--1"]
    ),
    st.sampled_from(["true", "False", " yes ", "NO", "t", "F", "1", "0", "1.0", "0.0", "y"]),
    st.text(max_size=6),
)
padded = st.tuples(
    st.text(WHITESPACE + "\x1c\x1f\u200b", max_size=2),
    number_like,
    st.text(WHITESPACE + "\x1c\x1f\u200b", max_size=2),
).map("".join)


@given(st.lists(padded, max_size=30))
def test_strings_in_numeric_columns(values: list[str]) -> None:
    for ctype in ("int", "float", "bool"):
        expected = canonical(values, pl.String, ctype)
        got = [to_number(v, boolean=ctype == "bool") for v in values]
        assert got == expected, ctype


@given(st.lists(st.floats(), max_size=30), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=30))
def test_numbers_in_numeric_and_string_columns(floats: list[float], ints: list[int]) -> None:
    for values, dtype in ((floats, pl.Float64), (ints, pl.Int64)):
        for ctype in ("float", "bool"):
            assert [to_number(v, boolean=ctype == "bool") for v in values] == canonical(
                values, dtype, ctype
            )
        assert [to_text(v) for v in values] == canonical(values, dtype, "string")


def test_float_text_edges() -> None:
    values = [0.0, -0.0, 1e-5, 9.999999999999999e-06, 1e-4, 1e16, 9999999999999998.0, 5e-324]
    values += [1.7976931348623157e308, math.inf, -math.inf, math.nan, 0.1, 1 / 3, -2.5e-5]
    assert [to_text(v) for v in values] == canonical(values, pl.Float64, "string")


def test_booleans_and_wrong_types() -> None:
    assert [to_number(v, boolean=False) for v in (True, False)] == canonical(
        [True, False], pl.Boolean, "int"
    )
    assert [to_text(v) for v in (True, False)] == canonical([True, False], pl.Boolean, "string")
    # a column of dates, lists or structs cannot be numeric: all missing
    for value in (dt.date(2024, 1, 2), dt.datetime(2024, 1, 2), [1, 2], {"a": 1}, object()):
        assert to_number(value, boolean=False) is None
    for value in ([1], {"a": 1}, object()):
        assert to_text(value) is None
    for value in (1, 2.5, True, [1], None):
        assert to_timestamp(value) is None
    assert to_number(2**64, boolean=False) == float(2**64)  # Polars: Int128, cast to Float64
    assert to_number(10**400, boolean=False) is None


naive = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31))
fixed_zone = st.timedeltas(
    -dt.timedelta(hours=23, minutes=59, seconds=59), dt.timedelta(hours=23, minutes=59, seconds=59)
).map(dt.timezone)


@given(st.lists(naive, max_size=20), st.lists(st.dates(), max_size=20))
def test_naive_datetimes_and_dates(datetimes: list[dt.datetime], dates: list[dt.date]) -> None:
    for values, dtype in ((datetimes, pl.Datetime("us")), (dates, pl.Date)):
        assert [to_timestamp(v) for v in values] == canonical(values, dtype, "datetime")
        assert [to_text(v) for v in values] == canonical(values, dtype, "string")


@given(st.datetimes(timezones=fixed_zone))
def test_fixed_offset_datetimes(value: dt.datetime) -> None:
    # Polars stores them in UTC, shifting by the offset truncated to whole seconds
    assert [to_timestamp(value)] == canonical([value], None, "datetime")
    assert [to_text(value)] == canonical([value], None, "string")


ZONES = ["America/New_York", "Europe/Paris", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns"]


@given(
    st.datetimes(
        dt.datetime(1850, 1, 1),
        dt.datetime(2037, 12, 31),
        timezones=st.sampled_from(ZONES).map(ZoneInfo),
        allow_imaginary=False,
    )
)
def test_named_zone_datetimes(value: dt.datetime) -> None:
    # Named zones keep their wall clock (offsets with seconds before ~1900 print rounded to
    # minutes). Compared while Python's and Polars' zone databases agree (to 2037).
    assert [to_timestamp(value)] == canonical([value], None, "datetime")
    assert [to_text(value)] == canonical([value], None, "string")


@pytest.mark.parametrize(
    "text",
    [" 2024-01-02 ", "\x1c2024-01-02", "2024-01-02\u3000", "2024-01-02T03:04:05Z\n", "x", ""],
)
def test_timestamp_strings_are_stripped_like_polars(text: str) -> None:
    assert [to_timestamp(text)] == canonical([text], pl.String, "datetime")
