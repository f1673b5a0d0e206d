"""forgeml.data: sources, schema inference, validation + quarantine, fingerprints, splits.

Polars is the frame type inside; :func:`to_polars` converts at the edges.

>>> from forgeml.config.spec import DataSpec
>>> source = open_source(DataSpec(), frame={"x": [1, 2, 3], "y": [0, 1, 0]})
>>> valid, report = validate_source(source, {}, target="y", max_bad_fraction=0.0, quarantine_path=None)
>>> report.column_types, infer_task(valid, "y")
({'x': 'int', 'y': 'int'}, 'classification')
"""

from forgeml.data.base import BadLine, Batch, DataSource, MemorySource
from forgeml.data.casting import cast_to_schema
from forgeml.data.fingerprint import (
    Fingerprint,
    Fingerprinter,
    fingerprint_frame,
    fingerprint_source,
)
from forgeml.data.frame import to_polars
from forgeml.data.quarantine import QuarantineWriter
from forgeml.data.report import ValidationReport
from forgeml.data.schema import infer_schema, infer_task
from forgeml.data.sources import open_source
from forgeml.data.splits import cv_folds, holdout_split
from forgeml.data.stream import ValidationStream, iter_validated, validate_source
from forgeml.data.summary import ColumnSummary
from forgeml.data.validation import Validator

__all__ = [
    "BadLine",
    "Batch",
    "ColumnSummary",
    "DataSource",
    "Fingerprint",
    "Fingerprinter",
    "MemorySource",
    "QuarantineWriter",
    "ValidationReport",
    "ValidationStream",
    "Validator",
    "cast_to_schema",
    "cv_folds",
    "fingerprint_frame",
    "fingerprint_source",
    "holdout_split",
    "infer_schema",
    "infer_task",
    "iter_validated",
    "open_source",
    "to_polars",
    "validate_source",
]
