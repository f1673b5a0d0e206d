"""The reference files in the repository's deploy/ folder: the Dockerfile passes the lint
and builds from what its ignore file lets through; the kustomize files are what the
renderer writes and validate against the Kubernetes schemas."""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from forgeml.deploy import build_kustomization, check_wiring, contract, lint_dockerfile
from forgeml.deploy.dockerfile import parse_dockerfile

from .conftest import k8s_validate

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@functools.cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DEPLOY / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_k8s_files_are_what_the_renderer_writes() -> None:
    stale = _generator().stale()
    assert not stale, (
        f"stale: {', '.join(str(p.relative_to(ROOT)) for p in stale)}; "
        "run `python deploy/gen_reference.py`"
    )


def test_reference_manifests_validate() -> None:
    manifests = [p for p in (DEPLOY / "k8s").rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert {p.name for p in manifests} == {
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "servicemonitor.yaml",
    }
    for path in manifests:
        k8s_validate(yaml.safe_load(path.read_text()))
    objects = build_kustomization(DEPLOY / "k8s")
    monitored = build_kustomization(DEPLOY / "k8s/base") + build_kustomization(
        DEPLOY / "k8s/components/service-monitor", kind="Component"
    )
    for obj in objects:
        k8s_validate(obj)
    assert check_wiring(objects) == [] and check_wiring(monitored) == []


def test_reference_dockerfile_passes_the_lint() -> None:
    assert lint_dockerfile((DEPLOY / "Dockerfile").read_text()) == []


def test_reference_dockerfile_matches_the_contract_and_the_base() -> None:
    instructions = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
    images = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert images == [contract.BASE_IMAGE, "scratch", contract.BASE_IMAGE]
    last = {i.keyword: i for i in instructions}
    assert last["ENTRYPOINT"].exec_form == list(contract.ENTRYPOINT)
    assert last["CMD"].exec_form == contract.serve_args("/models/model")
    assert last["USER"].args == f"{contract.RUNTIME_UID}:{contract.RUNTIME_UID}"
    assert last["EXPOSE"].args == str(contract.PORT)
    health = last["HEALTHCHECK"]
    assert health.args.startswith("CMD [")
    assert f":{contract.PORT}{contract.READY_PATH}" in health.args
    # The reference base runs the model the reference image bakes in.
    deployment = yaml.safe_load((DEPLOY / "k8s/base/deployment.yaml").read_text())
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["args"] == last["CMD"].exec_form


def _build_stage_copies() -> list[str]:
    instructions = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
    sources = []
    for inst in instructions[1:]:
        if inst.keyword == "FROM":
            break
        if inst.keyword == "COPY" and not inst.flags.get("from"):
            sources += inst.args.split()[:-1]
    return sources


def test_the_ignore_file_lets_through_exactly_what_the_build_copies() -> None:
    sources = _build_stage_copies()
    assert sources == ["pyproject.toml", "README.md", "src/"]
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allowlist: .git, .venv, .forgeml never reach the builder
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == set(sources)
    for source in sources:
        assert (ROOT / source).exists()


def test_the_build_stage_files_make_a_wheel(tmp_path: Path) -> None:
    """What the build stage copies is enough for `pip wheel .` (offline, no isolation)."""
    pytest.importorskip("hatchling")
    context = tmp_path / "context"
    for source in _build_stage_copies():
        if source.endswith("/"):
            shutil.copytree(
                ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            context.mkdir(exist_ok=True)
            shutil.copy(ROOT / source, context / source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheels").glob("forgeml-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "forgeml/cli/main.py" in names and "forgeml/deploy/render.py" in names
