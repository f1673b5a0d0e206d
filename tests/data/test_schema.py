"""Schema and task inference, on real data and on the edge cases that trip it up."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.config.spec import ColumnSpec, DataSpec
from forgeml.data import cast_to_schema, infer_schema, infer_task, open_source
from forgeml.data.casting import cast_column
from forgeml.errors import ConfigError, DataError


def types(schema: dict[str, ColumnSpec]) -> dict[str, str | None]:
    return {name: spec.type for name, spec in schema.items()}


def test_real_typed_frames(breast_cancer, wine, diabetes) -> None:
    schema = types(infer_schema(breast_cancer, target="diagnosis"))
    assert schema.pop("diagnosis") == "categorical"
    assert set(schema.values()) == {"float"}
    assert types(infer_schema(diabetes, target="progression"))["progression"] == "float"
    assert infer_task(breast_cancer, "diagnosis") == "classification"
    assert infer_task(wine, "cultivar") == "classification"
    assert infer_task(diabetes, "progression") == "regression"


def test_csv_text_infers_like_the_typed_table(flights_sample: pl.DataFrame, tmp_path: Path) -> None:
    """Reading a real table as text (CSV) and inferring from content agrees with its dtypes."""
    path = tmp_path / "flights.csv"
    flights_sample.write_csv(path)
    text = open_source(DataSpec(source=str(path))).head(20_000)
    assert set(text.dtypes) == {pl.String}
    typed = types(infer_schema(flights_sample, target="late"))
    assert types(infer_schema(text, target="late")) == typed
    assert typed["time_hour"] == "datetime"
    assert typed["carrier"] == "categorical"
    assert typed["dep_delay"] == "float"
    assert typed["distance"] == "int"
    assert infer_task(text, "late") == infer_task(flights_sample, "late") == "classification"
    assert infer_task(text, "arr_delay") == "regression"


def test_content_rules_for_strings() -> None:
    n = 30
    frame = pl.DataFrame(
        {
            "zip": ["02134", "10001"] * (n // 2),
            "flag": ["TRUE", "false"] * (n // 2),
            "when": ["2024-01-05", "2024-02-01 10:30:00"] * (n // 2),
            "review": [
                f"review number {i} says the product was fine and arrived on time" for i in range(n)
            ],
            "order_ref": [f"ORD-{i:05d}" for i in range(n)],
            "customerId": [str(1000 + i) for i in range(n)],
            "plan": ["free", "pro", "team"] * (n // 3),
            "mostly_int": [str(i % 10) for i in range(n - 1)] + ["n/a"],
            "empty": [None] * n,
        },
        schema_overrides={"empty": pl.String},
    )
    assert types(infer_schema(frame)) == {
        "zip": "categorical",  # leading zeros: a code, not a number
        "flag": "bool",
        "when": "datetime",
        "review": "text",
        "order_ref": "id",
        "customerId": "id",
        "plan": "categorical",
        "mostly_int": "categorical",  # 1 of 30 does not parse: too many for a number
        "empty": "string",
    }
    big = pl.DataFrame({"mostly_int": [str(i % 50) for i in range(200)] + ["n/a"]})
    assert types(infer_schema(big)) == {"mostly_int": "int"}  # 1 in 201: quarantined later


def test_declared_types_and_rules_win() -> None:
    frame = pl.DataFrame({"age": ["31", "45", "x"], "code": ["1", "2", "3"], "y": [0, 1, 0]})
    declared = {
        "code": ColumnSpec(type="categorical", not_null=True),
        "age": ColumnSpec(min=0, max=120),  # a range rule makes an untyped column numeric
    }
    schema = infer_schema(frame, target="y", declared=declared)
    assert types(schema) == {"age": "float", "code": "categorical", "y": "int"}
    assert schema["code"].not_null is True
    assert schema["age"].max == 120


def test_missing_columns_are_config_errors_with_a_guess() -> None:
    frame = pl.DataFrame({"label": [1], "amount": [2.0]})
    with pytest.raises(ConfigError) as info:
        infer_schema(frame, target="lable", source="t.csv")
    assert str(info.value) == (
        "target column 'lable' not found in t.csv; columns are: label, amount (did you mean 'label'?)"
    )
    with pytest.raises(ConfigError, match="declared column 'amonut' not found"):
        infer_schema(frame, declared={"amonut": ColumnSpec()})
    with pytest.raises(ConfigError, match="target column 'nope' not found"):
        infer_task(frame, "nope")


def test_task_inference_edge_cases() -> None:
    assert infer_task(pl.DataFrame({"y": ["0", "1", "1", None]}), "y") == "classification"
    assert (
        infer_task(pl.DataFrame({"y": [1.0, 0.0, float("nan"), 1.0]}).fill_nan(None), "y")
        == "classification"
    )
    assert infer_task(pl.DataFrame({"y": list(range(100))}), "y") == "regression"
    assert infer_task(pl.DataFrame({"y": [True, False]}), "y") == "classification"
    with pytest.raises(DataError, match="target column 'y' is entirely null"):
        infer_task(pl.DataFrame({"y": [None, None]}, schema={"y": pl.Float64}), "y")
    with pytest.raises(DataError, match="holds datetime values"):
        infer_task(pl.DataFrame({"y": ["2024-01-01", "2024-01-02"]}), "y")


@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=50))
def test_integers_written_as_text_come_back_exactly(values: list[int]) -> None:
    frame = pl.DataFrame({"n": [str(v) for v in values]})
    schema = infer_schema(frame)
    assert schema["n"].type == "int"
    cast, failed = cast_to_schema(frame, schema)
    assert cast["n"].to_list() == values
    assert not failed["n"].any()


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=50)
)
def test_floats_written_as_text_come_back_exactly(values: list[float]) -> None:
    text = pl.Series("x", [repr(v) for v in values])
    assert infer_schema(pl.DataFrame([text]))["x"].type in ("int", "float")
    back = cast_column(text, "float").to_list()
    assert all(
        math.isclose(a, b, rel_tol=0, abs_tol=0) or a == b
        for a, b in zip(back, values, strict=True)
    )
