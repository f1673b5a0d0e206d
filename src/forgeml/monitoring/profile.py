"""A compact reference profile of a table, so drift checks never re-read the training set.

Per numeric column: 101 quantiles (the reference CDF for KS), bin edges at the deciles of
the reference and each bin's share (for PSI), and the missing share. Per categorical
column: the shares of its ``top_k`` most frequent values, of everything else (``__other__``)
and of missing values. A profile is a few kilobytes of JSON per column, whatever the rows.

>>> import polars as pl
>>> frame = pl.DataFrame({"age": [20.0, 30.0, 40.0, None], "plan": ["a", "b", "a", "a"]})
>>> profile = Profile.build(frame, {"age": "float", "plan": "categorical"})
>>> profile.columns["plan"].shares
{'a': 0.75, 'b': 0.25}
>>> Profile.from_dict(profile.to_dict()) == profile
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.errors import DataError

__all__ = ["MISSING", "OTHER", "CategoricalProfile", "NumericProfile", "Profile"]

PROFILE_FILE = "profile.json"  # the profile registered with every model
PREDICTION_COLUMN = "__prediction__"  # the model's scores, profiled like a numeric column
OTHER = "__other__"
MISSING = "__missing__"
NUMERIC = ("int", "float", "bool")
CATEGORICAL = ("string", "categorical")  # ids and free text have no useful distribution
_QUANTILES = [i / 100 for i in range(101)]


@dataclass(frozen=True)
class NumericProfile:
    n: int
    missing_share: float
    quantiles: list[float]  # at 0, 1, ..., 100 percent
    edges: list[float]  # inner bin edges (deciles, deduplicated)
    shares: list[float]  # per bin: (-inf, e0], (e0, e1], ..., (e_last, inf)
    kind: str = "numeric"


@dataclass(frozen=True)
class CategoricalProfile:
    n: int
    missing_share: float
    shares: dict[str, float]  # top values, OTHER when there are more
    kind: str = "categorical"


@dataclass(frozen=True)
class Profile:
    rows: int
    columns: dict[str, NumericProfile | CategoricalProfile] = field(default_factory=dict)

    @classmethod
    def build(
        cls, frame: Any, schema: Mapping[str, str], *, top_k: int = 50, bins: int = 10
    ) -> Profile:
        """Profile the ``schema`` columns of a Polars frame (other columns are ignored)."""
        import polars as pl

        if frame.height == 0:
            raise DataError("cannot profile an empty table")
        columns: dict[str, NumericProfile | CategoricalProfile] = {}
        for name, kind in schema.items():
            if name not in frame.columns:
                raise DataError(f"profile: column '{name}' is not in the table")
            series = frame.get_column(name)
            if kind in NUMERIC:
                columns[name] = _numeric(series.cast(pl.Float64, strict=False), bins)
            elif kind in CATEGORICAL:
                columns[name] = _categorical(series.cast(pl.String), top_k)
        return cls(frame.height, columns)

    def with_numeric(self, name: str, values: Any, *, bins: int = 10) -> Profile:
        """This profile plus one numeric column from an array (predictions, say)."""
        import numpy as np
        import polars as pl

        series = pl.Series(name, np.asarray(values, dtype=np.float64))
        return Profile(self.rows, {**self.columns, name: _numeric(series, bins)})

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": {k: asdict(v) for k, v in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        try:
            columns: dict[str, NumericProfile | CategoricalProfile] = {}
            for name, spec in data["columns"].items():
                if spec["kind"] == "numeric":
                    columns[name] = NumericProfile(**spec)
                else:
                    columns[name] = CategoricalProfile(**spec)
            return cls(int(data["rows"]), columns)
        except (KeyError, TypeError) as exc:
            raise DataError(f"invalid reference profile: {exc}") from exc


def _numeric(series: Any, bins: int) -> NumericProfile:
    import numpy as np

    n = series.len()
    values = series.drop_nulls().drop_nans().to_numpy()
    values = values[np.isfinite(values)]
    missing = 1.0 - values.size / n
    if values.size == 0:
        return NumericProfile(n, missing, [], [], [])
    quantiles = np.quantile(values, _QUANTILES).tolist()
    inner = np.unique(np.quantile(values, [i / bins for i in range(1, bins)]))
    counts = np.bincount(np.searchsorted(inner, values, side="left"), minlength=inner.size + 1)
    shares = (counts / values.size).tolist()
    return NumericProfile(n, missing, quantiles, inner.tolist(), shares)


def _categorical(series: Any, top_k: int) -> CategoricalProfile:
    """Shares of the ``top_k`` most frequent values (and OTHER for the rest).

    With more distinct values than ``top_k``, the values are chosen on every other row
    and their shares measured on the rows in between: shares measured on the rows that
    chose them are biased upwards (they are the top *because* they came out high in this
    sample), and every later window of the same data would look drifted. ``n`` is then
    the rows the shares come from, which the drift test weighs the reference by.
    """
    n = series.len()
    present = series.drop_nulls()
    missing = 1.0 - present.len() / n
    if present.len() == 0:
        return CategoricalProfile(n, missing, {})
    counts = present.value_counts(sort=True)
    names, freq = counts.columns[0], counts.columns[1]
    if counts.height <= top_k:
        shares = {
            str(k): v / present.len()
            for k, v in zip(counts[names].to_list(), counts[freq].to_list(), strict=True)
        }
        return CategoricalProfile(n, missing, shares)
    chooser, measured = present.gather_every(2), present.gather_every(2, offset=1)
    if measured.len() == 0:
        measured = chooser
    chosen = chooser.value_counts(sort=True).head(top_k)[names].to_list()
    found = dict(measured.value_counts().iter_rows())
    shares = {str(k): found.get(k, 0) / measured.len() for k in chosen}
    rest = 1.0 - sum(shares.values())
    if rest > 0:
        shares[OTHER] = rest
    return CategoricalProfile(measured.len() + (n - present.len()), missing, shares)
