"""Infer column types (and the task) from a frame.

Typed frames (Parquet, SQL, DataFrames) map their dtypes; string columns (every CSV
column) are typed by their content, when at least 99% of the non-null values agree (the
rest then fail the type rule and are quarantined): ``int`` (no leading zeros, so ``"02134"`` stays a
string), ``float``, ``bool`` (``true``/``false`` in any case), ``datetime`` (ISO dates and
times). Strings that are none of these become ``text`` (long free text), ``id`` (unique
per row) or ``categorical``/``string`` by cardinality. Declared types always win, and
declared rules are kept.

>>> frame = pl.DataFrame({
...     "user_id": ["u1", "u2", "u3", "u4"],
...     "age": ["31", "45", None, "27"],
...     "score": ["0.5", "1e3", "2", "-1"],
...     "joined": ["2024-01-05", "2024-02-01", "2023-12-31", None],
...     "plan": ["free", "pro", "free", "free"],
... })
>>> {name: spec.type for name, spec in infer_schema(frame, target="plan").items()}
{'user_id': 'id', 'age': 'int', 'score': 'float', 'joined': 'datetime', 'plan': 'categorical'}
>>> infer_task(frame, "plan")
'classification'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

import polars as pl

from forgeml.config.spec import ColumnSpec, ColumnType, TaskKind
from forgeml.data.casting import cast_column
from forgeml.errors import ConfigError, DataError

__all__ = ["column_missing", "infer_column_type", "infer_schema", "infer_task"]

# Names of identifier columns; row labels exported by R and pandas (rownames, index,
# "Unnamed: 0") count too: a unique integer under such a name is never a feature.
_ID_NAME = re.compile(
    r"^(id|uuid|guid|rownames|row_?names|index|row_?id|unnamed: ?0)$|_(id|uuid|guid)$|[a-z0-9](Id|ID)$",
    re.IGNORECASE,
)
_INT = r"^[+-]?(0|[1-9][0-9]*)$"
_FLOAT = r"(?i)^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(inf|infinity|nan)$"
_LEADING_ZERO = r"^[+-]?0[0-9]"
_CLASSIFICATION_MAX_DISTINCT = 20
_CATEGORICAL_MAX_DISTINCT = 1000
_TEXT_MIN_MEAN_LENGTH = 40
_UNIQUE_ID_MIN_ROWS = 20
# A few stray values ("n/a", "?") do not make a numeric column text: those rows fail the
# type rule and are quarantined with a reason.
_MIN_PARSED_SHARE = 0.99


def column_missing(
    name: str, columns: Iterable[str], source: str, *, what: str = "column"
) -> ConfigError:
    """The error for a column the spec names but the data lacks, with the columns that
    are there and a guess. A :class:`ConfigError` (exit code 2): the fix is in the spec.

    >>> str(column_missing("lable", ["label", "x"], "t.csv", what="target column"))
    "target column 'lable' not found in t.csv; columns are: label, x (did you mean 'label'?)"
    """
    names = list(columns)
    close = [n for n in names if n.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, names, n=1)
    guess = f" (did you mean '{close[0]}'?)" if close else ""
    shown = ", ".join(names[:50]) + (f", ... ({len(names)} in all)" if len(names) > 50 else "")
    return ConfigError(f"{what} '{name}' not found in {source}; columns are: {shown}{guess}")


def infer_schema(
    frame: pl.DataFrame,
    *,
    target: str | None = None,
    declared: Mapping[str, ColumnSpec] | None = None,
    source: str = "the data",
) -> dict[str, ColumnSpec]:
    """A :class:`ColumnSpec` with a ``type`` for every column of ``frame``, in its order.

    Declared columns keep their rules and, when they declare one, their type. A declared
    column or ``target`` that is not in the frame is a :class:`ConfigError`.

    >>> schema = infer_schema(pl.DataFrame({"n": ["1", "2"]}), declared={"n": ColumnSpec(min=0)})
    >>> schema["n"].type, schema["n"].min
    ('int', 0.0)
    """
    declared = dict(declared or {})
    for name in [*declared, *([target] if target else [])]:
        if name not in frame.columns:
            what = "target column" if name == target else "declared column"
            raise column_missing(name, frame.columns, source, what=what)
    schema: dict[str, ColumnSpec] = {}
    for name in frame.columns:
        spec = declared.get(name, ColumnSpec())
        if spec.type is None:
            inferred = infer_column_type(frame[name], is_target=name == target)
            if (spec.min is not None or spec.max is not None) and inferred not in ("int", "float"):
                inferred = "float"  # a range rule says the column is numeric
            spec = spec.model_copy(update={"type": inferred})
        schema[name] = spec
    return schema


def infer_column_type(series: pl.Series, *, is_target: bool = False) -> ColumnType:
    """The :data:`ColumnType` of one column (see the module docstring for the rules)."""
    dtype = series.dtype
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "id" if not is_target and _looks_like_id(series) else "int"
    if dtype.is_float() or dtype.is_decimal() or dtype == pl.Duration:
        return "float"
    if dtype in (pl.Date, pl.Datetime):
        return "datetime"
    if dtype in (pl.Categorical, pl.Enum):
        return "categorical"
    if dtype == pl.String:
        return _infer_from_text(series, is_target=is_target)
    return "string"


def _looks_like_id(series: pl.Series) -> bool:
    values = series.drop_nulls()
    return (
        _ID_NAME.search(series.name) is not None
        and values.len() > 0
        and values.n_unique() == values.len()
    )


def _infer_from_text(series: pl.Series, *, is_target: bool) -> ColumnType:
    values = series.drop_nulls().str.strip_chars()
    values = values.filter(values != "")
    n = values.len()
    if n == 0:
        return "string"
    if _share(values.str.to_lowercase().is_in(["true", "false"])) >= _MIN_PARSED_SHARE:
        return "bool"
    if not values.str.contains(_LEADING_ZERO).any():
        is_number = values.str.contains(_FLOAT)
        if _share(is_number) >= _MIN_PARSED_SHARE:
            numbers = values.filter(is_number)
            whole = numbers.str.contains(_INT).all()
            if whole and numbers.cast(pl.Int64, strict=False).null_count() == 0:
                return "id" if not is_target and _looks_like_id(series) else "int"
            return "float"
    if values.str.contains(r"[-/:]").all() and _parsed_share(values) >= _MIN_PARSED_SHARE:
        return "datetime"
    n_unique = values.n_unique()
    if is_target:
        return "categorical"
    if _looks_like_text(values, n_unique):
        return "text"
    if n_unique == n and (_ID_NAME.search(series.name) or n >= _UNIQUE_ID_MIN_ROWS):
        return "id"
    if n_unique <= min(_CATEGORICAL_MAX_DISTINCT, max(_CLASSIFICATION_MAX_DISTINCT, n // 5)):
        return "categorical"
    return "string"


def _share(mask: pl.Series) -> float:
    return int(mask.sum()) / mask.len() if mask.len() else 0.0


def _parsed_share(values: pl.Series) -> float:
    return 1.0 - cast_column(values, "datetime").null_count() / values.len()


def _looks_like_text(values: pl.Series, n_unique: int) -> bool:
    mean_length = values.str.len_chars().mean()
    with_space = values.str.contains(" ", literal=True).mean()
    return (
        isinstance(mean_length, float)
        and mean_length > _TEXT_MIN_MEAN_LENGTH
        and isinstance(with_space, float)
        and with_space >= 0.5
        and n_unique >= 0.5 * values.len()
    )


def infer_task(frame: pl.DataFrame, target: str) -> TaskKind:
    """``classification`` or ``regression`` for ``target``, as ``forgeml init`` proposes.

    Booleans, strings and integers or integral floats with at most 20 distinct values are
    classes; other numbers are regression targets.

    >>> infer_task(pl.DataFrame({"y": [1.5, 2.25, 3.0]}), "y")
    'regression'
    """
    if target not in frame.columns:
        raise column_missing(target, frame.columns, "the data", what="target column")
    series = frame[target]
    values = series.drop_nulls()
    if values.len() == 0:
        raise DataError(f"target column '{target}' is entirely null")
    kind = infer_column_type(series, is_target=True)
    if kind in ("bool", "categorical", "string"):
        return "classification"
    if kind in ("datetime", "text", "id"):
        raise DataError(
            f"target column '{target}' holds {kind} values; forgeml predicts classes or numbers"
        )
    numbers = values.cast(pl.Float64, strict=False) if values.dtype == pl.String else values
    numbers = numbers.cast(pl.Float64)
    integral = bool((numbers == numbers.floor()).all())
    few = numbers.n_unique() <= _CLASSIFICATION_MAX_DISTINCT
    return "classification" if integral and few else "regression"
