"""The model users load: fitted features + fitted estimator + task, as one estimator.

A :class:`ModelBundle` takes raw rows (pandas, Polars, Arrow, dicts) and applies exactly the
feature pipeline fitted at training time before predicting, so batch scoring, the server
and the Python API cannot drift apart. It follows scikit-learn's estimator contract
(``predict``, ``predict_proba``, ``classes_``, ``get_params``) and saves as a folder of
declarative files — a JSON manifest, the feature pipeline as JSON, the estimator in its
native format — each listed with its sha256 in the manifest and checked on load. Nothing is
ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from forgeml.data.frame import to_polars
from forgeml.errors import ArtifactIntegrityError, UsageError
from forgeml.features import FittedFeatures
from forgeml.models.base import FittedEstimator
from forgeml.models.catalog import load_estimator
from forgeml.tasks.info import TaskInfo
from forgeml.tasks.metrics import hard_labels

__all__ = [
    "MANIFEST",
    "ClassifierBundle",
    "ModelBundle",
    "RegressorBundle",
    "load_bundle",
    "make_bundle",
]

MANIFEST = "forgeml-model.json"
FAST_PATH_ROWS = 64  # up to this many rows per call, the records fast path is used
FEATURES_FILE = "features.json"
FORMAT = "forgeml-model"
FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelBundle(BaseEstimator):
    """Raw rows in, predictions out. Build with :func:`make_bundle`, load with :func:`load_bundle`."""

    def __init__(
        self,
        features: FittedFeatures,
        estimator: FittedEstimator,
        task: TaskInfo,
        threshold: float = 0.5,
        metadata: dict[str, Any] | None = None,
        datetime_formats: dict[str, str] | None = None,
        ignored_columns: list[str] | None = None,
    ) -> None:
        self.features = features
        self.estimator = estimator
        self.task = task
        self.threshold = threshold
        self.metadata = metadata
        self.datetime_formats = datetime_formats
        self.ignored_columns = ignored_columns

    # scikit-learn treats the bundle as fitted: it only exists fitted.
    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.asarray(list(self.features.input_columns), dtype=object)

    @property
    def input_schema(self) -> dict[str, str]:
        """The raw columns the model reads, with their declared types."""
        return dict(self.features.input_columns)

    def _frame(self, X: Any) -> pl.DataFrame:
        """Raw rows as a frame; timestamps given as text in a declared (non-ISO) format
        are parsed with that format, as they were in training."""
        frame = to_polars(X)
        parse = [
            pl.col(column).str.to_datetime(fmt, strict=False)
            for column, fmt in (self.datetime_formats or {}).items()
            if column in frame.columns and frame.schema[column] == pl.String
        ]
        return frame.with_columns(parse) if parse else frame

    def _raw(self, X: Any) -> np.ndarray:
        return self.estimator.predict(self.features.transform(self._frame(X)))

    def records_matrix(self, records: Sequence[Mapping[str, Any]]) -> Any:
        """The feature matrix of JSON-like rows (the online path).

        Small batches skip building a frame when the feature pipeline has a records fast
        path; larger ones go through the columnar transform. Both apply the same fitted
        pipeline, so the result is the same either way.
        """
        formats = self.datetime_formats or {}
        rows: Sequence[Mapping[str, Any]] = records
        if formats:
            rows = [_parse_declared(row, formats) for row in records]
        fast = getattr(self.features, "transform_records", None)
        if fast is not None and len(rows) <= FAST_PATH_ROWS:
            return fast(rows)
        return self.features.transform(_records_frame(rows, self.input_schema))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Raw predictions (class probabilities, or values) for JSON-like rows."""
        return self.estimator.predict(self.records_matrix(records))

    def fit(self, X: Any, y: Any) -> ModelBundle:
        """Refit the estimator, with the same hyperparameters, on new rows.

        The fitted feature transforms are kept as they are (so the input contract does not
        change); run ``forgeml run`` to re-tune and refit everything.
        """
        from forgeml.models.catalog import get_adapter
        from forgeml.tasks.info import encode_target

        frame = self._frame(X)
        target = np.asarray(y, dtype=object)
        encoded, task = encode_target(target, self.task.kind, target=self.task.target)
        if self.task.kind == "classification" and set(task.classes) - set(self.task.classes):
            raise UsageError("fit: y has classes the model was not built for")
        if self.task.kind == "classification":
            index = {c: i for i, c in enumerate(self.task.classes)}
            encoded = np.asarray([index[v] for v in target.tolist()], dtype=np.int64)
        adapter = get_adapter(self.estimator.adapter)
        self.estimator = adapter.fit(
            self.features.transform(frame),
            encoded,
            subtype=self.task.subtype,
            n_classes=self.task.n_classes,
            params=self.estimator.params,
            seed=int((self.metadata or {}).get("seed", 0)),
        )
        return self

    def predict_frame(self, X: Any) -> pl.DataFrame:
        """Predictions as columns: ``prediction`` plus ``proba_<class>`` for classifiers."""
        raw = self._raw(X)
        if self.task.kind == "regression":
            return pl.DataFrame({"prediction": np.asarray(raw, dtype=np.float64)})
        labels = self.task.decode(hard_labels(raw, self.task.subtype, self.threshold))
        columns: dict[str, Any] = {"prediction": pl.Series("prediction", labels.tolist())}
        for i, label in enumerate(self.task.classes):
            columns[f"proba_{label}"] = raw[:, i].astype(np.float64)
        return pl.DataFrame(columns)

    def save(self, directory: Path) -> dict[str, str]:
        """Write the bundle's files into ``directory``; returns ``{file: sha256}``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / FEATURES_FILE).write_text(json.dumps(self.features.to_dict()))
        estimator_files = self.estimator.save(directory)
        files = {name: _sha256(directory / name) for name in [FEATURES_FILE, *estimator_files]}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task.to_dict(),
            "threshold": self.threshold,
            "features": FEATURES_FILE,
            "estimator": self.estimator.to_meta(),
            "input_schema": self.input_schema,
            "feature_names": list(self.features.feature_names),
            "datetime_formats": dict(self.datetime_formats or {}),
            "ignored_columns": list(self.ignored_columns or []),
            "files": files,
            "metadata": self.metadata or {},
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return {**files, MANIFEST: _sha256(directory / MANIFEST)}


class ClassifierBundle(ClassifierMixin, ModelBundle):
    """A classification bundle: ``predict`` returns labels, ``predict_proba`` probabilities."""

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.task.classes, dtype=object)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return np.asarray(self._raw(X), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """Labels; binary models apply the tuned decision threshold to ``classes_[1]``."""
        return self.task.decode(hard_labels(self._raw(X), self.task.subtype, self.threshold))


class RegressorBundle(RegressorMixin, ModelBundle):
    """A regression bundle: ``predict`` returns values."""

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self._raw(X), dtype=np.float64)


_FRAME_TYPES = {
    "int": pl.Float64,  # lenient: 41.0 in an int column is still 41
    "float": pl.Float64,
    "bool": pl.Boolean,
    "datetime": pl.String,
    "string": pl.String,
    "categorical": pl.String,
    "text": pl.String,
    "id": pl.String,
}


def _records_frame(rows: Sequence[Mapping[str, Any]], schema: Mapping[str, str]) -> pl.DataFrame:
    """Rows as a frame with the model's columns, typed leniently (bad values -> null)."""
    import datetime as dt

    dtypes: dict[str, Any] = {
        name: _FRAME_TYPES.get(kind, pl.String) for name, kind in schema.items()
    }
    for row in rows[:1]:  # declared-format timestamps arrive parsed (see _parse_declared)
        for name, value in row.items():
            if name in dtypes and isinstance(value, dt.datetime):
                dtypes[name] = pl.Datetime("us")
    cleaned = [{name: row.get(name) for name in schema} for row in rows]
    return pl.DataFrame(cleaned, schema=dtypes, strict=False, orient="row")


