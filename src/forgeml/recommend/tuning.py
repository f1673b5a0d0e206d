"""Hyperparameter search for recommenders with Optuna, on a validation split of train.

* :func:`model_catalogue` names the recommenders a spec can list (``popularity``,
  ``itemknn``, ``ease``, ``als``, ``bpr``), each with its defaults and default search space.
* :func:`resolve_candidates` merges a spec's ``recommendation.models`` (fixed ``params``,
  ``search`` overrides) into those defaults and checks every name before data is read.
* :func:`tune` searches each candidate in turn: the training log is split again (each
  user's latest ``validation_events`` events held out, 3 by default, fewer for users with
  fewer events, at least one kept in train), every trial fits on the rest and is scored by
  full ranking (``ndcg@k`` by default) on the held-out events. Several events per user
  make the validation score less noisy than one (with one event per user, NDCG@10 on a
  few hundred users moves by more than the gaps between configurations). Each candidate
  has its own seeded study (TPE or random); its first trial is its defaults. A trial
  budget is shared out among the candidates (a model without parameters gets one trial);
  a time budget is shared out as it runs, each candidate getting an equal part of what is
  left.

The search is sequential and in-process: the models parallelise inside (BLAS, ``implicit``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forgeml._optional import available
from forgeml.config.spec import CandidateSpec, SearchParam
from forgeml.errors import ConfigError, DataError, TrainingError

if TYPE_CHECKING:
    import optuna
    import polars as pl

    from forgeml.recommend.interactions import Interactions
    from forgeml.recommend.models import Recommender

__all__ = [
    "Candidate",
    "ModelInfo",
    "RecTrial",
    "TuneResult",
    "build_model",
    "fit_model",
    "model_catalogue",
    "resolve_candidates",
    "tune",
]

METRIC_KEYS = {"ndcg": "ndcg", "recall": "recall", "map": "map", "hit_rate": "hit_rate"}


@dataclass(frozen=True)
class ModelInfo:
    """A recommender a spec can name: where its class lives, its first-trial defaults,
    its default search space, and whether it takes the run's ``seed``."""

    name: str
    module: str
    cls: str
    defaults: dict[str, Any]
    space: dict[str, SearchParam]
    fixed: dict[str, Any] = field(default_factory=dict)
    requires: str | None = None  # an optional library the model needs
    seeded: bool = False
    item_features: bool = False  # fit(interactions, item_features)

    @property
    def installed(self) -> bool:
        return self.requires is None or available(self.requires)

    def load(self) -> type[Recommender]:
        module = importlib.import_module(self.module)
        cls: type[Recommender] = getattr(module, self.cls)
        return cls

    def parameters(self) -> list[str]:
        """The constructor's parameter names (``seed`` excluded: it comes from the spec)."""
        signature = inspect.signature(self.load().__init__)
        # ``seed`` comes from the spec; ``cf`` (the hybrid's inner model) is not a setting
        # a YAML file can hold: the hybrid uses its default (ItemKNN).
        return [p for p in signature.parameters if p not in ("self", "seed", "cf")]


def _int(low: int, high: int, *, log: bool = False) -> SearchParam:
    return SearchParam(low=low, high=high, log=log, integer=True)


def _float(low: float, high: float, *, log: bool = False) -> SearchParam:
    return SearchParam(low=low, high=high, log=log)


