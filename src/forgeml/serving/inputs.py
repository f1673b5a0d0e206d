"""Request bodies in, validated rows out — for every protocol the server speaks.

Each parser turns its protocol's payload into a list of *records* (one ``dict`` per row,
the model's raw input columns as keys) and :func:`check_records` holds them to the model's
input schema: every column present (``null`` is a legitimate missing value), no unknown
column unless the server allows extras, and every value of a type the column can take.
Every refusal is a :class:`RequestError` (4xx) that names the row and column.

>>> schema = {"age": "int", "plan": "categorical"}
>>> check_records(parse_plain({"records": [{"age": 41, "plan": "pro"}]}), schema)
[{'age': 41, 'plan': 'pro'}]
>>> check_records([{"age": "old", "plan": "pro"}], schema)
Traceback (most recent call last):
...
forgeml.errors.RequestError: row 0, column 'age': expected a number, got 'old'
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from forgeml.errors import RequestError

__all__ = [
    "check_records",
    "json_depth",
    "parse_csv",
    "parse_json",
    "parse_mlflow",
    "parse_plain",
    "parse_v2",
]

Records = list[dict[str, Any]]
_SCALARS = (str, int, float, bool, type(None))


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """Decode a JSON body (strict: no NaN/Infinity literals) and bound its nesting depth."""
    import orjson

    if not body.strip():
        raise RequestError("the request body is empty", status=400)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc}", status=400) from None
    # Every level opens a bracket, so the bracket count bounds the depth: most bodies are
    # cleared without walking them.
    if (
        body.count(b"[") + body.count(b"{") > max_depth
        and json_depth(data, max_depth + 1) > max_depth
    ):
        raise RequestError(f"JSON nested deeper than {max_depth} levels", status=400)
    return data


def json_depth(data: Any, stop: int) -> int:
    """Nesting depth of ``data`` (a scalar is 0), counting no further than ``stop``.

    >>> json_depth({"a": [1, {"b": [2]}]}, 10)
    4
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest >= stop:
            return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def parse_plain(data: Any) -> Records:
    """``{"records": [{col: value, ...}, ...]}`` (or a bare list of records)."""
    records = data.get("records") if isinstance(data, dict) else data
    if isinstance(data, dict) and "records" not in data:
        raise RequestError('expected {"records": [{...}, ...]}', status=400)
    return _records(records, "records")


def _records(value: Any, where: str) -> Records:
    if not isinstance(value, list):
        raise RequestError(f"{where}: expected a list of objects", status=400)
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise RequestError(f"{where}[{i}]: expected an object of column values", status=400)
    return value


def _columns(columns: Mapping[str, Any], where: str) -> Records:
    """Columnar ``{col: [values...]}`` to records, all columns of one length."""
    lengths = {name: len(values) for name, values in columns.items() if isinstance(values, list)}
    if len(lengths) != len(columns):
        bad = next(name for name in columns if name not in lengths)
        raise RequestError(f"{where}: column '{bad}' must be a list of values", status=400)
    if len(set(lengths.values())) > 1:
        raise RequestError(f"{where}: columns have different lengths {lengths}", status=400)
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def parse_v2(data: Any) -> tuple[Records, str | None, list[str] | None]:
    """Open Inference Protocol v2 ``infer`` request: one input tensor per column
    (``parameters.content_type: "pd"``). Returns records, the request id and the output
    names asked for."""
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        raise RequestError(
            'expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}', status=400
        )
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError("parameters: expected an object", status=400)
    content_type = params.get("content_type", "pd")
    if content_type not in ("pd", "pandas"):
        raise RequestError(
            f"parameters.content_type {content_type!r} is not supported: send one input per "
            'column with "content_type": "pd"',
            status=400,
        )
    columns: dict[str, Any] = {}
    for i, tensor in enumerate(data["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise RequestError(f"inputs[{i}]: expected an object with a name", status=400)
        values = tensor.get("data")
        if not isinstance(values, list):
            raise RequestError(f"inputs[{i}] ('{tensor['name']}'): data must be a list", status=400)
        if values and isinstance(values[0], list):  # shape [n, 1] sent nested
            if any(not isinstance(v, list) or len(v) != 1 for v in values):
                raise RequestError(
                    f"inputs[{i}] ('{tensor['name']}'): expected one value per row", status=400
                )
            values = [v[0] for v in values]
        shape = tensor.get("shape")
        if (
            isinstance(shape, list)
            and shape
            and isinstance(shape[0], int)
            and shape[0] != len(values)
        ):
            raise RequestError(
                f"inputs[{i}] ('{tensor['name']}'): shape {shape} does not match "
                f"{len(values)} values",
                status=400,
            )
        if tensor["name"] in columns:
            raise RequestError(f"inputs[{i}]: column '{tensor['name']}' given twice", status=400)
        columns[tensor["name"]] = values
    outputs = data.get("outputs")
    wanted: list[str] | None = None
    if isinstance(outputs, list):
        wanted = [
            str(o["name"])
            for o in outputs
            if isinstance(o, dict) and isinstance(o.get("name"), str)
        ]
    request_id = str(data["id"]) if isinstance(data.get("id"), str) else None
    return _columns(columns, "inputs"), request_id, wanted


def parse_mlflow(data: Any, schema: Mapping[str, str]) -> Records:
    """MLflow scoring server JSON: ``dataframe_split``, ``dataframe_records``,
    ``instances`` or ``inputs``."""
    if not isinstance(data, dict):
        raise RequestError(
            "expected one of dataframe_split, dataframe_records, instances, inputs", status=400
        )
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in data]
    if len(keys) != 1:
        raise RequestError(
            "expected exactly one of dataframe_split, dataframe_records, instances, inputs",
            status=400,
        )
    key, value = keys[0], data[keys[0]]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list):
            raise RequestError(
                'dataframe_split: expected {"columns": [...], "data": [[...]]}', status=400
            )
        columns, rows = value["columns"], value.get("data")
        if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
            raise RequestError("dataframe_split.data: expected a list of rows", status=400)
        if any(not isinstance(c, str) for c in columns):
            raise RequestError("dataframe_split.columns: expected column names", status=400)
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise RequestError(
                    f"dataframe_split.data[{i}]: {len(row)} values for {len(columns)} columns",
                    status=400,
                )
        return [dict(zip(columns, row, strict=True)) for row in rows]
    if key == "dataframe_records":
        return _records(value, "dataframe_records")
    if isinstance(value, dict):  # columnar tensors: {col: [values]}
        return _columns(value, key)
    if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        names = list(schema)  # positional rows follow the model's column order
        for i, row in enumerate(value):
            if len(row) != len(names):
                raise RequestError(
                    f"{key}[{i}]: {len(row)} values, the model reads {len(names)} columns "
                    f"({', '.join(names)})",
                    status=400,
                )
        return [dict(zip(names, row, strict=True)) for row in value]
    return _records(value, key)


