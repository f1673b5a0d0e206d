"""A/B experiments on the request path: which variant answers, and what is logged.

The catalog reads the running experiments of the served models from the registry (at
start, on ``/admin/reload``, on every ``--poll-seconds``) and loads every variant's
version. A request for a model's default version (no version pinned) then goes to the
variant of its **unit**: the ``X-Forgeml-Unit`` header, else the experiment's unit column
when every row of the request carries the same value (the column is dropped before the
model sees it unless the model reads it). The variant is a pure function of the
experiment and the unit (:class:`~forgeml.experiments.TrafficSplit`), so a user always
sees the same version, in every worker and after restarts.

Requests without a unit — or with rows of several units — go to the **control** and are
logged without a variant: they are not exposures. In **shadow** mode the control always
answers and the other variants score the same rows after the answer is sent; their
predictions are logged with ``shadow = true`` and never returned.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExperimentRouter", "Routed", "Running"]

UNIT_HEADER = b"x-forgeml-unit"


@dataclass
class Running:
    """A running experiment of a served model, with its split and loaded variants."""

    experiment: Any  # forgeml.experiments.Experiment
    split: Any  # forgeml.experiments.TrafficSplit
    models: dict[str, Any]  # variant -> ServedModel
    exposures: OrderedDict[str, str] = field(default_factory=OrderedDict)  # unit -> variant

    @property
    def control(self) -> str:
        return str(self.experiment.control)

    def expose(self, unit: str, variant: str, capacity: int = 1_000_000) -> None:
        if unit not in self.exposures:
            self.exposures[unit] = variant
            if len(self.exposures) > capacity:
                self.exposures.popitem(last=False)


@dataclass(frozen=True)
class Routed:
    """Where a request goes: the model answering, its variant (None: not an exposure),
    the unit, the rows for the model, and the shadow models scoring them too."""

    model: Any
    variant: str | None
    unit: str | None
    records: list[dict[str, Any]]
    shadows: tuple[tuple[str, Any], ...] = ()


class ExperimentRouter:
    """The running experiments by model name (replaced whole on every reload)."""

    def __init__(self) -> None:
        self._running: dict[str, Running] = {}

    def update(self, catalog: Any) -> None:
        """Take the catalog's experiments (after a reload); exposures seen by this process
        are kept for experiments that still run."""
        running: dict[str, Running] = {}
        for name, experiment in catalog.experiments.items():
            models = {v: catalog.get(name, n) for v, n in experiment.versions.items()}
            previous = self._running.get(name)
            split = experiment.split()
            entry = Running(experiment, split, models)
            if previous is not None and previous.experiment.name == experiment.name:
                entry.exposures = previous.exposures
            running[name] = entry
        self._running = running

    def get(self, model: str) -> Running | None:
        return self._running.get(model)

    def running(self) -> list[Running]:
        return list(self._running.values())

    def route(self, running: Running, records: list[dict[str, Any]], scope: Any) -> Routed:
        """The variant of one request (see the module's docstring)."""
        experiment = running.experiment
        unit = _unit(scope, records, experiment.unit)
        column = experiment.unit
        control = running.models[running.control]
        if column not in control.schema and any(column in r for r in records):
            records = [{k: v for k, v in r.items() if k != column} for r in records]
        if experiment.shadow:
            shadows = tuple((v, m) for v, m in running.models.items() if v != running.control)
            variant = running.control if unit is not None else None
            if unit is not None:
                running.expose(unit, running.control)
            return Routed(control, variant, unit, records, shadows)
        if unit is None:
            return Routed(control, None, None, records)
        variant = running.split.assign(unit)
        running.expose(unit, variant)
        return Routed(running.models[variant], variant, unit, records)


def _unit(scope: Any, records: list[dict[str, Any]], column: str) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == UNIT_HEADER:
            text = value.decode("latin-1").strip()
            return text if 0 < len(text) <= 256 else None
    if not records:
        return None
    first = records[0].get(column)
    if first is None or isinstance(first, dict | list):
        return None
    if any(r.get(column) != first for r in records[1:]):
        return None  # rows of several units: not one exposure
    text = str(first)
    return text if 0 < len(text) <= 256 else None