def model_catalogue() -> dict[str, ModelInfo]:
    """Every recommender forgeml can tune, installed or not, in the default order."""
    models = [
        ModelInfo("popularity", "forgeml.recommend.models", "Popularity", {}, {}),
        ModelInfo(
            "itemknn",
            "forgeml.recommend.models",
            "ItemKNN",
            {"neighbours": 100, "shrink": 0.0},
            {"neighbours": _int(5, 1000, log=True), "shrink": _float(0.0, 100.0)},
        ),
        ModelInfo(
            "ease",
            "forgeml.recommend.models",
            "EASE",
            # First trial: the solve over items with >= 5 users (a 5-core, as is common
            # practice): as good as every item on MovieLens' validation splits, and the
            # cubic solve shrinks with the catalogue (docs/recommendation.md).
            {"lam": 500.0, "min_item_users": 5},
            {
                "lam": _float(1.0, 100_000.0, log=True),
                "min_item_users": _int(1, 100, log=True),
            },
        ),
        ModelInfo(
            "als",
            "forgeml.recommend.als",
            "ALS",
            # First trial: implicit's regularization and alpha with 64 factors, the best
            # of forgeml's and implicit's defaults and this on MovieLens' validation
            # splits (docs/recommendation.md). ALS()'s own defaults stay 0.05 and 2.0:
            # their factors give an HNSW index a higher recall (0.97 vs 0.95 at 100k items).
            {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15},
            {
                "factors": _int(8, 256, log=True),
                "regularization": _float(1e-4, 1.0, log=True),
                "alpha": _float(0.1, 100.0, log=True),
                "iterations": _int(5, 40),
            },
            requires="implicit",
            seeded=True,
        ),
    ]
    if importlib.util.find_spec("forgeml.recommend.bpr") is not None:
        models.append(
            ModelInfo(
                "bpr",
                "forgeml.recommend.bpr",
                "BPR",
                {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100},
                {
                    "factors": _int(8, 256, log=True),
                    "learning_rate": _float(1e-3, 0.3, log=True),
                    "regularization": _float(1e-5, 0.1, log=True),
                    "iterations": _int(20, 400, log=True),
                },
                fixed={"threads": 1},  # parallel SGD is not reproducible
                requires="implicit",
                seeded=True,
            )
        )
    if importlib.util.find_spec("forgeml.recommend.hybrid") is not None:
        models.append(
            ModelInfo(
                "hybrid",
                "forgeml.recommend.hybrid",
                "Hybrid",
                {"alpha": 0.5, "neighbours": 20},
                {"alpha": _float(0.0, 1.0), "neighbours": _int(5, 200, log=True)},
                item_features=True,
            )
        )
    return {m.name: m for m in models}


@dataclass(frozen=True)
class Candidate:
    """One model to tune: its searched dimensions, fixed parameters and first trial."""

    info: ModelInfo
    space: dict[str, SearchParam]
    fixed: dict[str, Any]
    defaults: dict[str, Any]

    @property
    def name(self) -> str:
        return self.info.name


def resolve_candidates(
    listed: Sequence[CandidateSpec] | None,
    *,
    field: str = "recommendation.models",
    n_items: int | None = None,
    item_features: bool = False,
) -> list[Candidate]:
    """The candidates of a spec (``None``: every installed model) merged into their
    defaults. Unknown names and parameters are :class:`ConfigError` naming the field; a
    listed model whose library is missing is a :class:`ConfigError` naming the extra.
    With ``n_items``, ``auto`` leaves EASE out of catalogues larger than it accepts;
    models that need item features are in ``auto`` only when ``item_features`` is true."""
    catalogue = model_catalogue()
    if listed is None:
        chosen = [
            CandidateSpec(name=n)
            for n, info in catalogue.items()
            if info.installed and (item_features or not info.item_features)
        ]
        if n_items is not None and n_items > _ease_max_items():
            chosen = [c for c in chosen if c.name != "ease"]
    else:
        chosen = list(listed)
    out = []
    for i, spec in enumerate(chosen):
        path = f"{field}[{i}]"
        info = catalogue.get(spec.name)
        if info is None:
            raise ConfigError(
                f"{path}: unknown recommender '{spec.name}'; known: {', '.join(catalogue)}"
            )
        if not info.installed:
            raise ConfigError(
                f"{path}: '{spec.name}' needs the optional package '{info.requires}'",
                hint="pip install 'forgeml[rec]'",
            )
        if info.item_features and not item_features:
            raise ConfigError(
                f"{path}: '{spec.name}' needs item features: set recommendation.item_features"
            )
        known = info.parameters()
        for where, names in (("params", spec.params), ("search", spec.search)):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigError(
                    f"{path}.{where}: unknown parameter '{unknown[0]}' for {spec.name} "
                    f"(parameters: {', '.join(known) or 'none'})"
                )
        # Only what the class takes now: a default dimension for a parameter the model
        # no longer has is dropped rather than failing every trial.
        space = {k: v for k, v in info.space.items() if k in known and k not in spec.params}
        for key, param in spec.search.items():
            if key in spec.params:
                raise ConfigError(f"{path}.search.{key}: also fixed in params; keep one")
            space[key] = param
        fixed = {**{k: v for k, v in info.fixed.items() if k in known}, **spec.params}
        _check_values(info, fixed, space, path)
        defaults = {k: v for k, v in info.defaults.items() if k in space and _inside(space[k], v)}
        out.append(Candidate(info, space, fixed, defaults))
    return out


