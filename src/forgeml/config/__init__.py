"""The pipeline spec (``forgeml.yaml``): pydantic models and the one loader."""

from forgeml.config.loader import dump_spec, load_spec
from forgeml.config.spec import (
    BudgetSpec,
    CandidateSpec,
    ColumnSpec,
    DataSpec,
    FeaturesSpec,
    SearchParam,
    Spec,
)

__all__ = [
    "BudgetSpec",
    "CandidateSpec",
    "ColumnSpec",
    "DataSpec",
    "FeaturesSpec",
    "SearchParam",
    "Spec",
    "dump_spec",
    "load_spec",
]
