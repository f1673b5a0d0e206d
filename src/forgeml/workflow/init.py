"""``forgeml init``: look at a data file, infer its schema and task, write ``forgeml.yaml``."""

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


def render_spec_yaml(document: dict[str, Any]) -> str:
    """The spec as YAML with a short guide on top (comments survive only as text)."""
    # Leaf mappings in flow style keep one column per line: `age: {type: int}`.
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=None)
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
    target: str,
    task: str | None = None,
    name: str | None = None,
    spec_path: Path = Path("forgeml.yaml"),
    delimiter: str = ",",
    force: bool = False,
) -> InitResult:
    """Infer a spec from ``data`` and write it to ``spec_path``."""
    from forgeml.config.loader import load_spec
    from forgeml.config.spec import DataSpec
    from forgeml.data import infer_schema, infer_task, open_source

    spec_path = Path(spec_path)
    if spec_path.exists() and not force:
        raise UsageError(f"{spec_path} already exists (use --force to overwrite it)")
    if task is not None and task not in ("classification", "regression"):
        raise UsageError(f"--task: expected 'classification' or 'regression', got {task!r}")
    source = open_source(DataSpec(source=data, delimiter=delimiter))
    head = source.head(SAMPLE_ROWS)
    if head.height == 0:
        raise DataError(f"{source.description}: the table has no rows")
    if target not in head.columns:
        close = difflib.get_close_matches(target, head.columns, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(
            f"--target: column '{target}' not found in {source.description}{hint}; "
            f"columns are: {', '.join(head.columns[:30])}"
        )
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
    text = render_spec_yaml(document)
    load_spec(yaml.safe_load(text))  # what we write must load
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = spec_path.with_name(f".{spec_path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(spec_path)
    return InitResult(
        spec_path=str(spec_path),
        name=model_name,
        task=inferred_task,
        target=target,
        columns={c: str(s.type) for c, s in columns.items()},
        sampled_rows=head.height,
    )
