"""Request bodies built from a table of rows, in each of the server's protocols.

Bodies are encoded once, before the run: the load generator only writes prepared bytes.
Requests rotate through the rows (``batch`` rows per body, wrapping around at the end), so
consecutive requests differ and no response cache can answer them all.

>>> import json
>>> rows = {"age": [39, 50], "income": [1.5, float("nan")], "city": ["Oslo", None]}
>>> json.loads(encode_bodies(rows, "predict")[1])
{'records': [{'age': 50, 'income': None, 'city': None}]}
>>> json.loads(encode_bodies(rows, "mlflow", batch=2)[0])
{'dataframe_split': {'columns': ['age', 'income', 'city'], 'data': [[39, 1.5, 'Oslo'], [50, None, None]]}}
>>> body = json.loads(encode_bodies(rows, "v2", batch=3)[0])
>>> [(i["name"], i["datatype"], i["shape"], i["data"]) for i in body["inputs"]]
[('age', 'INT64', [3], [39, 50, 39]), ('income', 'FP64', [3], [1.5, None, 1.5]), ('city', 'BYTES', [3], ['Oslo', None, 'Oslo'])]
>>> body["parameters"]
{'content_type': 'pd'}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from forgeml.errors import DataSourceError, UsageError
from forgeml.loadtest.protocols import ServingProtocol

__all__ = ["encode_bodies", "read_rows"]

# Enough distinct requests that no cache answers them, few enough to build in a second.
MAX_BODIES = 10_000
MAX_BYTES = 64 * 1024 * 1024

Columns = list[tuple[str, str, list[Any]]]  # (name, OIP v2 datatype, JSON-ready values)


def read_rows(path: str | Path, *, limit: int | None = None) -> Any:
    """The first ``limit`` rows (all when None) of a CSV or Parquet file, as a ``pyarrow.Table``.

    Only the rows needed are read, so a large file costs no more than its head. A missing,
    unreadable or empty file raises :class:`~forgeml.errors.DataSourceError`.

    >>> read_rows("no/such/file.csv")
    Traceback (most recent call last):
    ...
    forgeml.errors.DataSourceError: rows file not found: no/such/file.csv
    """
    import pyarrow as pa

    file = Path(path)
    if not file.is_file():
        raise DataSourceError(f"rows file not found: {file}")
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataSourceError(f"rows file {file}: expected a .csv or .parquet file")
    try:
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            reader: Any = pcsv.open_csv(file)
            schema, batches = reader.schema, iter(reader)
        else:
            import pyarrow.parquet as pq

            reader = pq.ParquetFile(file)
            schema = reader.schema_arrow
            batches = reader.iter_batches(batch_size=min(limit or 65_536, 65_536))
        taken, n_rows = [], 0
        for batch in batches:
            taken.append(batch)
            n_rows += batch.num_rows
            if limit is not None and n_rows >= limit:
                break
        table = pa.Table.from_batches(taken, schema=schema)
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"rows file {file} cannot be read: {exc}") from exc
    if limit is not None:
        table = table.slice(0, limit)
    if table.num_rows == 0:
        raise DataSourceError(f"rows file {file} has no rows")
    return table


def encode_bodies(
    rows: Any,
    protocol: ServingProtocol | str,
    *,
    batch: int = 1,
    drop: Collection[str] = (),
    max_bodies: int = MAX_BODIES,
    max_bytes: int = MAX_BYTES,
) -> list[bytes]:
    """JSON request bodies of ``batch`` rows each, in ``protocol``'s format.

    ``rows`` is anything ``pyarrow.table()`` accepts: a ``pyarrow.Table``, a dict of columns,
    a pandas or Polars frame. Columns named in ``drop`` (a target, an id) are left out.
    There is one body per ``batch`` rows, at most ``max_bodies`` bodies and ``max_bytes``
    bytes in all (at least one body). NaN and infinite floats are sent as ``null``;
    dates, times and other non-JSON values as ISO or plain strings.

    >>> [b.decode() for b in encode_bodies({"x": list(range(5))}, "mlflow", batch=2)]
    ['{"dataframe_split":{"columns":["x"],"data":[[0],[1]]}}', '{"dataframe_split":{"columns":["x"],"data":[[2],[3]]}}', '{"dataframe_split":{"columns":["x"],"data":[[4],[0]]}}']
    >>> encode_bodies({"x": [1]}, "predict", drop=["y"])
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --drop: no column 'y' in the rows (columns: x)
    """
    import pyarrow as pa

    protocol = ServingProtocol.parse(protocol)
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    table = rows if isinstance(rows, pa.Table) else pa.table(rows)
    missing = [name for name in drop if name not in table.column_names]
    if missing:
        shown = ", ".join(table.column_names[:20])
        raise UsageError(f"--drop: no column {missing[0]!r} in the rows (columns: {shown})")
    columns = [_column(name, table.column(name)) for name in table.column_names if name not in drop]
    if not columns:
        raise UsageError("no columns left to send (every column was dropped)")
    n_rows = table.num_rows
    if n_rows == 0:
        raise UsageError("no rows to send")
    encode = _ENCODERS[protocol]
    bodies: list[bytes] = []
    size = 0
    for start in range(0, min(n_rows, max_bodies * batch), batch):
        picked = [(name, dtype, _take(values, start, batch)) for name, dtype, values in columns]
        body = json.dumps(encode(picked, batch), separators=(",", ":"), allow_nan=False).encode()
        if bodies and size + len(body) > max_bytes:
            break
        bodies.append(body)
        size += len(body)
    return bodies


def _take(values: list[Any], start: int, count: int) -> list[Any]:
    """``count`` values from ``start``, wrapping around the end."""
    n = len(values)
    if start + count <= n:
        return values[start : start + count]
    return [values[(start + i) % n] for i in range(count)]


def _column(name: str, column: Any) -> tuple[str, str, list[Any]]:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):  # categoricals: to_pylist gives the decoded values
        kind = kind.value_type
    values = column.to_pylist()
    if pa.types.is_boolean(kind):
        return name, "BOOL", values
    if pa.types.is_integer(kind):
        return name, "INT64", values
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind):
        return name, "FP64", [_float(v) for v in values]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or _is_string_view(kind):
        return name, "BYTES", values
    return name, "BYTES", [_text(v) for v in values]


def _is_string_view(kind: Any) -> bool:
    import pyarrow as pa

    check = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(check is not None and check(kind))


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def _records(columns: Columns, n: int) -> dict[str, Any]:
    names = [name for name, _, _ in columns]
    rows = zip(*(values for _, _, values in columns), strict=True)
    return {"records": [dict(zip(names, row, strict=True)) for row in rows]}


def _v2(columns: Columns, n: int) -> dict[str, Any]:
    inputs = [
        {"name": name, "shape": [n], "datatype": dtype, "data": values}
        for name, dtype, values in columns
    ]
    return {"inputs": inputs, "parameters": {"content_type": "pd"}}


def _dataframe_split(columns: Columns, n: int) -> dict[str, Any]:
    data = [list(row) for row in zip(*(values for _, _, values in columns), strict=True)]
    return {"dataframe_split": {"columns": [name for name, _, _ in columns], "data": data}}


_ENCODERS: dict[ServingProtocol, Callable[[Columns, int], dict[str, Any]]] = {
    ServingProtocol.predict: _records,
    ServingProtocol.v2: _v2,
    ServingProtocol.mlflow: _dataframe_split,
}
