"""Row rules: which rows of a batch break which declared rule, and why.

Each rule yields a :class:`Failure`: a reason code (``"range:age"``), a Boolean mask over
the batch, and a message expression evaluated only on failing rows. Codes, one per rule
and column: ``type:<col>`` (value does not cast to the declared type), ``not_null:<col>``,
``range:<col>`` (outside ``min``/``max``; numeric columns), ``allowed:<col>``,
``unique:<col>`` (a value seen in an earlier row, in this or any earlier batch: the first
occurrence is kept), ``regex:<col>`` (the whole value must match) and
``target_null:<target>``. A null value is never a failure of range, allowed, unique or
regex: only ``not_null`` (and the target rule) speak about nulls.

Rules are checked against the spec once, when the schema is known
(:func:`check_rules`), so a rule that cannot apply is a :class:`ConfigError`, not a
surprise halfway through a file.

>>> from forgeml.data.casting import cast_to_schema
>>> spec = {"age": ColumnSpec(type="int", min=0, max=120)}
>>> raw = pl.DataFrame({"age": ["30", "150", "x"]})
>>> cast, failed = cast_to_schema(raw, spec)
>>> [(f.code, f.mask.to_list()) for f in row_failures(raw, cast, failed, spec, None, UniqueState())]
[('type:age', [False, False, True]), ('range:age', [False, True, False])]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from forgeml.config.spec import ColumnSpec
from forgeml.data.casting import as_text, cast_column
from forgeml.errors import ConfigError

__all__ = ["Failure", "UniqueState", "check_rules", "row_failures"]

_SHOWN_CHARS = 60
_SHOWN_ALLOWED = 6


@dataclass(frozen=True)
class Failure:
    """Rows of a batch failing one rule: ``code``, ``mask`` and a message expression over
    the columns ``raw:<name>`` (input text) and ``cast:<name>`` (cast value)."""

    code: str
    mask: pl.Series
    message: pl.Expr


class UniqueState:
    """Values already seen in ``unique`` columns, across every batch of a run."""

    def __init__(self) -> None:
        self._seen: dict[str, pl.Series] = {}

    def duplicates(self, series: pl.Series) -> pl.Series:
        """True where a non-null value was seen before (earlier in ``series`` or earlier
        batches); every value of ``series`` counts as seen afterwards."""
        previous = self._seen.get(series.name)
        present = series.is_not_null()
        duplicate = ~series.is_first_distinct()
        if previous is not None:
            duplicate = duplicate | series.is_in(previous.implode())
        duplicate = duplicate & present
        new = series.filter(present & ~duplicate)
        self._seen[series.name] = new if previous is None else pl.concat([previous, new])
        return duplicate


def check_rules(schema: Mapping[str, ColumnSpec], target: str | None) -> None:
    """Raise :class:`ConfigError` for a declared rule that cannot apply to its column."""
    for name, spec in schema.items():
        where = f"columns.{name}"
        if (spec.min is not None or spec.max is not None) and spec.type not in ("int", "float"):
            raise ConfigError(f"{where}: min/max need type int or float, not '{spec.type}'")
        if spec.allowed is not None:
            _allowed_values(name, spec)
        if spec.regex is not None:
            try:
                pl.Series([""]).str.contains(spec.regex)
            except pl.exceptions.PolarsError as exc:
                raise ConfigError(
                    f"{where}.regex: {spec.regex!r} is not supported by the regex engine "
                    f"(no look-around or back-references): {str(exc).splitlines()[0]}"
                ) from exc


def _allowed_values(name: str, spec: ColumnSpec) -> pl.Series:
    """``spec.allowed`` cast to the column's dtype (YAML gives ``1.0`` for ``1``, ``True``
    for ``true``...), so membership is tested on typed values."""
    assert spec.allowed is not None and spec.type is not None
    text = [_rule_text(v) for v in spec.allowed]
    values = cast_column(pl.Series(name, text, dtype=pl.String), spec.type)
    bad = [t for t, v in zip(text, values.to_list(), strict=True) if v is None]
    if bad:
        raise ConfigError(f"columns.{name}.allowed: '{bad[0]}' is not a valid {spec.type}")
    return values


def _rule_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _range(name: str, spec: ColumnSpec, value: pl.Series) -> tuple[pl.Series, pl.Expr]:
    """Mask and message of the ``min``/``max`` rule."""
    c = f"cast:{name}"

    def says(text: str) -> pl.Expr:
        return pl.concat_str([pl.lit(f"{name}: "), _shown(c), pl.lit(text)])

    below = says(f" is below min {spec.min:g}") if spec.min is not None else None
    above = says(f" is above max {spec.max:g}") if spec.max is not None else None
    if spec.min is not None and spec.max is not None:
        mask = (value < spec.min) | (value > spec.max)
        return mask, pl.when(pl.col(c) < spec.min).then(below).otherwise(above)
    if spec.min is not None and below is not None:
        return value < spec.min, below
    assert spec.max is not None and above is not None
    return value > spec.max, above


def _shown(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).str.slice(0, _SHOWN_CHARS)


def _quoted(name: str, column: str, suffix: str) -> pl.Expr:
    return pl.concat_str([pl.lit(f"{name}: '"), _shown(column), pl.lit(f"' {suffix}")])


def row_failures(
    raw: pl.DataFrame,
    cast: pl.DataFrame,
    failed: pl.DataFrame,
    schema: Mapping[str, ColumnSpec],
    target: str | None,
    unique: UniqueState,
) -> list[Failure]:
    """Every rule failing on at least one row of the batch, in column order."""
    out: list[Failure] = []

    def add(code: str, mask: pl.Series, message: pl.Expr) -> None:
        mask = mask.fill_null(False)
        if mask.any():
            out.append(Failure(code, mask, message))

    for name, spec in schema.items():
        r, c = f"raw:{name}", f"cast:{name}"
        value = cast[name]
        if name in failed.columns:
            add(f"type:{name}", failed[name], _quoted(name, r, f"is not a valid {spec.type}"))
        if name == target:
            add(f"target_null:{name}", raw[name].is_null(), pl.lit(f"target '{name}' is null"))
        elif spec.not_null:
            add(f"not_null:{name}", raw[name].is_null(), pl.lit(f"{name} is null"))
        if spec.min is not None or spec.max is not None:
            add(f"range:{name}", *_range(name, spec, value))
        if spec.allowed is not None:
            allowed = _allowed_values(name, spec)
            listed = ", ".join(map(str, spec.allowed[:_SHOWN_ALLOWED]))
            listed += ", ..." if len(spec.allowed) > _SHOWN_ALLOWED else ""
            mask = value.is_not_null() & ~value.is_in(allowed.implode())
            add(f"allowed:{name}", mask, _quoted(name, c, f"is not one of: {listed}"))
        if spec.unique:
            add(f"unique:{name}", unique.duplicates(value), _quoted(name, c, "is a duplicate"))
        if spec.regex is not None:
            text = as_text(raw[name])
            mask = text.is_not_null() & ~text.str.contains(f"^(?:{spec.regex})$")
            add(f"regex:{name}", mask, _quoted(name, r, f"does not match {spec.regex!r}"))
    return out
