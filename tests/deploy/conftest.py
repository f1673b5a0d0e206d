"""Fixtures for the deployment tests: a registry with real trained models, a CLI runner
that has the ``deploy`` group, and offline Kubernetes schema validation."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import forgeml

# Oldest and newest Kubernetes minor versions checked: the manifests use only GA APIs
# (apps/v1, autoscaling/v2, policy/v1), so they must pass on both.
K8S_VERSIONS = ("1.30", "1.37")
#: A model name that is not a valid Kubernetes name (case, '_', '.').
AWKWARD_NAME = "Breast_Cancer.v2"


def _spec(name: str, registry: Path) -> dict[str, Any]:
    """A spec that trains in about a second: one linear candidate, one trial, two folds."""
    return {
        "name": name,
        "task": "classification",
        "target": "diagnosis",
        "split": {"folds": 2},
        "models": {"candidates": ["linear"]},
        "tuning": {"budget": {"trials": 1}},
        "engine": {"workers": 1},
        "registry": {"uri": str(registry)},
        "seed": 0,
    }


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory, breast_cancer: pl.DataFrame) -> Path:
    """A registry holding ``cancer`` (versions 1 and 2, champion -> 2) and
    :data:`AWKWARD_NAME` (version 1). Read-only for tests: copy it to change it."""
    registry = tmp_path_factory.mktemp("deploy") / "registry"
    forgeml.run(_spec("cancer", registry), data=breast_cancer)
    forgeml.run(_spec("cancer", registry), data=breast_cancer)
    forgeml.run(_spec(AWKWARD_NAME, registry), data=breast_cancer)
    from forgeml.registry import Registry

    with Registry.open(registry, create=False) as reg:
        reg.set_alias("cancer", "champion", 2)
    return registry


@pytest.fixture
def registry_copy(trained_registry: Path, tmp_path: Path) -> Path:
    """A private, writable copy of :func:`trained_registry`."""
    target = tmp_path / "registry-copy"
    shutil.copytree(trained_registry, target)
    return target


def k8s_validate(document: dict[str, Any]) -> None:
    """Validate one Kubernetes object against the schemas kubernetes-validate ships
    (offline), in strict mode (unknown fields are errors), for every version in
    :data:`K8S_VERSIONS`. A ServiceMonitor (a CRD, no schema shipped) is checked with
    :func:`service_monitor_validate`."""
    import kubernetes_validate

    if document["kind"] == "ServiceMonitor":
        service_monitor_validate(document)
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(
                f"{document['kind']} invalid for Kubernetes {version}: {where}: {exc.message}"
            )


# The fields of monitoring.coreos.com/v1 ServiceMonitor that forgeml writes, with their
# types and patterns from the Prometheus Operator CRD; anything else is refused.
_DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_SERVICE_MONITOR_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["selector", "endpoints"],
    "properties": {
        "selector": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}
            },
        },
        "endpoints": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["port"],
                "properties": {
                    "port": {"type": "string"},
                    "path": {"type": "string", "pattern": "^/"},
                    "interval": {"type": "string", "pattern": _DURATION},
                    "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                },
            },
        },
    },
}


def service_monitor_validate(document: dict[str, Any]) -> None:
    import jsonschema

    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(document) == {"apiVersion", "kind", "metadata", "spec"}
    # Its metadata is a standard ObjectMeta: check it with the schemas of a core kind.
    k8s_validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]})
    jsonschema.validate(document["spec"], _SERVICE_MONITOR_SPEC)


def tree_state(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (``{}`` when it does not exist)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[Callable[[], list[str]]]:
    """A function listing hidden staging folders left in ``tmp_path``."""

    def leftovers() -> list[str]:
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))

    yield leftovers
