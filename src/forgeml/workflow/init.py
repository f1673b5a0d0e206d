"""``forgeml init``: look at a data file, infer its schema and task, write ``forgeml.yaml``.

Tabular tasks name a ``--target``; ``--task recommendation`` names the interaction log's
``--user`` and ``--item`` columns (and optionally ``--time``, ``--rating`` with
``--positive-threshold``) instead, and writes a ``recommendation:`` section.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from forgeml.errors import DataError, UsageError

__all__ = ["InitResult", "init_spec", "render_spec_yaml"]

SAMPLE_ROWS = 50_000


@dataclass
class InitResult:
    spec_path: str
    name: str
    task: str
    target: str
    columns: dict[str, str]
    sampled_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec_path,
            "name": self.name,
            "task": self.task,
            "target": self.target,
            "columns": self.columns,
            "sampled_rows": self.sampled_rows,
        }


def _model_name(data: str) -> str:
    stem = Path(data.rstrip("/").split("?")[0]).name.split(".")[0] or "model"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._") or "model"
    return name[:64] if name[0].isalnum() else f"m{name}"[:64]


def _relative_source(data: str, spec_dir: Path) -> str:
    if "://" in data:
        return data
    path = Path(data).expanduser().resolve()
    try:
        return os.path.relpath(path, spec_dir.resolve())
    except ValueError:  # another drive on Windows
        return str(path)


_RECOMMENDATION_HEADER = (
    "# forgeml pipeline spec — written by `forgeml init`; edit freely.\n"
    "# Check it with `forgeml config check forgeml.yaml`, run it with `forgeml run forgeml.yaml`.\n"
    "# recommendation: the interaction log's columns. Rows with a null id, an unreadable or\n"
    "#   future time, a bad weight, or repeating an earlier event are quarantined with a reason.\n"
    "#   split: leave_last_n (each user's n latest events are the test) or time (at: a date).\n"
    "#   Without a time column the row order is the time order.\n"
    "# recommendation.models: auto = popularity, itemknn, ease, als, bpr (as installed); each is\n"
    "#   tuned with Optuna on NDCG@k (metric, k) under tuning.budget.\n"
)


def render_spec_yaml(document: dict[str, Any]) -> str:
    """The spec as YAML with a short guide on top (comments survive only as text)."""
    # Leaf mappings in flow style keep one column per line: `age: {type: int}`.
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=None)
    if document.get("task") == "recommendation":
        return _RECOMMENDATION_HEADER + body
    header = (
        "# forgeml pipeline spec — written by `forgeml init`; edit freely.\n"
        "# Check it with `forgeml config check forgeml.yaml`, run it with `forgeml run forgeml.yaml`.\n"
        "# columns: inferred types; add rules per column (not_null, min, max, allowed, unique,\n"
        "#   regex, max_null_fraction). Rows breaking a rule are quarantined with a reason.\n"
        "# models.candidates: auto = every installed model (linear, random_forest, lightgbm, xgboost).\n"
    )
    return header + body


def init_spec(
    data: str,
    *,
    target: str | None = None,
    task: str | None = None,
    name: str | None = None,
    spec_path: Path = Path("forgeml.yaml"),
    delimiter: str = ",",
    force: bool = False,
    user: str | None = None,
    item: str | None = None,
    time: str | None = None,
    rating: str | None = None,
    positive_threshold: float | None = None,
) -> InitResult:
    """Infer a spec from ``data`` and write it to ``spec_path``.

    ``user``/``item`` (with ``task="recommendation"``, implied when they are given without
    a task) write a recommendation spec; ``target`` is for the tabular tasks."""
    from forgeml.config.spec import DataSpec
    from forgeml.data import open_source

    spec_path = Path(spec_path)
    rec_flags = {
        "--user": user,
        "--item": item,
        "--time": time,
        "--rating": rating,
        "--positive-threshold": positive_threshold,
    }
    given = [flag for flag, value in rec_flags.items() if value is not None]
    if task is None and given:
        task = "recommendation"
    if task is not None and task not in ("classification", "regression", "recommendation"):
        raise UsageError(
            f"--task: expected 'classification', 'regression' or 'recommendation', got {task!r}"
        )
    if task == "recommendation":
        if target is not None:
            raise UsageError(
                "--target: not used with --task recommendation (the item column is what is "
                "recommended); name the columns with --user and --item"
            )
        missing = [flag for flag in ("--user", "--item") if rec_flags[flag] is None]
        if missing:
            raise UsageError(f"--task recommendation needs {' and '.join(missing)}")
    else:
        if given:
            raise UsageError(
                f"{', '.join(given)}: only for --task recommendation, not "
                f"{task or 'a tabular task'}"
            )
        if target is None:
            raise UsageError(
                "--target is required (the column to predict); for recommendations pass "
                "--task recommendation --user USER_COLUMN --item ITEM_COLUMN"
            )
    if spec_path.exists() and not force:
        raise UsageError(f"{spec_path} already exists (use --force to overwrite it)")
    source = open_source(DataSpec(source=data, delimiter=delimiter))
    head = source.head(SAMPLE_ROWS)
    if head.height == 0:
        raise DataError(f"{source.description}: the table has no rows")
    if task == "recommendation":
        assert user is not None and item is not None
        return _init_recommendation(
            data,
            head,
            source.description,
            name=name,
            spec_path=spec_path,
            delimiter=delimiter,
            user=user,
            item=item,
            time=time,
            rating=rating,
            positive_threshold=positive_threshold,
        )
    assert target is not None
    return _init_tabular(data, head, source.description, target, task, name, spec_path, delimiter)


def _missing_column(flag: str, column: str, columns: list[str], description: str) -> UsageError:
    close = difflib.get_close_matches(column, columns, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UsageError(
        f"{flag}: column '{column}' not found in {description}{hint}; "
        f"columns are: {', '.join(columns[:30])}"
    )


def _write(document: dict[str, Any], spec_path: Path) -> None:
    from forgeml.config.loader import load_spec

    text = render_spec_yaml(document)
    load_spec(yaml.safe_load(text))  # what we write must load
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = spec_path.with_name(f".{spec_path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(spec_path)


def _init_recommendation(
    data: str,
    head: Any,
    description: str,
    *,
    name: str | None,
    spec_path: Path,
    delimiter: str,
    user: str,
    item: str,
    time: str | None,
    rating: str | None,
    positive_threshold: float | None,
) -> InitResult:
    import polars as pl

    roles = {"--user": user, "--item": item, "--time": time, "--rating": rating}
    for flag, column in roles.items():
        if column is not None and column not in head.columns:
            raise _missing_column(flag, column, list(head.columns), description)
    named = [c for c in roles.values() if c is not None]
    if len(set(named)) < len(named):
        raise UsageError(
            f"--user, --item, --time and --rating must name different columns: {named}"
        )
    if positive_threshold is not None and rating is None:
        raise UsageError("--positive-threshold needs --rating (the column it applies to)")
    section: dict[str, Any] = {"user": user, "item": item}
    columns = {user: "id", item: "id"}
    if time is not None:
        section["time"] = time
        columns[time] = "datetime"
        unit = _epoch_unit(head[time])
        if unit is not None and unit != "s":
            section["time_unit"] = unit
    if rating is not None:
        values = head[rating].drop_nulls()
        numbers = values.cast(pl.Float64, strict=False) if values.dtype == pl.String else values
        if not numbers.dtype.is_numeric() or numbers.null_count() > 0.01 * max(len(values), 1):
            raise UsageError(
                f"--rating: column '{rating}' does not hold numbers ({head[rating].dtype})"
            )
        section["weight"] = rating
        columns[rating] = "float"
        if positive_threshold is not None:
            section["positive_threshold"] = positive_threshold
    section |= {"split": {"strategy": "leave_last_n", "n": 1}, "k": 10, "metric": "ndcg"}
    section["models"] = "auto"
    model_name = name or _model_name(data)
    document: dict[str, Any] = {
        "name": model_name,
        "task": "recommendation",
        "data": {"source": _relative_source(data, spec_path.parent)},
        "recommendation": section,
        "validation": {"max_bad_fraction": 0.05},
        "tuning": {"budget": {"seconds": 300}},
        "seed": 0,
        "registry": {"uri": ".forgeml"},
    }
    if delimiter != ",":
        document["data"]["delimiter"] = delimiter
    _write(document, spec_path)
    return InitResult(
        spec_path=str(spec_path),
        name=model_name,
        task="recommendation",
        target=item,
        columns=columns,
        sampled_rows=head.height,
    )


def _epoch_unit(series: Any) -> str | None:
    """For epoch numbers, the unit their size suggests (about 1.7e9 s = 1.7e12 ms...)."""
    import polars as pl

    values = series.drop_nulls()
    if values.dtype == pl.String:
        values = values.cast(pl.Float64, strict=False)
    if not values.dtype.is_numeric() or len(values) == 0 or values.null_count() == len(values):
        return None
    median = abs(float(values.drop_nulls().median() or 0.0))
    for unit, low in (("ns", 1e17), ("us", 1e14), ("ms", 1e11)):
        if median >= low:
            return unit
    return "s"


def _init_tabular(
    data: str,
    head: Any,
    description: str,
    target: str,
    task: str | None,
    name: str | None,
    spec_path: Path,
    delimiter: str,
) -> InitResult:
    from forgeml.data import infer_schema, infer_task

    if target not in head.columns:
        raise _missing_column("--target", target, list(head.columns), description)
    columns = infer_schema(head, target=target)
    inferred_task = task or infer_task(head, target)
    model_name = name or _model_name(data)
    document: dict[str, Any] = {
        "name": model_name,
        "task": inferred_task,
        "target": target,
        "data": {"source": _relative_source(data, spec_path.parent)},
        "columns": {c: {"type": spec.type} for c, spec in columns.items()},
        "validation": {"max_bad_fraction": 0.05},
        "split": {"strategy": "auto", "test_size": 0.2, "folds": 3},
        "models": {"candidates": "auto"},
        "tuning": {"budget": {"seconds": 120}},
        "seed": 0,
        "registry": {"uri": ".forgeml"},
    }
    if delimiter != ",":
        document["data"]["delimiter"] = delimiter
    _write(document, spec_path)
    return InitResult(
        spec_path=str(spec_path),
        name=model_name,
        task=inferred_task,
        target=target,
        columns={c: str(s.type) for c, s in columns.items()},
        sampled_rows=head.height,
    )
