"""ISO timestamp parsing and calendar fields in plain Python equal Polars' (chrono's)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.features.datetime_parts import PARTS, ROW_PARTS
from forgeml.features.inputs import _parse_iso
from forgeml.features.timestamps import (
    MAX_YEAR,
    MIN_YEAR,
    WHITESPACE,
    calendar,
    days_from_civil,
    parse_iso,
)


def polars_parse(texts: list[str]) -> list[int | None]:
    frame = pl.DataFrame({"v": pl.Series(texts, dtype=pl.String)})
    return frame.select(_parse_iso(pl.col("v")).dt.epoch("us")).get_column("v").to_list()


def ours(texts: list[str]) -> list[int | None]:
    return [parse_iso(t.strip(WHITESPACE)) for t in texts]


# Near-ISO strings: the right shape most of the time, with the variations chrono is lenient
# (or strict) about: digit counts, signs, whitespace, separators, fractions, offsets.
_space = st.sampled_from(["", "", "", "", " ", "  ", "\t", "\u3000", "\x1c", "\u200b"])


def _digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=low, max_size=high)


_two = st.one_of(
    st.integers(0, 61).map(lambda v: f"{v:02d}"), st.integers(0, 9).map(str), _digits(0, 3)
)
_year = st.one_of(
    st.integers(1, 2100).map(lambda v: f"{v:04d}"),
    st.tuples(st.sampled_from(["+", "-", ""]), _digits(1, 8)).map("".join),
)
_sep = st.sampled_from(["T", "T", " ", "", "  ", "t", "\u3000", "\x1c", "_"])
_zone = st.one_of(
    st.sampled_from(["Z", "z", "UTC", "", "+", "-"]),
    st.tuples(
        st.sampled_from(["+", "-"]),
        _two,
        st.sampled_from([":", "", "::", " ", ": "]),
        st.one_of(_two, st.just("")),
    ).map("".join),
)


@st.composite
def near_iso(draw: st.DrawFn) -> str:
    date_sep = st.sampled_from(["-"] * 12 + ["/", ""])
    text = draw(_space) + draw(_year) + draw(date_sep) + draw(_space) + draw(_two)
    text += draw(date_sep) + draw(_space) + draw(_two)
    if draw(st.booleans()):
        text += draw(_sep) + draw(_space) + draw(_two) + draw(st.sampled_from([":"] * 9 + [""]))
        text += draw(_space) + draw(_two)
        if draw(st.booleans()):
            text += ":" + draw(_space) + draw(_two)
            if draw(st.booleans()):
                text += draw(st.sampled_from([".", ".", ","])) + draw(_digits(0, 12))
        if draw(st.booleans()):
            text += draw(_space) + draw(_zone)
    return text + draw(_space)


@given(st.lists(near_iso(), min_size=1, max_size=40))
def test_parse_iso_matches_polars(texts: list[str]) -> None:
    assert ours(texts) == polars_parse(texts)


EDGES = [
    "2024-01-02", "2024-1-2", "24-01-02", "02024-01-02", "+2024-01-02", "-2024-01-02",
    "+002024-01-02", "12024-01-02", "+12024-01-02", "2024-01- 2", " 2024-01-02",
    "2024-01-02T03:04", "2024-01-02 3:04", "2024-01-02T3:4", "2024-01-0203:04:05",
    "2024-01-02  03:04:05", "2024-01-02T03:04:05.", "2024-01-02T03:04:05.1",
    "2024-01-02T03:04:05.123456789", "2024-01-02T03:04:05.12345678901234",
    "1969-12-31T23:59:59.9999995", "2024-01-02T03:04:05,123", "2024-01-02t03:04:05",
    "2024-01-02T03:04:05Z", "2024-01-02T03:04:05z", "2024-01-02T03:04Z", "2024-01-02Z",
    "2024-01-02T03:04:05+01:00", "2024-01-02T03:04:05+0100", "2024-01-02T03:04:05+01",
    "2024-01-02T03:04:05 +01:00", "2024-01-02T03:04:05  +01:00", "2024-01-02T03:04:05+1:00",
    "2024-01-02T03:04:05+01::00", "2024-01-02T03:04:05+01 00", "2024-01-02T03:04:05+01:",
    "2024-01-02T03:04:05+01:0", "2024-01-02T03:04:05+010", "2024-01-02T03:04:05+01:000",
    "2024-01-02T03:04:05+24:00", "2024-01-02T03:04:05+23:59", "2024-01-02T03:04:05-00:00",
    "2024-01-02T03:04:05+00:60", "2024-01-02T03:04:05.+01:00", "2024-01-02T03:04:05 .5",
    "2024-01-02 03:04:05.5 Z", "2024-01-02T03:04:60", "2024-12-31T23:59:60",
    "2024-06-30T23:59:60.5+01:00", "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29",
    "2024-13-01", "2024-00-10", "2024-01-00", "2024-01-02T24:00", "2024-01-02T23:60",
    "0000-01-01", "+0-01-01", "-1-01-01", "9999-12-31T23:59:59.999999",
    f"+{MAX_YEAR}-12-31T23:59:59.999999", f"+{MAX_YEAR + 1}-01-01", f"{MIN_YEAR}-01-01",
    f"{MIN_YEAR - 1}-01-01", f"+{MAX_YEAR}-12-31T23:00:00-05:00",
    f"{MIN_YEAR}-01-01T01:00:00+05:00", "+9223372036854775807-01-01",
    "+99999999999999999999-01-01", "+" + "0" * 30 + "2024-01-02", "2024/01/02", "20240102",
]  # fmt: skip


@pytest.mark.parametrize("text", EDGES)
def test_parse_iso_edges(text: str) -> None:
    assert ours([text]) == polars_parse([text])


def test_days_from_civil_agrees_with_python() -> None:
    for ordinal in range(1, dt.date.max.toordinal(), 997):
        day = dt.date.fromordinal(ordinal)
        assert days_from_civil(day.year, day.month, day.day) == ordinal - 719_163


@given(
    st.lists(
        st.integers(
            days_from_civil(MIN_YEAR, 1, 1) * 86_400_000_000,
            days_from_civil(MAX_YEAR, 12, 31) * 86_400_000_000,
        ),
        max_size=40,
    )
)
def test_calendar_parts_match_polars(micros: list[int]) -> None:
    frame = pl.DataFrame({"t": pl.Series(micros, dtype=pl.Int64).cast(pl.Datetime("us"))})
    expected = frame.select(PARTS[p](pl.col("t")).cast(pl.Float64).alias(p) for p in PARTS)
    for us, row in zip(micros, expected.rows(), strict=True):
        fields = calendar(us)
        assert tuple(ROW_PARTS[p](us, fields) for p in PARTS) == row
