"""The public surface of forgeml.data is exactly __all__, documented, and cheap to import."""

from __future__ import annotations

import inspect
import subprocess
import sys

import forgeml.data

PUBLIC = {
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
}


def test_all_is_the_public_surface() -> None:
    assert set(forgeml.data.__all__) == PUBLIC
    public = {
        n
        for n in dir(forgeml.data)
        if not n.startswith("_") and not inspect.ismodule(getattr(forgeml.data, n))
    }
    assert public == PUBLIC


def test_public_functions_document_an_example() -> None:
    for name in PUBLIC:
        obj = getattr(forgeml.data, name)
        assert obj.__doc__, name
        if inspect.isfunction(obj):
            assert ">>>" in obj.__doc__, name
        else:  # classes show their use in their own or their module's docstring
            assert ">>>" in obj.__doc__ + (sys.modules[obj.__module__].__doc__ or ""), name


def test_importing_the_data_layer_leaves_heavy_backends_alone() -> None:
    code = (
        "import sys, forgeml.data; "
        "print(sorted(m for m in ('duckdb', 'sqlalchemy', 'pandas', 'sklearn', 'fsspec') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
