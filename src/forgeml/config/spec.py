"""The pipeline spec: what ``forgeml.yaml`` may contain.

Pydantic lives here, at the edge; every section forbids unknown keys so a typo is an error
that names its path instead of a silently ignored setting. Defaults are the ones a user
gets from ``forgeml init``. Semantic checks that need other layers (is this model name
known? is this metric valid for the task?) happen in :mod:`forgeml.workflow.check`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    "RegistrySpec",
    "SearchParam",
    "Spec",
    "SplitSpec",
    "TaskKind",
    "TextSpec",
    "TuningSpec",
    "ValidationSpec",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

ColumnType = Literal["int", "float", "bool", "string", "categorical", "datetime", "text", "id"]
TaskKind = Literal["classification", "regression"]
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


class ModelsSpec(_Section):
    """Candidate models; ``auto`` (or leaving it out) means every built-in candidate whose
    library is installed. A candidate is a name or a :class:`CandidateSpec` mapping."""

    candidates: list[CandidateSpec] | None = None

    @field_validator("candidates", mode="before")
    @classmethod
    def _strings_are_names(cls, value: Any) -> Any:
        if value == "auto":
            return None
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, value: list[CandidateSpec] | None) -> list[CandidateSpec] | None:
        if value is not None:
            if not value:
                raise ValueError("list at least one candidate, or 'auto'")
            names = [c.name for c in value]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"candidate listed twice: {', '.join(dupes)}")
        return value


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


class EngineSpec(_Section):
    kind: Literal["local", "ray"] = "local"
    workers: int | None = Field(None, ge=1)


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


class Spec(_Section):
    """A whole pipeline: data -> validation -> features -> tuning -> evaluation -> registry."""

    version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN)
    task: TaskKind
    target: str = Field(min_length=1)
    positive_class: Scalar | None = None
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
