"""Row and column rules, the report, and the rule that nothing is dropped silently."""

from __future__ import annotations

import itertools
import json
import re

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.config.spec import ColumnSpec
from forgeml.data import BadLine, Batch, Validator
from forgeml.errors import ConfigError, DataError, DataSourceError


def run(
    columns: dict[str, ColumnSpec], *batches: pl.DataFrame, target: str | None = None, bad_lines=()
):
    validator = Validator(columns, target=target, row_index=True)
    valid, quarantined, offset = [], [], 0
    for i, frame in enumerate(batches):
        batch = Batch(frame, offset, list(bad_lines) if i == len(batches) - 1 else [])
        v, q = validator.validate(batch)
        valid.append(v)
        quarantined.append(q)
        offset += frame.height
    # Batches before the first row come back uncast (the schema is not settled yet).
    typed = [v for v in valid if v.height] or valid[-1:]
    return pl.concat(typed), pl.concat(quarantined), validator.finish()


def test_each_row_rule_has_a_code_and_a_message() -> None:
    frame = pl.DataFrame(
        {
            "id": ["1", "2", "2", "3", "4", "5", "6"],
            "age": ["30", "abc", "40", "-3", "200", None, "50"],
            "plan": ["free", "pro", "gold", "free", "free", "free", None],
            "email": ["a@x.io", "b@x.io", "c@x.io", "bad", "d@x.io", "e@x.io", "f@x.io"],
            "y": ["1", "0", "1", "0", "1", "0", None],
        }
    )
    columns = {
        "id": ColumnSpec(type="int", unique=True),
        "age": ColumnSpec(type="int", min=0, max=120, not_null=True),
        "plan": ColumnSpec(allowed=["free", "pro"]),
        "email": ColumnSpec(regex=r"[^@]+@[^@]+\.[a-z]+"),
    }
    valid, quarantined, report = run(columns, frame, target="y")
    assert valid["_row"].to_list() == [0]
    assert valid.row(0) == (0, 1, 30, "free", "a@x.io", 1)
    assert dict(zip(quarantined["_row"], quarantined["reason"], strict=True)) == {
        1: "age: 'abc' is not a valid int",
        2: "id: '2' is a duplicate; plan: 'gold' is not one of: free, pro",
        3: "age: -3 is below min 0; email: 'bad' does not match '[^@]+@[^@]+\\\\.[a-z]+'",
        4: "age: 200 is above max 120",
        5: "age is null",
        6: "target 'y' is null",
    }
    assert report.reasons == {
        "not_null:age": 1,
        "range:age": 2,
        "allowed:plan": 1,
        "regex:email": 1,
        "target_null:y": 1,
        "type:age": 1,
        "unique:id": 1,
    }
    assert report.examples["range:age"] == ["age: -3 is below min 0", "age: 200 is above max 120"]
    # Bad values survive in the quarantine exactly as read.
    assert quarantined.filter(pl.col("_row") == 1)["age"].item() == "abc"


def test_unique_holds_across_batches_and_the_first_occurrence_wins() -> None:
    first = pl.DataFrame({"k": [1, 2, None]})
    second = pl.DataFrame({"k": [3, 1, None, 3]})
    valid, quarantined, report = run({"k": ColumnSpec(unique=True)}, first, second)
    assert valid["_row"].to_list() == [0, 1, 2, 3, 5]
    assert quarantined["_row"].to_list() == [4, 6]
    assert report.reasons == {"unique:k": 2}


def test_allowed_values_from_yaml_are_typed() -> None:
    # YAML gives 1.0 for "1.0" and True for "true"; membership is tested on typed values.
    frame = pl.DataFrame({"n": ["1", "2", "3"], "b": ["true", "no", "1"], "s": ["True", "x", "1"]})
    columns = {
        "n": ColumnSpec(type="int", allowed=[1.0, 2]),
        "b": ColumnSpec(type="bool", allowed=[True]),
        "s": ColumnSpec(type="string", allowed=[True, 1]),
    }
    _, quarantined, report = run(columns, frame)
    assert report.reasons == {"allowed:n": 1, "allowed:b": 1, "allowed:s": 2}
    assert sorted(quarantined["_row"].to_list()) == [0, 1, 2]