def parse_csv(body: bytes, schema: Mapping[str, str]) -> Records:
    """A CSV body with a header row; numbers and booleans are read per the model's schema,
    empty fields are missing values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("CSV body is not valid UTF-8", status=400) from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise RequestError("CSV body is empty", status=400) from None
    records: Records = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise RequestError(
                f"CSV line {line}: {len(row)} fields, the header has {len(header)}", status=400
            )
        record: dict[str, Any] = {}
        for name, raw in zip(header, row, strict=True):
            record[name] = _from_text(raw, schema.get(name), line, name)
        records.append(record)
    return records


def _from_text(raw: str, kind: str | None, line: int, name: str) -> Any:
    if raw == "":
        return None
    if kind in ("int", "float"):
        try:
            return float(raw) if kind == "float" or not raw.lstrip("+-").isdigit() else int(raw)
        except ValueError:
            raise RequestError(
                f"CSV line {line}, column '{name}': expected a number, got {raw!r}", status=422
            ) from None
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise RequestError(
            f"CSV line {line}, column '{name}': expected true or false, got {raw!r}", status=422
        )
    return raw


def check_records(
    records: Sequence[dict[str, Any]],
    schema: Mapping[str, str],
    *,
    allow_extra: bool = False,
    max_rows: int | None = None,
    datetime_formats: Mapping[str, str] | None = None,
    known: Sequence[str] = (),
) -> Records:
    """Hold ``records`` to the model's input ``schema`` (column -> forgeml type);
    ``known`` columns (training columns the model does not read) are accepted and
    ignored."""
    if not records:
        raise RequestError("the request has no rows", status=400)
    if max_rows is not None and len(records) > max_rows:
        raise RequestError(
            f"{len(records)} rows in one request, more than the {max_rows} allowed", status=413
        )
    expected = set(schema)
    tolerated = set(known)
    formats = datetime_formats or {}
    for i, record in enumerate(records):
        keys = record.keys()
        if keys != expected:
            missing = sorted(expected - set(keys))
            if missing:
                raise RequestError(
                    f"row {i}: missing column(s) {', '.join(missing)} (send null for a "
                    "missing value)",
                    status=422,
                )
            extra = sorted(set(keys) - expected - tolerated)
            if extra and not allow_extra:
                raise RequestError(
                    f"row {i}: unknown column(s) {', '.join(extra)} (the model reads "
                    f"{', '.join(schema)})",
                    status=422,
                )
        for name, kind in schema.items():
            value = record[name]
            accepted = _PLAIN.get(kind)
            if value is None or (accepted is not None and type(value) in accepted):
                if type(value) is float and value - value != 0:  # NaN or infinite
                    raise RequestError(
                        f"row {i}, column '{name}': expected a finite number, got {value!r}",
                        status=422,
                    )
                continue
            problem = _type_problem(value, kind, formats.get(name))
            if problem:
                raise RequestError(
                    f"row {i}, column '{name}': {problem}, got {value!r}", status=422
                )
    return list(records)


# Values that need no further look, by column type (the common case, checked first).
_PLAIN: dict[str, tuple[type, ...]] = {
    "int": (int, float),
    "float": (float, int),
    "string": (str,),
    "categorical": (str,),
    "text": (str,),
    "id": (str, int),
}


def _type_problem(value: Any, kind: str, fmt: str | None) -> str | None:
    if not isinstance(value, _SCALARS):
        return "expected a single value"
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "expected a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
    elif kind == "bool":
        if not isinstance(value, bool) and value not in (0, 1):
            return "expected true or false"
    elif kind == "datetime":
        if not isinstance(value, str):
            return "expected a date-time string"
        try:
            if fmt:
                datetime.strptime(value, fmt)
            else:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"expected a date-time ({fmt or 'ISO 8601'})"
    elif kind in ("string", "categorical", "text") and isinstance(value, bool):
        return "expected a string"
    return None
