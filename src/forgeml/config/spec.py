"""The pipeline spec: what ``forgeml.yaml`` may contain.

Pydantic lives here, at the edge; every section forbids unknown keys so a typo is an error
that names its path instead of a silently ignored setting. Defaults are the ones a user
gets from ``forgeml init``. Semantic checks that need other layers (is this model name
known? is this metric valid for the task?) happen in :mod:`forgeml.workflow.check`.
"""

from __future__ import annotations

import difflib
import itertools
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "BudgetSpec",
    "CandidateSpec",
    "CategoricalSpec",
    "ColumnFeatureSpec",
    "ColumnSpec",
    "ColumnType",
    "DataSpec",
    "DatetimeSpec",
    "EngineSpec",
    "FeaturesSpec",
    "ModelsSpec",
    "NumericSpec",
    "RecommendationSpec",
    "RecommendationSplitSpec",
    "RegistrySpec",
    "SearchParam",
    "Spec",
    "SpecTask",
    "SplitSpec",
    "TaskKind",
    "TextSpec",
    "TuningSpec",
    "ValidationSpec",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

ColumnType = Literal["int", "float", "bool", "string", "categorical", "datetime", "text", "id"]
TaskKind = Literal["classification", "regression"]  # the tabular tasks
# A separate Literal (not one of three values) so a typo still reads "expected
# 'classification' or 'regression'", as it did before recommendation existed.
SpecTask = TaskKind | Literal["recommendation"]
Scalar = str | int | float | bool
DatetimePart = Literal[
    "year", "month", "day", "dayofweek", "dayofyear", "hour", "minute", "is_weekend", "epoch"
]
_DEFAULT_PARTS: tuple[DatetimePart, ...] = (
    "year",
    "month",
    "day",
    "dayofweek",
    "hour",
    "is_weekend",
)
Encoder = Literal["onehot", "hash", "frequency", "target"]


