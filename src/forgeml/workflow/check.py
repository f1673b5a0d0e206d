"""Semantic checks of a spec that need more than its shape (``forgeml config check``).

Pydantic already checked every field; here we check what needs other layers: that every
candidate model exists and suits the task, that the metric applies, that the data source
is readable and holds the target, and that the registry location can be written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.config.loader import load_spec
from forgeml.config.redact import hide_password
from forgeml.config.spec import CandidateSpec, Spec
from forgeml.errors import ConfigError
from forgeml.tuning import CandidateSpace, build_space

__all__ = ["CheckResult", "check_spec", "precheck", "resolve_candidates"]


def resolve_candidates(spec: Spec, subtype: str, *, n_rows: int) -> list[CandidateSpace]:
    """The spec's candidates (or every available built-in one) with their search spaces."""
    from forgeml.models import available_names, get_adapter

    if spec.models.candidates is None:
        listed = [CandidateSpec(name=n) for n in available_names(subtype)]
    else:
        listed = list(spec.models.candidates)
    spaces = []
    for i, candidate in enumerate(listed):
        field_path = f"models.candidates[{i}]"
        adapter = get_adapter(candidate.name, field=field_path)
        if subtype not in adapter.subtypes:
            raise ConfigError(
                f"{field_path}: model '{candidate.name}' does not support {subtype} tasks"
            )
        # Unknown parameter names fail here, before any data is read, not in every trial.
        adapter.resolve_params(candidate.params, subtype, field=f"{field_path}.params")
        searched = dict.fromkeys(candidate.search, 0)
        adapter.resolve_params(searched, subtype, field=f"{field_path}.search")
        spaces.append(
            build_space(
                candidate,
                adapter.search_space(subtype, n_rows),
                adapter.default_params(subtype),
                field_path=field_path,
            )
        )
    if not spaces:
        raise ConfigError(f"models.candidates: no installed model supports {subtype} tasks")
    return spaces


@dataclass
class CheckResult:
    spec_path: str
    name: str
    task: str
    target: str
    candidates: list[str]
    metric: str
    data: dict[str, Any] = field(default_factory=dict)
    registry: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec_path,
            "ok": True,
            "name": self.name,
            "task": self.task,
            "target": self.target,
            "candidates": self.candidates,
            "metric": self.metric,
            "data": self.data,
            "registry": self.registry,
            "warnings": self.warnings,
        }


def precheck(spec: Spec) -> tuple[Any, list[CandidateSpace]]:
    """What can be checked before reading any data: the metric, every candidate (name,
    task, parameter names) and the engine. The task's subtype is not known yet, so the
    metric and models must suit at least one subtype the task can turn out to be.
    Returns the metric and the candidates for the first subtype that fits."""
    from forgeml.engine import get_executor
    from forgeml.tasks.metrics import resolve_metric

    subtypes = ["binary", "multiclass"] if spec.task == "classification" else ["regression"]
    errors: list[ConfigError] = []
    for subtype in subtypes:
        try:
            metric = resolve_metric(spec.tuning.metric, subtype)
            candidates = resolve_candidates(spec, subtype, n_rows=10_000)
            break
        except ConfigError as exc:
            errors.append(exc)
    else:
        raise errors[0]
    get_executor(spec.engine.kind, spec.engine.workers).close()  # e.g. ray: not yet
    return metric, candidates


def check_spec(
    spec: str | Path | Mapping[str, Any] | Spec, *, overrides: Iterable[str] = ()
) -> CheckResult:
    """Check a spec end to end without training; raises the first problem found."""
    from forgeml.data import open_source
    from forgeml.registry import check_writable
    from forgeml.workflow.workspace import Workspace

    loaded = load_spec(spec, overrides)
    parts = _recommendation_parts if loaded.task == "recommendation" else _tabular_parts
    target, candidates, metric, warnings, check_columns = parts(loaded)
    data_info: dict[str, Any] = {}
    if loaded.data.source is not None:
        source = open_source(loaded.data, resolve=loaded.resolve_path)
        head = source.head(1_000)
        check_columns(head.columns, source.description)
        data_info = {"source": source.description, "columns": len(head.columns)}
    else:
        warnings.append(
            "data.source is not set: pass a frame from Python (forgeml.run(spec, data=df))"
        )
    workspace = Workspace.from_spec(loaded)
    check_writable(workspace.registry_uri, workspace.artifacts)
    return CheckResult(
        spec_path=str(spec) if isinstance(spec, str | Path) else "spec",
        name=loaded.name,
        task=loaded.task,
        target=target,
        candidates=candidates,
        metric=metric,
        data=data_info,
        registry=hide_password(workspace.registry_uri),
        warnings=warnings,
    )


# What check_spec needs of a task: the target, the candidates' names, the metric, warnings
# and a check of the data's columns (names, source description).
_Parts = tuple[str, list[str], str, list[str], Callable[[list[str], str], None]]


def _tabular_parts(loaded: Spec) -> _Parts:
    from forgeml.tasks.metrics import METRICS

    metric, candidates = precheck(loaded)
    subtypes = ["binary", "multiclass"] if loaded.task == "classification" else ["regression"]
    warnings: list[str] = []
    if (
        loaded.tuning.metric
        and METRICS[metric.name].subtypes.isdisjoint(subtypes[1:])
        and len(subtypes) > 1
    ):
        warnings.append(f"metric '{metric.name}' applies only if the target turns out binary")

    def check_columns(columns: list[str], description: str) -> None:
        if loaded.target not in columns:
            raise ConfigError(
                f"target column '{loaded.target}' not found in {description} "
                f"(columns: {', '.join(columns[:20])})"
            )
        missing = [c for c in loaded.columns if c not in columns]
        if missing:
            raise ConfigError(f"columns: declared column(s) not in the data: {', '.join(missing)}")

    return loaded.target, [c.name for c in candidates], metric.name, warnings, check_columns


def _recommendation_parts(loaded: Spec) -> _Parts:
    """A ``task: recommendation`` spec: its models, its id/time/weight columns."""
    from forgeml.workflow.recommend_run import precheck_recommendation

    candidates = precheck_recommendation(loaded)
    rec = loaded.recommendation
    assert rec is not None  # the spec's validation requires the section for this task
    wanted = {"user": rec.user, "item": rec.item, "time": rec.time, "weight": rec.weight}

    def check_columns(columns: list[str], description: str) -> None:
        for role, column in wanted.items():
            if column is not None and column not in columns:
                raise ConfigError(
                    f"recommendation.{role}: column '{column}' not found in "
                    f"{description} (columns: {', '.join(columns[:20])})"
                )

    names = [c.name for c in candidates]
    return rec.item, names, f"{rec.metric}@{rec.k}", [], check_columns
