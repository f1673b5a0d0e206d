"""``forgeml ab``: start, watch, re-weight and conclude A/B experiments between versions.

The registry holds each experiment (its variants, the versions they resolved to, its
weights, its sequential test's state); servers read the running ones on their next registry
poll or ``POST /admin/reload`` and route each unit to its variant; the log store holds the
exposures they log and the outcomes they receive. :func:`ab_status` joins the two through
:func:`forgeml.experiments.analysis.analyze` and saves the sequential test's new state, so
that repeated looks stay valid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forgeml.workflow.workspace import Workspace

if TYPE_CHECKING:
    from forgeml.experiments.analysis import ExperimentStatus
    from forgeml.experiments.spec import Experiment
    from forgeml.registry.records import AliasChange

__all__ = ["ab_conclude", "ab_list", "ab_start", "ab_status", "ab_weights", "moved_share"]

RELOAD_HINT = (
    "servers pick this up on their next registry poll (forgeml serve --poll-seconds) "
    "or on POST /admin/reload"
)


def _parse_weights(text: str, name: str) -> dict[str, float]:
    from forgeml.experiments import TrafficSplit

    return TrafficSplit.parse(name, text).weights


def ab_start(
    registry: str,
    model: str,
    *,
    unit: str,
    metric: str,
    variants: str = "champion:0.9,challenger:0.1",
    metric_kind: str = "binary",
    name: str | None = None,
    shadow: bool = False,
    alias: str = "champion",
    control: str | None = None,
    higher_is_better: bool = True,
    alpha: float = 0.05,
) -> Experiment:
    """Start an experiment on ``model`` splitting ``variants`` (``NAME:WEIGHT,...``, each
    NAME an alias or a version) by the unit id field ``unit``, measured by ``metric``."""
    from forgeml.experiments.spec import Experiment

    experiment = Experiment(
        model=model,
        name=name or "",
        variants=_parse_weights(variants, name or model),
        unit=unit,
        metric=metric,
        metric_kind=metric_kind,
        control=control or "",
        alias=alias,
        shadow=shadow,
        higher_is_better=higher_is_better,
        alpha=alpha,
    )
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        return reg.start_experiment(experiment)


def ab_status(
    registry: str, model: str, *, log: str | None = None, name: str | None = None
) -> ExperimentStatus:
    """Analyse the running (else the latest) experiment of ``model`` from the log store at
    ``log`` (default: the registry's, where servers log by default). A look at a running
    experiment is saved: the sequential test resumes from it next time."""
    from forgeml.experiments.analysis import analyze
    from forgeml.registry.location import default_log_location

    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        experiment = reg.running_experiment(model) if name is None else None
        if experiment is None:
            experiment = reg.get_experiment(model, name)
        location = log or default_log_location(registry)
        predictions, feedback, events = _read_logs(experiment, location, explicit=log is not None)
        status = analyze(experiment, predictions, feedback, events=events)
        if experiment.running:
            reg.save_experiment_state(model, experiment.name, status.state)
    return status


def _read_logs(experiment: Experiment, location: str, *, explicit: bool) -> tuple[Any, Any, Any]:
    """The experiment's predictions, feedback and events (server errors per variant). At the default location a log that does
    not exist yet (no server has logged there) reads as empty; one named with ``--log``
    must exist."""
    import polars as pl

    from forgeml.errors import DataSourceError
    from forgeml.monitoring.store import open_store

    try:
        store = open_store(location, create=False)
    except DataSourceError:
        if explicit:
            raise
        return pl.DataFrame(), pl.DataFrame(), None
    with store:
        since, until = experiment.started_at, experiment.concluded_at
        predictions = store.read("predictions", model=experiment.model, since=since, until=until)
        feedback = store.read("feedback", model=experiment.model, since=since)
        events = store.read("events", model=experiment.model, since=since, until=until)
    return predictions, feedback, events


def ab_weights(registry: str, model: str, variants: str) -> tuple[Experiment, float]:
    """New weights for the running experiment's variants; returns it and the share of
    units whose variant changes (they are left out of the analysis from now on)."""
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        current = reg.running_experiment(model)
        weights = _parse_weights(variants, current.name if current else model)
        updated = reg.set_experiment_weights(model, weights)
    before = current.variants if current is not None else updated.variants
    return updated, moved_share(before, updated.variants)


def moved_share(before: dict[str, float], after: dict[str, float]) -> float:
    """The share of units whose variant changes when the weights go from ``before`` to
    ``after`` (same variants, same order): each variant's hash interval moves.

    >>> moved_share({"a": 0.9, "b": 0.1}, {"a": 0.5, "b": 0.5})
    0.4
    """
    kept, low_b, low_a = 0.0, 0.0, 0.0
    for variant, weight in before.items():
        new = after.get(variant, 0.0)
        kept += max(0.0, min(low_b + weight, low_a + new) - max(low_b, low_a))
        low_b, low_a = low_b + weight, low_a + new
    return round(max(0.0, 1.0 - kept), 12)


def ab_conclude(
    registry: str, model: str, *, promote: str | None = None, rollback: bool = False
) -> tuple[Experiment, AliasChange | None]:
    """End the running experiment: promote a variant (its alias moves to the variant's
    version, atomically with the conclusion) or roll back (the control keeps serving)."""
    from forgeml.errors import UsageError

    if promote is not None and rollback:
        raise UsageError("give either --promote VARIANT or --rollback, not both")
    if promote is None and not rollback:
        raise UsageError("say how the experiment ends: --promote VARIANT or --rollback")
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        return reg.conclude_experiment(model, promote=promote, rollback=rollback)


def ab_list(registry: str, model: str | None = None) -> list[Experiment]:
    """Every experiment (of ``model``), oldest first."""
    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        return reg.list_experiments(model)