def _check_values(
    info: ModelInfo, fixed: dict[str, Any], space: dict[str, SearchParam], path: str
) -> None:
    """A fixed value, a search choice or a search bound the model refuses is a
    :class:`ConfigError` naming the field (before any data is read)."""
    cls = info.load()
    for name, problem in cls.param_problems(fixed):
        raise ConfigError(f"{path}.params.{name}: {problem}")
    for name, param in space.items():
        values = param.choices if param.choices is not None else [param.low, param.high]
        for value in values:
            if param.integer and param.choices is None and isinstance(value, float):
                value = int(value)
            for _, problem in cls.param_problems({name: value}):
                raise ConfigError(f"{path}.search.{name}: {problem}")


def _ease_max_items() -> int:
    from forgeml.recommend.models import EASE

    return int(EASE().max_items)


def _inside(param: SearchParam, value: Any) -> bool:
    if param.choices is not None:
        return value in param.choices
    assert param.low is not None and param.high is not None
    return param.low <= value <= param.high


def build_model(candidate: Candidate, params: dict[str, Any], seed: int) -> Recommender:
    """An unfitted model with ``params`` (the run's ``seed`` where the model takes one)."""
    kwargs = dict(params)
    if candidate.info.seeded:
        kwargs["seed"] = seed
    return candidate.info.load()(**kwargs)


def fit_model(
    candidate: Candidate,
    params: dict[str, Any],
    seed: int,
    train: Interactions,
    item_features: pl.DataFrame | None = None,
) -> Recommender:
    """:func:`build_model`, fitted on ``train`` (with ``item_features`` where the model
    uses them)."""
    model = build_model(candidate, params, seed)
    if candidate.info.item_features:
        return model.fit(train, item_features)  # type: ignore[call-arg]
    return model.fit(train)


@dataclass
class RecTrial:
    """One trial: ``number`` counts across all candidates; ``state`` is ``complete`` or
    ``failed`` (with ``error``); ``value`` the validation metric."""

    number: int
    model: str
    params: dict[str, Any]
    state: str
    value: float | None
    duration_s: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "model": self.model,
            "params": self.params,
            "state": self.state,
            "value": self.value,
            "duration_s": round(self.duration_s, 4),
            "error": self.error,
        }


