"""Convert the tables users hand to forgeml into the one internal frame type, Polars.

>>> to_polars({"a": [1, 2], "b": ["x", None]}).shape
(2, 2)
>>> to_polars([1, 2])
Traceback (most recent call last):
...
forgeml.errors.DataSourceError: cannot use a 'list' as a table; pass a pandas, Polars or Arrow table or a dict of lists
"""

from __future__ import annotations

import sys
from typing import Any

import polars as pl
import pyarrow as pa

from forgeml.errors import DataSourceError

__all__ = ["to_polars"]


def to_polars(obj: object) -> pl.DataFrame:
    """Return ``obj`` as a :class:`polars.DataFrame`.

    Accepts a Polars DataFrame (returned as is) or LazyFrame (collected), a pandas
    DataFrame (its index is dropped), a pyarrow Table or RecordBatch, and a dict of
    equal-length lists. Anything else raises :class:`DataSourceError` naming the type.

    >>> import pyarrow as pa
    >>> to_polars(pa.table({"x": [1.5, None]})).dtypes
    [Float64]
    """
    if isinstance(obj, pl.DataFrame):
        return obj
    if isinstance(obj, pl.LazyFrame):
        return obj.collect()
    if isinstance(obj, pa.Table | pa.RecordBatch):
        return _checked(lambda: pl.from_arrow(obj), obj)
    if isinstance(obj, dict):
        return _checked(lambda: pl.DataFrame(obj), obj)
    # pandas is only consulted when the caller already imported it: an object cannot be
    # a pandas DataFrame otherwise, and importing pandas costs a third of a second.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(obj, pandas.DataFrame):
        frame = obj.rename(columns=str) if not all(isinstance(c, str) for c in obj.columns) else obj
        return _checked(lambda: pl.from_pandas(frame), obj)
    raise DataSourceError(
        f"cannot use a '{type(obj).__name__}' as a table; "
        "pass a pandas, Polars or Arrow table or a dict of lists"
    )


def _checked(convert: Any, obj: object) -> pl.DataFrame:
    try:
        result = convert()
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataSourceError(
            f"cannot convert the '{type(obj).__name__}' to a table: {first}"
        ) from exc
    if not isinstance(result, pl.DataFrame):  # from_arrow of a chunked array gives a Series
        raise DataSourceError(f"cannot convert the '{type(obj).__name__}' to a table")
    return result