def _parse_declared(row: Mapping[str, Any], formats: Mapping[str, str]) -> dict[str, Any]:
    import datetime as dt

    out = dict(row)
    for column, fmt in formats.items():
        value = out.get(column)
        if isinstance(value, str):
            try:
                out[column] = dt.datetime.strptime(value, fmt)
            except ValueError:
                out[column] = None  # does not fit the declared format: a missing value
    return out


def make_bundle(
    features: FittedFeatures,
    estimator: FittedEstimator,
    task: TaskInfo,
    *,
    threshold: float = 0.5,
    metadata: dict[str, Any] | None = None,
    datetime_formats: dict[str, str] | None = None,
    ignored_columns: list[str] | None = None,
) -> ModelBundle:
    """The right bundle class for ``task``; ``ignored_columns`` are training columns the
    model does not read (ids, dropped columns, the target) — known, so a server accepts
    them in requests."""
    cls = ClassifierBundle if task.kind == "classification" else RegressorBundle
    return cls(
        features,
        estimator,
        task,
        threshold=threshold,
        metadata=metadata,
        datetime_formats=datetime_formats,
        ignored_columns=ignored_columns,
    )


def load_bundle(directory: Path) -> ModelBundle:
    """Load a saved bundle, checking the manifest and every file's sha256."""
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(
            f"{directory}: not a forgeml model ({MANIFEST} missing)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ArtifactIntegrityError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactIntegrityError(f"{manifest_path}: not a forgeml model manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactIntegrityError(
            f"{manifest_path}: written by a newer forgeml (format {manifest['format_version']})"
        )
    for name, expected in manifest.get("files", {}).items():
        path = (directory / name).resolve()
        if directory.resolve() not in path.parents:
            raise ArtifactIntegrityError(f"{manifest_path}: file {name!r} escapes the model folder")
        if not path.is_file():
            raise ArtifactIntegrityError(f"{directory}: file {name} is missing")
        found = _sha256(path)
        if found != expected:
            raise ArtifactIntegrityError(
                f"{directory}: file {name}: sha256 mismatch (expected {expected[:12]}…, found {found[:12]}…)"
            )
    try:
        features = FittedFeatures.from_dict(
            json.loads((directory / manifest["features"]).read_text())
        )
        task = TaskInfo.from_dict(manifest["task"])
        threshold = float(manifest.get("threshold", 0.5))
        formats = manifest.get("datetime_formats") or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in formats.items()):
            raise TypeError("datetime_formats must map column names to format strings")
        ignored = manifest.get("ignored_columns") or []
        if not all(isinstance(c, str) for c in ignored):
            raise TypeError("ignored_columns must list column names")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArtifactIntegrityError(f"{manifest_path}: malformed manifest: {exc}") from exc
    estimator = load_estimator(directory, manifest["estimator"])
    return make_bundle(
        features,
        estimator,
        task,
        threshold=threshold,
        metadata=manifest.get("metadata"),
        datetime_formats=formats,
        ignored_columns=list(ignored),
    )