@dataclass
class TuneResult:
    """Every trial, the best trial of each candidate, and the best overall."""

    metric: str
    trials: list[RecTrial]
    validation_users: int
    validation_events: int

    def best_of(self, model: str) -> RecTrial | None:
        done = [t for t in self.trials if t.model == model and t.state == "complete"]
        return max(done, key=lambda t: (t.value or 0.0, -t.number)) if done else None

    @property
    def best(self) -> RecTrial:
        done = [t for t in self.trials if t.state == "complete"]
        return max(done, key=lambda t: (t.value or 0.0, -t.number))

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(t.model for t in self.trials))

    @property
    def counts(self) -> dict[str, int]:
        states = [t.state for t in self.trials]
        return {
            "total": len(states),
            "complete": states.count("complete"),
            "pruned": 0,
            "failed": states.count("failed"),
        }

    def leaderboard(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Trials best first (complete before failed)."""

        def key(t: RecTrial) -> tuple[int, float, int]:
            return (t.state != "complete", -(t.value or 0.0), t.number)

        rows = [t.to_dict() for t in sorted(self.trials, key=key)]
        return rows if limit is None else rows[:limit]


def tune(
    train: Interactions,
    candidates: Sequence[Candidate],
    *,
    k: int = 10,
    metric: str = "ndcg",
    seed: int = 0,
    max_trials: int | None = None,
    max_seconds: float | None = None,
    sampler: str = "tpe",
    startup_trials: int = 6,
    item_features: pl.DataFrame | None = None,
    on_trial: Callable[[RecTrial, RecTrial | None], None] | None = None,
    validation_events: int = 3,
) -> TuneResult:
    """Search every candidate on a split of ``train`` (which needs times) holding out each
    user's latest ``validation_events`` events (all but the first for users with fewer);
    see the module docstring. Raises :class:`TrainingError` when no trial of any
    candidate completes, :class:`DataError` when no user has two training events."""
    import optuna

    from forgeml.recommend.evaluate import evaluate
    from forgeml.recommend.split import leave_last_n_out

    if max_trials is None and max_seconds is None:
        raise ValueError("tune needs max_trials, max_seconds or both")
    if validation_events < 1:
        raise ValueError(f"validation_events must be >= 1, got {validation_events}")
    if not candidates:
        raise ConfigError("recommendation.models: no model to tune")
    inner = leave_last_n_out(train, n=validation_events, min_train=1)
    if inner.test.n_events == 0:
        raise DataError(
            "cannot tune: no user has two training events, so there is nothing to validate on"
        )
    key = f"{METRIC_KEYS[metric]}@{k}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shares = _trial_shares(candidates, max_trials)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    trials: list[RecTrial] = []
    best: RecTrial | None = None
    for index, candidate in enumerate(candidates):
        study = optuna.create_study(
            direction="maximize", sampler=_sampler(sampler, seed, startup_trials)
        )
        if candidate.defaults:
            study.enqueue_trial(candidate.defaults)
        remaining = len(candidates) - index
        stop_at = None
        if deadline is not None:
            stop_at = time.monotonic() + max(deadline - time.monotonic(), 0.0) / remaining
        n_done = 0
        while True:
            if shares is not None and n_done >= shares[index]:
                break
            if stop_at is not None and n_done > 0 and time.monotonic() >= stop_at:
                break
            trial = study.ask()
            params = {**candidate.fixed, **_suggest(trial, candidate.space)}
            record = _run_trial(
                candidate, params, len(trials), inner, k, key, seed, item_features, evaluate
            )
            if record.state == "complete":
                assert record.value is not None
                study.tell(trial, record.value)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            trials.append(record)
            n_done += 1
            if record.state == "complete" and (
                best is None or (record.value or 0) > (best.value or 0)
            ):
                best = record
            if on_trial is not None:
                on_trial(record, best)
            if not candidate.space:
                break  # nothing to search: one trial says it all
    if best is None:
        errors = "; ".join(f"{t.model}: {t.error}" for t in trials[:3])
        raise TrainingError(f"no recommender could be trained ({errors})")
    return TuneResult(key, trials, len(set(inner.test.user_codes.tolist())), inner.test.n_events)


def _run_trial(
    candidate: Candidate,
    params: dict[str, Any],
    number: int,
    inner: Any,
    k: int,
    key: str,
    seed: int,
    item_features: pl.DataFrame | None,
    evaluate: Callable[..., dict[str, float]],
) -> RecTrial:
    started = time.monotonic()
    try:
        model = fit_model(candidate, params, seed, inner.train, item_features)
        value = float(evaluate(model, inner.train, inner.test, k=k)[key])
        if not math.isfinite(value):
            raise TrainingError(f"{key} is {value}")
    except Exception as exc:  # a failed trial is recorded, the search goes on
        return RecTrial(
            number,
            candidate.name,
            params,
            "failed",
            None,
            time.monotonic() - started,
            error=f"{type(exc).__name__}: {exc}",
        )
    return RecTrial(number, candidate.name, params, "complete", value, time.monotonic() - started)


def _trial_shares(candidates: Sequence[Candidate], max_trials: int | None) -> list[int] | None:
    """Trials per candidate: one for a model without parameters, the rest shared out
    evenly (earlier candidates get the remainder); every candidate gets at least one."""
    if max_trials is None:
        return None
    fixed = [c for c in candidates if not c.space]
    searched = [c for c in candidates if c.space]
    left = max(max_trials - len(fixed), len(searched))
    each, extra = divmod(left, max(len(searched), 1))
    shares = []
    i = 0
    for c in candidates:
        if not c.space:
            shares.append(1)
        else:
            shares.append(each + (1 if i < extra else 0))
            i += 1
    return shares


def _sampler(kind: str, seed: int, startup_trials: int) -> optuna.samplers.BaseSampler:
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)


def _suggest(trial: optuna.Trial, space: dict[str, SearchParam]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, param in space.items():
        if param.choices is not None:
            out[name] = trial.suggest_categorical(name, param.choices)
            continue
        assert param.low is not None and param.high is not None
        if param.integer:
            step = int(param.step) if param.step and not param.log else 1
            out[name] = trial.suggest_int(
                name, int(param.low), int(param.high), step=step, log=param.log
            )
        else:
            step_f = None if param.log else param.step
            out[name] = trial.suggest_float(name, param.low, param.high, step=step_f, log=param.log)
    return out