def test_unreadable_lines_are_quarantined_with_their_text() -> None:
    bad = [BadLine(7, "1,2,3,4", "expected 2 fields, found 4")]
    valid, quarantined, report = run({}, pl.DataFrame({"a": ["1"], "b": ["2"]}), bad_lines=bad)
    assert valid.height == 1
    assert quarantined.select("_row", "_line", "_raw", "reason").rows() == [
        (None, 7, "1,2,3,4", "unreadable line: expected 2 fields, found 4")
    ]
    assert (report.n_input, report.n_valid, report.n_quarantined, report.n_unreadable) == (
        2,
        1,
        1,
        1,
    )
    assert report.reasons == {"unreadable_line": 1}
    assert report.examples["unreadable_line"] == ["line 7: expected 2 fields, found 4"]


def test_column_rules_warnings_and_summaries() -> None:
    frame = pl.DataFrame(
        {"a": [1, None, None, 4], "gone": [None] * 4, "y": [1, 2, 3, 4]},
        schema_overrides={"gone": pl.Float64},
    )
    columns = {"a": ColumnSpec(max_null_fraction=0.25)}
    _, _, report = run(columns, frame, target="y")
    assert report.column_errors == [
        "column 'a' is 50.0% null, more than its max_null_fraction of 25.0%"
    ]
    assert report.warnings == ["column 'gone' is entirely null; it will not be used as a feature"]
    assert report.columns["a"].null_fraction == 0.5
    assert report.columns["a"].n_unique == 2
    assert report.column_types == {"a": "int", "gone": "float", "y": "int"}
    assert report.failure(max_bad_fraction=1.0) == report.column_errors[0]
    json.dumps(report.to_dict())


def test_rules_that_cannot_apply_are_config_errors() -> None:
    frame = pl.DataFrame({"s": ["a"], "n": [1]})
    with pytest.raises(
        ConfigError, match=r"^columns\.s: min/max need type int or float, not 'string'$"
    ):
        Validator({"s": ColumnSpec(type="string", min=1)}).validate(Batch(frame))
    with pytest.raises(ConfigError, match=r"^columns\.s\.regex: '\(\?=a\)a' is not supported"):
        Validator({"s": ColumnSpec(regex="(?=a)a")}).validate(Batch(frame))
    with pytest.raises(ConfigError, match=r"^columns\.n\.allowed: 'x' is not a valid int$"):
        Validator({"n": ColumnSpec(type="int", allowed=["x"])}).validate(Batch(frame))


def test_structural_problems() -> None:
    validator = Validator({}, target="churned", source="t.csv")
    with pytest.raises(
        ConfigError,
        match=r"^target column 'churned' not found in t\.csv; columns are: id, churn \(did you mean 'churn'\?\)$",
    ):
        validator.validate(Batch(pl.DataFrame({"id": [1], "churn": [1]})))
    validator = Validator({})
    validator.validate(Batch(pl.DataFrame({"a": [1]})))
    with pytest.raises(DataSourceError, match="columns of the data changed while reading"):
        validator.validate(Batch(pl.DataFrame({"b": [1]}), 1))
    with pytest.raises(DataError, match="column named '_row'"):
        Validator({}, row_index=True).validate(Batch(pl.DataFrame({"_row": [1]})))


def test_real_data_counts_match_an_independent_count(flights_sample: pl.DataFrame) -> None:
    columns = {
        "dep_time": ColumnSpec(not_null=True),
        "month": ColumnSpec(allowed=list(range(1, 7))),
        "air_time": ColumnSpec(min=30, max=600),
        "carrier": ColumnSpec(regex="[A-Z0-9]{2}"),
    }
    chunks = [flights_sample.slice(i, 4_000) for i in range(0, flights_sample.height, 4_000)]
    valid, quarantined, report = run(columns, *chunks, target="late")
    f = flights_sample
    expected = {
        "not_null:dep_time": f["dep_time"].null_count(),
        "allowed:month": int((f["month"] > 6).sum()),
        "range:air_time": int(((f["air_time"] < 30) | (f["air_time"] > 600)).sum()),
        "target_null:late": f["late"].null_count(),
    }
    assert report.reasons == {
        k: v for k, v in sorted(expected.items(), key=lambda kv: (-kv[1], kv[0])) if v
    }
    assert report.n_valid + report.n_quarantined == report.n_input == f.height
    assert set(valid["_row"]) | set(quarantined["_row"]) == set(range(f.height))
    assert valid.schema["dep_time"] == pl.Float64 and valid.schema["time_hour"] == pl.Datetime("us")


# --- nothing is dropped silently, whatever the data, rules and batch boundaries -----