class _Section(BaseModel):
    """Base of every spec section: unknown keys are errors, values are validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class DataSpec(_Section):
    """Where the training table comes from.

    ``source`` is a local path, an fsspec URI (``s3://bucket/x.parquet``), a SQLAlchemy URL
    (with ``query`` or ``table``), or ``duckdb`` (with a DuckDB ``query`` that may read
    files). It may be omitted only when a frame is passed from Python. ``test_source``
    (same format options) is an explicit held-out test set; without it the test set is
    split off ``source`` as ``split`` says.
    """

    source: str | None = None
    test_source: str | None = None
    format: Literal["auto", "csv", "parquet", "sql", "duckdb"] = "auto"
    query: str | None = None
    table: str | None = None
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf8"
    header: bool = True
    null_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "NaN", "null", "NULL"])
    storage_options: dict[str, Any] = Field(default_factory=dict)
    chunk_rows: int = Field(262_144, ge=1_000, le=10_000_000)

    @model_validator(mode="after")
    def _sql_needs_query(self) -> DataSpec:
        if self.format in ("sql", "duckdb") and not (self.query or self.table):
            raise ValueError(f"format '{self.format}' needs 'query' or 'table'")
        if self.query and self.table:
            raise ValueError("give either 'query' or 'table', not both")
        return self


class ColumnSpec(_Section):
    """Declared type and validation rules of one column.

    Rows breaking a row rule (type, min/max, allowed, not_null, unique, regex) are
    quarantined with a reason; ``max_null_fraction`` is a column rule that stops the run.
    """

    type: ColumnType | None = None
    not_null: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[Scalar] | None = None
    unique: bool = False
    regex: str | None = None
    max_null_fraction: float | None = Field(None, ge=0.0, le=1.0)
    datetime_format: str | None = None

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _range_ordered(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.allowed is not None and len(self.allowed) == 0:
            raise ValueError("allowed must list at least one value")
        return self


class ValidationSpec(_Section):
    """How many bad rows a run tolerates and where quarantined rows go."""

    max_bad_fraction: float = Field(0.05, ge=0.0, le=1.0)
    quarantine_dir: str | None = None


class SplitSpec(_Section):
    """Held-out test split and the cross-validation used while tuning."""

    strategy: Literal["auto", "random", "stratified", "group", "time"] = "auto"
    test_size: float = Field(0.2, gt=0.0, lt=0.9)
    folds: int = Field(3, ge=1, le=20)
    validation_size: float = Field(0.2, gt=0.0, lt=0.9)
    group_column: str | None = None
    time_column: str | None = None

    @model_validator(mode="after")
    def _columns_for_strategy(self) -> SplitSpec:
        if self.strategy == "group" and not self.group_column:
            raise ValueError("strategy 'group' needs group_column")
        if self.strategy == "time" and not self.time_column:
            raise ValueError("strategy 'time' needs time_column")
        return self


class NumericSpec(_Section):
    impute: Literal["median", "mean", "zero"] = "median"
    scale: Literal["standard", "minmax", "none"] = "standard"
    clip_quantiles: tuple[float, float] | None = (0.001, 0.999)
    missing_indicator: bool = True

    @field_validator("clip_quantiles")
    @classmethod
    def _quantiles(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not (0.0 <= value[0] < value[1] <= 1.0):
            raise ValueError("expected two quantiles with 0 <= low < high <= 1")
        return value


class CategoricalSpec(_Section):
    onehot_max_cardinality: int = Field(16, ge=0, le=1024)
    hash_buckets: int = Field(32, ge=2, le=1 << 20)
    frequency: bool = True
    target_encoding: bool = True
    target_smoothing: float = Field(20.0, ge=0.0)
    min_frequency: int = Field(1, ge=1)


class DatetimeSpec(_Section):
    parts: list[DatetimePart] = Field(default_factory=lambda: list(_DEFAULT_PARTS))


class TextSpec(_Section):
    max_features: int = Field(20_000, ge=1)
    ngram_range: tuple[int, int] = (1, 2)
    min_df: int = Field(2, ge=1)
    lowercase: bool = True
    sublinear_tf: bool = True

    @field_validator("ngram_range")
    @classmethod
    def _ngrams(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not (1 <= value[0] <= value[1] <= 5):
            raise ValueError("expected 1 <= low <= high <= 5")
        return value


class ColumnFeatureSpec(_Section):
    """Per-column override of how a categorical column is encoded."""

    encoders: list[Encoder] = Field(min_length=1)


class FeaturesSpec(_Section):
    drop: list[str] = Field(default_factory=list)
    numeric: NumericSpec = Field(default_factory=NumericSpec)
    categorical: CategoricalSpec = Field(default_factory=CategoricalSpec)
    datetime: DatetimeSpec = Field(default_factory=DatetimeSpec)
    text: TextSpec = Field(default_factory=TextSpec)
    columns: dict[str, ColumnFeatureSpec] = Field(default_factory=dict)


class SearchParam(_Section):
    """One dimension of a search space: a numeric range or a list of choices."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: list[Scalar | None] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParam:
        has_range = self.low is not None or self.high is not None
        if self.choices is not None:
            if has_range:
                raise ValueError("give either low/high or choices, not both")
            if not self.choices:
                raise ValueError("choices must list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("expected low and high, or choices")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        return self


class CandidateSpec(_Section):
    """A candidate model: fixed ``params`` and ``search`` overrides of its default space."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, SearchParam] = Field(default_factory=dict)


def _names_to_candidates(value: Any) -> Any:
    """A candidate list as written: ``auto`` (None) or names and mappings, names made
    mappings."""
    if value == "auto":
        return None
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


def _unique_candidates(value: list[CandidateSpec] | None, what: str) -> list[CandidateSpec] | None:
    """Refuse an empty list and a name listed twice (``what``: candidate, model)."""
    if value is not None:
        if not value:
            raise ValueError(f"list at least one {what}, or 'auto'")
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{what} listed twice: {', '.join(dupes)}")
    return value


class ModelsSpec(_Section):
    """Candidate models; ``auto`` (or leaving it out) means every built-in candidate whose
    library is installed. A candidate is a name or a :class:`CandidateSpec` mapping."""

    candidates: list[CandidateSpec] | None = None

    @field_validator("candidates", mode="before")
    @classmethod
    def _strings_are_names(cls, value: Any) -> Any:
        return _names_to_candidates(value)

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, value: list[CandidateSpec] | None) -> list[CandidateSpec] | None:
        return _unique_candidates(value, "candidate")


class BudgetSpec(_Section):
    """Stop tuning after ``seconds`` of wall time or ``trials`` trials, whichever comes first.

    ``seconds`` covers the search and the final refit of the best model on all training
    rows: the search ends early by the refit time it expects.
    """

    seconds: float | None = Field(None, gt=0)
    trials: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetSpec:
        if self.seconds is None and self.trials is None:
            raise ValueError("set seconds, trials, or both (each must be > 0)")
        return self


class TuningSpec(_Section):
    """How the search runs. ``max_rows``: trials cross-validate on at most this many
    training rows (a stratified, group- or time-respecting sample) so a time budget buys
    many trials on large data; the final model is refitted on every training row."""

    budget: BudgetSpec = Field(default_factory=lambda: BudgetSpec(seconds=120))
    max_rows: int | None = Field(100_000, ge=100)
    # Most distinct trials averaged in the final model (greedy selection on out-of-fold
    # predictions); 1 keeps the single best configuration.
    ensemble: int = Field(5, ge=1, le=20)
    metric: str | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    pruning: bool = True
    startup_trials: int = Field(6, ge=0)
    early_stopping_rounds: int = Field(50, ge=1)
    class_weight: Literal["auto", "balanced", "none"] = "auto"
    threshold: Literal["f1", "balanced_accuracy", "none"] = "f1"
    storage: str | None = Field(
        None,
        min_length=1,
        description="Where the Optuna study lives: unset keeps it in memory; a SQLAlchemy "
        "URL (`sqlite:///file.db`, `postgresql://host/db`) stores every trial there as it "
        "finishes, in the study `<name>-<run id>`.",
    )
    resume_study: str | None = Field(
        None,
        min_length=1,
        description="A study in `storage` to continue instead of starting a new one; its "
        "finished trials are kept and count against `budget.trials`.",
    )


class EngineSpec(_Section):
    kind: Literal["local", "ray"] = "local"
    workers: int | None = Field(None, ge=1)
    distributed_training: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Whether the final LightGBM model is trained data-parallel on Ray "
        "Train workers: `auto` with `kind: ray` and at least `distributed_min_rows` "
        "training rows, `always` (needs `kind: ray`), `never`.",
    )
    distributed_min_rows: int = Field(
        1_000_000,
        ge=1,
        description="`distributed_training: auto`: the fewest training rows that are "
        "trained data-parallel.",
    )
    train_workers: int = Field(
        2,
        ge=1,
        le=1024,
        description="Ray Train workers for distributed training; each gets a contiguous "
        "shard of the training rows.",
    )

    @model_validator(mode="after")
    def _distributed_needs_ray(self) -> EngineSpec:
        if self.distributed_training == "always" and self.kind != "ray":
            raise ValueError(
                "distributed_training 'always' needs kind 'ray' (or --engine ray); "
                "use 'auto' or 'never' with the local engine"
            )
        return self


class RegistrySpec(_Section):
    """Where models and runs are recorded.

    ``uri`` is a folder (embedded: SQLite metadata plus an artifacts folder inside it) or a
    SQLAlchemy URL such as ``postgresql://user@host/db``, in which case ``artifacts`` names
    the artifacts folder (a local or mounted path). The database records that folder on
    first use, so later users of the same URL find the artifacts without naming it.
    """

    uri: str = ".forgeml"
    artifacts: str | None = None
    promote: Literal["if_none", "always", "never"] = "if_none"


RecommendationMetric = Literal["ndcg", "recall", "map", "hit_rate"]


class RecommendationSplitSpec(_Section):
    """How test events are held out of an interaction log.

    ``leave_last_n``: each user's ``n`` latest events are the test (a user with ``n``
    events or fewer stays in train only). ``time``: events at or after ``at`` (an ISO
    date/datetime, or a number in the time column's units) are the test; test events of
    users with nothing before ``at`` are counted and left out. Without a time column the
    row order is the time order.
    """

    strategy: Literal["leave_last_n", "time"] = Field(
        "leave_last_n",
        description="`leave_last_n`: each user's latest events are the test; "
        "`time`: events from `at` on are the test.",
    )
    n: int = Field(
        1,
        ge=1,
        le=1000,
        description="`leave_last_n`: how many latest events per user are held out.",
    )
    at: datetime | date | float | None = Field(
        None,
        description="`time`: the first test date or time (ISO), or a number in "
        "`recommendation.time_unit`.",
    )

    @model_validator(mode="after")
    def _fields_for_strategy(self) -> RecommendationSplitSpec:
        if self.strategy == "time" and self.at is None:
            raise ValueError("strategy 'time' needs 'at' (the first test date or time)")
        if self.strategy == "leave_last_n" and self.at is not None:
            raise ValueError("'at' applies to strategy 'time' only")
        if self.strategy == "time" and "n" in self.model_fields_set:
            raise ValueError("'n' applies to strategy 'leave_last_n' only")
        return self


class RecommendationSpec(_Section):
    """The ``recommendation:`` section of a ``task: recommendation`` spec.

    ``user``/``item``: the id columns (any type; read as text). ``time``: optional event
    time (datetime, ISO string, or epoch numbers in ``time_unit``). ``weight`` (also
    spelled ``rating``): optional event value; with ``positive_threshold`` (explicit
    feedback) only events with a weight at or above it are positives. ``k`` and
    ``metric``: what tuning optimises (``ndcg`` -> NDCG@k). ``models``: names
    (``popularity``, ``itemknn``, ``ease``, ``als``, and ``bpr``/``hybrid`` where
    available) or :class:`CandidateSpec` mappings with fixed ``params`` and ``search``
    overrides; ``auto`` (or leaving it out) means every available one.
    ``future_tolerance_s``: events later than now plus this many seconds are quarantined.
    ``user_features``: optional user table (one row per user) for a cold-start
    fallback from user attributes and per-attribute metrics.
    ``segments``: upper bounds of the user segments by number of training events
    (default ``[5, 20]``: 1-5, 6-20, 21+). ``refit_full``: after evaluation, the registered
    model is refitted on every event (train and test), so it knows each user's latest
    events; the reported metrics are those of the model fitted on train only.
    """

    user: str = Field(min_length=1, description="The user id column (read as text).")
    item: str = Field(min_length=1, description="The item id column (read as text).")
    time: str | None = Field(
        None,
        min_length=1,
        description="Event time column: datetimes, ISO strings or epoch numbers. Without it "
        "the row order is the time order.",
    )
    weight: str | None = Field(
        None,
        min_length=1,
        validation_alias=AliasChoices("weight", "rating"),
        description="Event weight or rating column (also spelled `rating`); every event "
        "weighs 1 without it.",
    )
    positive_threshold: float | None = Field(
        None,
        description="Explicit feedback: only events with a weight at or above this are "
        "positives; the others are counted, not learned from. Needs `weight`.",
    )
    time_unit: Literal["s", "ms", "us", "ns"] = Field(
        "s", description="Unit of epoch numbers in the time column."
    )
    future_tolerance_s: float = Field(
        86_400.0,
        ge=0.0,
        description="Events later than now plus this many seconds are quarantined "
        "(`future:<col>`).",
    )
    split: RecommendationSplitSpec = Field(
        default_factory=RecommendationSplitSpec, description="How test events are held out."
    )
    k: int = Field(10, ge=1, le=1000, description="Length of the recommendation lists scored.")
    metric: RecommendationMetric = Field(
        "ndcg", description="What tuning maximises, at `k`, on the validation split."
    )
    models: list[CandidateSpec] | None = Field(
        None,
        description="Recommenders to tune: `popularity`, `itemknn`, `ease`, `als`, `bpr` "
        "(extra `rec`), `hybrid` (needs `item_features`); names or `{name, params, search}`. "
        "`auto` or absent: every installed one.",
    )
    item_features: str | None = Field(
        None,
        min_length=1,
        description="A table with one row per item (path or URI) for the hybrid model; its "
        "feature columns are inferred unless the hybrid's `params` name them.",
    )
    user_features: str | None = Field(
        None,
        min_length=1,
        description="A table with one row per user (path or URI) with the `user` id column and "
        "attributes: string/boolean columns and integers with at most 50 values are used "
        "(others are listed in the run notes). Gives new users recommendations from their "
        "attributes (popularity per attribute value), saved with the model, and per-attribute "
        "metrics in the report.",
    )
    segments: list[int] = Field(
        default_factory=lambda: [5, 20],
        description="Upper bounds of the user segments by training items (1-5, 6-20, 21+).",
    )
    refit_full: bool = Field(
        True,
        description="Refit the chosen model on every event before registering it (the "
        "metrics stay those of the train-only fit).",
    )
    ann_index: Literal["auto", "always", "never"] = Field(
        "auto",
        description="An approximate nearest-neighbour (HNSW) index over the items, built at "
        "registration for factor models (als, bpr) and used by the server: `auto` builds it "
        "for catalogues of 50,000 items or more; its recall@k against exact top-k is "
        "measured and reported.",
    )

    @field_validator("models", mode="before")
    @classmethod
    def _strings_are_names(cls, value: Any) -> Any:
        return _names_to_candidates(value)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value: list[CandidateSpec] | None) -> list[CandidateSpec] | None:
        return _unique_candidates(value, "model")

    @field_validator("segments")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b < 1 for b in value) or any(a >= b for a, b in itertools.pairwise(value)):
            raise ValueError("expected increasing positive numbers of training events")
        return value

    @model_validator(mode="after")
    def _columns_consistent(self) -> RecommendationSpec:
        named = [("user", self.user), ("item", self.item), ("time", self.time)]
        named.append(("weight", self.weight))
        seen: dict[str, str] = {}
        for role, column in named:
            if column is None:
                continue
            if column in seen:
                raise ValueError(f"{role} and {seen[column]} are the same column '{column}'")
            seen[column] = role
        if self.positive_threshold is not None and self.weight is None:
            raise ValueError("positive_threshold needs a weight (rating) column")
        if self.split.strategy == "time" and self.time is None:
            raise ValueError("split strategy 'time' needs a time column")
        return self


def _means_recommendation(task: Any) -> bool:
    """``recommendation`` or a near miss of it (``recomendation``, ``Recommendations``)."""
    if not isinstance(task, str) or task in ("classification", "regression"):
        return False
    return bool(difflib.get_close_matches(task.lower(), ["recommendation"], cutoff=0.75))


_TABULAR_ONLY = {
    "split": "recommendation.split",
    "features": None,
    "columns": None,
    "models": "recommendation.models",
}


class Spec(_Section):
    """A whole pipeline: data -> validation -> features -> tuning -> evaluation -> registry.

    With ``task: recommendation`` the ``recommendation`` section is required and ``split``,
    ``features``, ``columns``, ``models`` and ``tuning.metric`` are not used (an error when
    set); ``tuning.budget``, ``tuning.sampler`` and ``tuning.startup_trials`` apply.
    """

    version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN)
    task: SpecTask = Field(
        description="What to predict: classes, a number, or items for users (`recommendation`)."
    )
    # For task 'recommendation' the target is the item column: filled in when left out.
    target: str = Field(
        min_length=1,
        description="The column to predict. Task `recommendation`: leave it out (it is "
        "`recommendation.item`).",
    )
    positive_class: Scalar | None = None
    recommendation: RecommendationSpec | None = Field(
        None,
        validate_default=True,
        description="Task `recommendation`: the interaction log's columns, split, models.",
    )
    data: DataSpec = Field(default_factory=DataSpec)
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    seed: int = Field(0, ge=0, le=2**31 - 1)

    # Set by the loader, not by the file: relative paths in the spec resolve against it.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _recommendation_target(cls, data: Any) -> Any:
        """A recommendation predicts items: ``target`` defaults to ``recommendation.item``."""
        if not isinstance(data, dict) or not _means_recommendation(data.get("task")):
            return data
        if "target" in data:
            return data
        section = data.get("recommendation")
        item = section.get("item") if isinstance(section, dict) else None
        # Without an item column the section's own error says so; the placeholder only
        # keeps a second, misleading "target: required" out of the message.
        return {**data, "target": item if isinstance(item, str) and item else "(item)"}

    @field_validator("task", mode="before")
    @classmethod
    def _near_recommendation(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "recommendation" and _means_recommendation(value):
            raise ValueError(
                "expected 'classification', 'regression' or 'recommendation' "
                "(did you mean 'recommendation'?)"
            )
        return value

    @field_validator("recommendation")
    @classmethod
    def _section_for_task(
        cls, value: RecommendationSpec | None, info: ValidationInfo
    ) -> RecommendationSpec | None:
        task = info.data.get("task")
        if task == "recommendation":
            if value is None:
                raise ValueError(
                    "task 'recommendation' needs this section (at least user and item columns)"
                )
            target = info.data.get("target")
            if target is not None and target != value.item:
                raise ValueError(
                    f"for task 'recommendation' the target is the item column '{value.item}', "
                    f"not '{target}': leave target out"
                )
        elif value is not None and task is not None:
            raise ValueError(f"applies to task 'recommendation' only, not '{task}'")
        return value

    @field_validator("split", "features", "columns", "models")
    @classmethod
    def _tabular_only(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("task") == "recommendation" and info.field_name is not None:
            instead = _TABULAR_ONLY.get(info.field_name)
            where = f"; use {instead}" if instead else ""
            raise ValueError(f"not used by task 'recommendation'{where}")
        return value

    @field_validator("tuning")
    @classmethod
    def _tuning_metric(cls, value: TuningSpec, info: ValidationInfo) -> TuningSpec:
        if info.data.get("task") == "recommendation" and value.metric is not None:
            raise ValueError(
                "metric: task 'recommendation' tunes recommendation.metric at "
                "recommendation.k; leave tuning.metric out"
            )
        return value

    @model_validator(mode="after")
    def _target_not_dropped(self) -> Spec:
        if self.target in self.features.drop:
            raise ValueError(f"target '{self.target}' is listed in features.drop")
        if self.positive_class is not None and self.task != "classification":
            raise ValueError("positive_class only applies to task 'classification'")
        return self

    def resolve_path(self, value: str) -> str:
        """Resolve a relative local path against the spec's folder; URIs pass unchanged."""
        if "://" in value or value.startswith(("duckdb", "sqlite:")):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else self.base_dir / path)
