"""The model registry: runs, model versions, aliases, lineage and verified artifacts.

A registry is a metadata store (SQLite file by default, PostgreSQL by URL) plus a local
artifacts folder; the embedded default is the workspace folder ``.forgeml/``::

    from forgeml.registry import NewVersion, Registry, RunRecord

    with Registry.open(".forgeml") as registry:
        registry.commit_run(run, NewVersion("churn", model_dir, aliases_if_absent=["champion"]))
        version = registry.resolve("churn@champion")     # or "churn@3", or "churn"
        folder = registry.open_artifacts(version)         # every file's sha256 checked first
        registry.set_alias("churn", "champion", 3)        # promote
        registry.rollback("churn")                        # champion back where it was

Nothing here knows what a model file contains: a version is a folder of files.
Submodules load on first use so ``import forgeml.registry`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "AliasChange",
    "CommitResult",
    "ModelDetail",
    "ModelRef",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "Registry",
    "RunRecord",
    "check_writable",
    "mirror_run",
    "new_run_id",
    "parse_ref",
]

_LAZY = {
    "AliasChange": "forgeml.registry.records",
    "CommitResult": "forgeml.registry.records",
    "ModelDetail": "forgeml.registry.records",
    "ModelSummary": "forgeml.registry.records",
    "ModelVersion": "forgeml.registry.records",
    "NewVersion": "forgeml.registry.records",
    "RunRecord": "forgeml.registry.records",
    "new_run_id": "forgeml.registry.records",
    "ModelRef": "forgeml.registry.refs",
    "parse_ref": "forgeml.registry.refs",
    "Registry": "forgeml.registry.store",
    "mirror_run": "forgeml.registry.mlflow_mirror",
    "check_writable": "forgeml.registry.preflight",
}

if TYPE_CHECKING:
    from forgeml.registry.mlflow_mirror import mirror_run
    from forgeml.registry.preflight import check_writable
    from forgeml.registry.records import (
        AliasChange,
        CommitResult,
        ModelDetail,
        ModelSummary,
        ModelVersion,
        NewVersion,
        RunRecord,
        new_run_id,
    )
    from forgeml.registry.refs import ModelRef, parse_ref
    from forgeml.registry.store import Registry


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'forgeml.registry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