@st.composite
def cases(draw):
    n = draw(st.integers(0, 40))
    ints = st.one_of(st.none(), st.integers(-5, 5))
    texts = st.one_of(st.none(), st.sampled_from(["x", "y", "z", "xy", ""]))
    raw = st.one_of(st.none(), st.sampled_from(["1", "2", "-4", "junk", " 3 ", "2.5"]))
    frame = pl.DataFrame(
        {
            "a": draw(st.lists(ints, min_size=n, max_size=n)),
            "s": draw(st.lists(texts, min_size=n, max_size=n)),
            "t": draw(st.lists(raw, min_size=n, max_size=n)),
        },
        schema={"a": pl.Int64, "s": pl.String, "t": pl.String},
    )
    low = draw(st.one_of(st.none(), st.integers(-5, 5)))
    columns = {
        "a": ColumnSpec(
            not_null=draw(st.booleans()),
            unique=draw(st.booleans()),
            min=low,
            max=draw(st.one_of(st.none(), st.integers(low if low is not None else -5, 5))),
        ),
        "s": ColumnSpec(
            allowed=draw(
                st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z", "xy"]), min_size=1))
            ),
            regex=draw(st.one_of(st.none(), st.just("x+"))),
        ),
        "t": ColumnSpec(type="int", min=draw(st.one_of(st.none(), st.just(0)))),
    }
    target = draw(st.sampled_from([None, "s", "a"]))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return frame, columns, target, cuts


def oracle(
    frame: pl.DataFrame, columns: dict[str, ColumnSpec], target: str | None
) -> dict[str, set[int]]:
    """What each rule must catch, computed on the whole frame at once."""
    rows = pl.Series(range(frame.height))
    t = frame["t"].str.strip_chars().cast(pl.Int64, strict=False)
    a, s, spec_a, spec_s = frame["a"], frame["s"], columns["a"], columns["s"]
    masks = {
        "type:t": frame["t"].is_not_null() & t.is_null(),
        "range:t": (t < columns["t"].min) if columns["t"].min is not None else None,
        "not_null:a": a.is_null() if spec_a.not_null and target != "a" else None,
        "target_null:a": a.is_null() if target == "a" else None,
        "target_null:s": s.is_null() if target == "s" else None,
        "unique:a": (~a.is_first_distinct() & a.is_not_null()) if spec_a.unique else None,
        "range:a": (
            (a < (spec_a.min if spec_a.min is not None else -99))
            | (a > (spec_a.max if spec_a.max is not None else 99))
        )
        if spec_a.min is not None or spec_a.max is not None
        else None,
        "allowed:s": (s.is_not_null() & ~s.is_in(spec_s.allowed)) if spec_s.allowed else None,
        "regex:s": (s.is_not_null() & ~s.str.contains("^(?:x+)$")) if spec_s.regex else None,
    }
    return {
        code: set(rows.filter(m.fill_null(False)))
        for code, m in masks.items()
        if m is not None and m.fill_null(False).any()
    }


@given(cases())
def test_every_input_row_is_either_valid_or_quarantined_exactly_once(case) -> None:
    frame, columns, target, cuts = case
    bounds = [0, *cuts, frame.height]
    chunks = [frame.slice(lo, hi - lo) for lo, hi in itertools.pairwise(bounds)]
    bad = [BadLine(99, "x,y", "expected 3 fields, found 2")]
    valid, quarantined, report = run(columns, *chunks, target=target, bad_lines=bad)
    assert report.n_input == frame.height + 1
    assert report.n_valid + report.n_quarantined == report.n_input
    assert valid.height == report.n_valid and quarantined.height == report.n_quarantined
    rows = valid["_row"].to_list() + quarantined["_row"].drop_nulls().to_list()
    assert sorted(rows) == list(range(frame.height))  # each row exactly once
    expected = oracle(frame, columns, target)
    assert set(quarantined["_row"].drop_nulls()) == set().union(*expected.values())
    assert {code: n for code, n in report.reasons.items() if code != "unreadable_line"} == {
        code: len(found) for code, found in expected.items()
    }
    for row, reason in zip(quarantined["_row"], quarantined["reason"], strict=True):
        if row is not None:
            codes = {code for code, found in expected.items() if row in found}
            assert len(reason.split("; ")) == len(codes), reason
    # Valid rows come out with their declared types and their original values.
    assert valid.schema["t"] == (pl.Int64 if frame.height else pl.String)
    original = frame.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    joined = valid.join(original, on="_row", suffix="_in")
    assert joined["a"].equals(joined["a_in"], check_names=False)
    assert re.fullmatch(r"[0-9 -]*", "".join(joined["t_in"].drop_nulls()))
