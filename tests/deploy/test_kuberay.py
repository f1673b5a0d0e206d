"""The KubeRay examples in deploy/kuberay, validated offline: the pod templates against
the Kubernetes schemas (strict), the RayCluster/RayJob fields against the KubeRay v1 CRD
fields they use, the Ray version against the image and forgeml's ``ray`` extra, and every
forgeml command line against the CLI itself."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.specifiers import SpecifierSet
from tests.deploy.conftest import k8s_validate

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"
EXAMPLES = sorted(KUBERAY.glob("*.yaml"))

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_COUNT = {"type": "integer", "minimum": 0}
# The fields of ray.io/v1 RayCluster / RayJob that the examples may use, with their types
# from KubeRay's API (ray-operator/apis/ray/v1); anything else is refused.
_GROUP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rayStartParams", "template"],
    "properties": {"rayStartParams": _STRING_MAP, "template": {"type": "object"}},
}
_WORKER_GROUP = {
    **_GROUP,
    "required": ["groupName", "rayStartParams", "template"],
    "properties": {
        **_GROUP["properties"],
        "groupName": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "replicas": _COUNT,
        "minReplicas": _COUNT,
        "maxReplicas": _COUNT,
        "idleTimeoutSeconds": _COUNT,
    },
}
_CLUSTER_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rayVersion", "headGroupSpec"],
    "properties": {
        "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "headGroupSpec": _GROUP,
        "workerGroupSpecs": {"type": "array", "items": _WORKER_GROUP},
    },
}
_JOB_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["entrypoint", "rayClusterSpec"],
    "properties": {
        "entrypoint": {"type": "string", "minLength": 1},
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "ttlSecondsAfterFinished": _COUNT,
        "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
        "backoffLimit": _COUNT,
        "rayClusterSpec": _CLUSTER_SPEC,
    },
}
_SPECS = {"RayCluster": _CLUSTER_SPEC, "RayJob": _JOB_SPEC}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in EXAMPLES for d in yaml.safe_load_all(p.read_text()) if d]


def _cluster(document: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = document["spec"]
    return spec["rayClusterSpec"] if document["kind"] == "RayJob" else spec


def _templates(document: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = _cluster(document)
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [g["template"] for g in groups]


def _image_ray_version() -> str:
    match = re.search(r"^FROM rayproject/ray:(\d+\.\d+\.\d+)-py311 AS runtime$",
                      (KUBERAY / "Dockerfile").read_text(), flags=re.M)  # fmt: skip
    assert match, "deploy/kuberay/Dockerfile must build FROM a pinned rayproject/ray image"
    return match.group(1)


def test_there_are_a_cluster_and_a_job_example() -> None:
    assert {d["kind"] for _, d in _documents()} == {"RayCluster", "RayJob"}


@pytest.mark.parametrize(("name", "document"), _documents(), ids=lambda v: str(v)[:40])
def test_each_example_has_the_fields_kuberay_accepts(name: str, document: dict[str, Any]) -> None:
    assert document["apiVersion"] == "ray.io/v1", name
    assert set(document) == {"apiVersion", "kind", "metadata", "spec"}, name
    k8s_validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]})
    try:
        jsonschema.validate(document["spec"], _SPECS[document["kind"]])
    except jsonschema.ValidationError as exc:
        pytest.fail(f"{name}: spec.{'.'.join(map(str, exc.path))}: {exc.message}")
    for group in _cluster(document).get("workerGroupSpecs", []):
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31)
        assert low <= group.get("replicas", low) <= high, f"{name}: {group['groupName']}"


@pytest.mark.parametrize(("name", "document"), _documents(), ids=lambda v: str(v)[:40])
def test_each_pod_template_is_a_valid_kubernetes_pod_template(
    name: str, document: dict[str, Any]
) -> None:
    for template in _templates(document):
        k8s_validate(
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
             "template": template}
        )  # fmt: skip


def test_every_pod_runs_the_forgeml_ray_image_of_the_same_ray_version() -> None:
    """rayVersion, the image's Ray and forgeml's ``ray`` extra must agree: KubeRay
    starts the pods with the image, and a driver and workers of different Ray versions
    cannot talk."""
    version = _image_ray_version()
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["ray"]
    (requirement,) = extra
    assert version in SpecifierSet(re.sub(r"^ray(\[[^\]]*\])?", "", requirement))
    for name, document in _documents():
        assert _cluster(document)["rayVersion"] == version, name
        for template in _templates(document):
            images = {c["image"] for c in template["spec"]["containers"]}
            assert images == {"forgeml-ray:0.1.0"}, name


def test_the_job_entrypoint_is_a_command_line_forgeml_accepts() -> None:
    """Parsed by forgeml's own CLI (options, types, the engine), not only by eye."""
    from typer.main import get_command

    from forgeml.cli.main import app

    cli = get_command(app)
    jobs = [d for _, d in _documents() if d["kind"] == "RayJob"]
    assert jobs
    for job in jobs:
        program, command, *args = shlex.split(job["spec"]["entrypoint"])
        assert program == "forgeml"
        sub = cli.get_command(
            cli.make_context("forgeml", [command, "--help"], resilient_parsing=True), command
        )  # type: ignore[attr-defined]
        assert sub is not None, f"no forgeml command {command!r}"
        context = sub.make_context(command, list(args))
        assert context.params["engine"] == "ray"


def test_the_head_mounts_what_the_driver_writes_and_workers_need_nothing() -> None:
    """The driver (on the head) writes the registry's artifacts; workers get their data
    through Ray's object store, so only the head mounts the artifacts volume."""
    for name, document in _documents():
        cluster = _cluster(document)
        (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
        assert any(m["mountPath"] == "/forgeml/artifacts" for m in head["volumeMounts"]), name
        assert cluster["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0", name
        for group in cluster.get("workerGroupSpecs", []):
            for container in group["template"]["spec"]["containers"]:
                assert "volumeMounts" not in container, name
