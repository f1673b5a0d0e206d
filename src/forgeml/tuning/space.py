"""Search spaces: a candidate's default space, the spec's overrides, and Optuna distributions.

A trial first picks a ``model`` among the candidates, then that model's parameters,
named ``<model>.<param>`` in the study so spaces of different models never collide.

>>> from forgeml.config.spec import SearchParam
>>> to_distribution(SearchParam(low=8, high=256, log=True, integer=True))
IntDistribution(high=256, log=True, low=8, step=1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna

from forgeml.config.spec import CandidateSpec, SearchParam
from forgeml.errors import ConfigError

__all__ = ["CandidateSpace", "build_space", "suggest_params", "to_distribution"]

CLASS_WEIGHT = "class_weight"


@dataclass(frozen=True)
class CandidateSpace:
    """What tuning knows about one candidate: its searched and its fixed parameters."""

    name: str
    space: dict[str, SearchParam]
    fixed: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # a strong first configuration

    def default_trial(self) -> dict[str, Any]:
        """Study parameters that make the first trial of this candidate its defaults."""
        params: dict[str, Any] = {"model": self.name}
        for key, value in self.defaults.items():
            param = self.space.get(key)
            if param is not None and _contains(param, value):
                params[f"{self.name}.{key}"] = value
        return params


def _contains(param: SearchParam, value: Any) -> bool:
    if param.choices is not None:
        return value in param.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    assert param.low is not None and param.high is not None
    return param.low <= value <= param.high


def build_space(
    candidate: CandidateSpec,
    default_space: dict[str, SearchParam],
    default_params: dict[str, Any],
    *,
    field_path: str,
) -> CandidateSpace:
    """Merge a candidate's spec (fixed ``params``, ``search`` overrides) into its defaults."""
    space = dict(default_space)
    fixed = {k: v for k, v in default_params.items() if k not in space}
    for key, value in candidate.params.items():
        space.pop(key, None)
        fixed[key] = value
    for key, param in candidate.search.items():
        if key in candidate.params:
            raise ConfigError(f"{field_path}.search.{key}: also fixed in params; keep one")
        space[key] = param
    defaults = {k: v for k, v in default_params.items() if k in space}
    return CandidateSpace(candidate.name, space, fixed, defaults)


def to_distribution(param: SearchParam) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution for one search dimension."""
    if param.choices is not None:
        return optuna.distributions.CategoricalDistribution(param.choices)
    assert param.low is not None and param.high is not None
    if param.integer:
        step = int(param.step) if param.step and not param.log else 1
        return optuna.distributions.IntDistribution(
            int(param.low), int(param.high), log=param.log, step=step
        )
    step_f = None if param.log else param.step
    return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log, step=step_f)


def _suggest(trial: optuna.Trial, name: str, param: SearchParam) -> Any:
    dist = to_distribution(param)
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, optuna.distributions.FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def suggest_params(
    trial: optuna.Trial,
    spaces: dict[str, CandidateSpace],
    *,
    class_weights: list[str] | None,
) -> tuple[str, dict[str, Any], str]:
    """Sample a candidate and its parameters; returns ``(model, params, class_weight)``.

    ``params`` holds the candidate's fixed parameters updated with the sampled ones.
    """
    model = str(trial.suggest_categorical("model", list(spaces)))
    candidate = spaces[model]
    params = dict(candidate.fixed)
    for key, param in candidate.space.items():
        params[key] = _suggest(trial, f"{model}.{key}", param)
    weight = "none"
    if class_weights is not None:
        weight = (
            class_weights[0]
            if len(class_weights) == 1
            else str(trial.suggest_categorical(CLASS_WEIGHT, class_weights))
        )
    return model, params, weight
