"""``forgeml deploy k8s`` on real trained models: every rendered manifest validates
against the Kubernetes schemas (offline, strict), the Dockerfile passes the lint, the
model copy is the registry's, and the options reach the manifests."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from forgeml.deploy import build_kustomization, check_rendered, check_wiring, contract
from forgeml.deploy.dockerfile import lint_dockerfile, parse_dockerfile
from forgeml.deploy.render import SOURCE_FILE
from forgeml.models.bundle import load_bundle
from forgeml.registry import Registry

from .conftest import AWKWARD_NAME, k8s_validate, tree_state

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def render(cli, registry: Path, out: Path, *args: str) -> dict[str, Any]:
    result = cli("deploy", "k8s", *args, "-o", str(out), "--registry", str(registry), "-O", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.fixture
def rendered(cli, trained_registry: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / "out"
    return out, render(cli, trained_registry, out, "cancer@champion", "--service-monitor")


def test_renders_every_file(rendered: tuple[Path, dict[str, Any]], trained_registry: Path) -> None:
    out, result = rendered
    assert result["model"] == "cancer@2"  # champion
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == set(result["files"])
    assert {
        "Dockerfile",
        ".dockerignore",
        "README.md",
        "forgeml-deploy.json",
        "wheels/README.md",
        "model/cancer/forgeml-model.json",
        "k8s/kustomization.yaml",
        "k8s/base/kustomization.yaml",
        "k8s/base/deployment.yaml",
        "k8s/base/service.yaml",
        "k8s/base/hpa.yaml",
        "k8s/base/pdb.yaml",
        "k8s/components/service-monitor/kustomization.yaml",
        "k8s/components/service-monitor/servicemonitor.yaml",
    } <= files
    assert check_rendered(out) == []


def test_every_manifest_validates_against_the_kubernetes_schemas(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = rendered
    manifests = [p for p in (out / "k8s").rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert len(manifests) == 5
    for path in manifests:
        k8s_validate(load(path))
    # ...and as applied: namespace and the kustomization's labels added.
    for obj in build_kustomization(out / "k8s"):
        k8s_validate(obj)


def test_kustomize_resources_exist_and_parse(rendered: tuple[Path, dict[str, Any]]) -> None:
    out, _ = rendered
    objects = build_kustomization(out / "k8s")
    assert sorted(o["kind"] for o in objects) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
    ]
    assert check_wiring(objects) == []
    for obj in objects:
        assert obj["metadata"]["labels"]["forgeml.dev/model"] == "cancer"
        # The base's kustomization labels its own objects (not the component's).
        part_of = obj["metadata"]["labels"].get("app.kubernetes.io/part-of")
        assert part_of == (None if obj["kind"] == "ServiceMonitor" else "forgeml")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == (
        "forgeml"
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_agrees_with_the_python_build(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = rendered
    built = subprocess.run(
        ["kubectl", "kustomize", str(out / "k8s")], capture_output=True, text=True, check=True
    )
    theirs = sorted(yaml.safe_load_all(built.stdout), key=lambda o: o["kind"])
    ours = sorted(build_kustomization(out / "k8s"), key=lambda o: o["kind"])
    assert theirs == ours


def test_deployment_probes_security_and_labels(rendered: tuple[Path, dict[str, Any]]) -> None:
    out, _ = rendered
    deployment = load(out / "k8s/base/deployment.yaml")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    pod = deployment["spec"]["template"]["spec"]
    server = container(deployment)
    assert server["image"] == "forgeml-cancer:2"
    assert server["args"] == ["/models/cancer", "--host", "0.0.0.0", "--port", "8080"]
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe, path in (
        ("startupProbe", "/v2/health/ready"),
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ):
        assert server[probe]["httpGet"] == {"path": path, "port": "http"}
    assert (
        server["startupProbe"]["failureThreshold"] * server["startupProbe"]["periodSeconds"] >= 120
    )
    assert server["resources"]["requests"] and server["resources"]["limits"]

    security = server["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == contract.RUNTIME_UID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False

    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    key_volume = volumes[mounts[contract.ADMIN_KEY_DIR]]
    assert key_volume["secret"]["secretName"] == "forgeml-cancer-admin"
    env = {e["name"]: e for e in server["env"]}
    assert env["FORGEML_ADMIN_KEY_FILE"]["value"] == f"{contract.ADMIN_KEY_DIR}/admin-key"
    assert not any(
        "KEY" in name and "value" in e and name != "FORGEML_ADMIN_KEY_FILE"
        for name, e in env.items()
    )
    # The optional config Secret: URLs (with passwords) reach the server as files.
    config = volumes[mounts[contract.CONFIG_DIR]]["secret"]
    assert config == {"secretName": "forgeml-cancer-config", "defaultMode": 0o440, "optional": True}
    assert env["FORGEML_PREDICTION_LOG_FILE"]["value"] == f"{contract.CONFIG_DIR}/prediction-log"
    assert env["FORGEML_INTERACTIONS_FILE"]["value"] == f"{contract.CONFIG_DIR}/interactions"

    assert server["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    prestop = int(server["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > prestop + 10

    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["forgeml.dev/model-ref"] == "cancer@2"


def test_labels_selectors_service_hpa_pdb(
    rendered: tuple[Path, dict[str, Any]], trained_registry: Path
) -> None:
    out, _ = rendered
    docs = {
        p.name: load(p) for p in (out / "k8s").rglob("*.yaml") if p.name != "kustomization.yaml"
    }
    for doc in docs.values():
        assert doc["metadata"]["name"] == "forgeml-cancer"
        labels = doc["metadata"]["labels"]
        assert labels["forgeml.dev/model"] == "cancer"
        assert labels["forgeml.dev/version"] == "2"
        assert labels["app.kubernetes.io/instance"] == "forgeml-cancer"
    deployment = docs["deployment.yaml"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert "forgeml.dev/version" not in selector  # immutable: versions roll out under it
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert template_labels["forgeml.dev/version"] == "2"

    service = docs["service.yaml"]["spec"]
    assert service["type"] == "ClusterIP" and service["selector"] == selector
    assert service["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]

    hpa = docs["hpa.yaml"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "forgeml-cancer",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 70},
    }
    assert docs["pdb.yaml"]["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}

    monitor = docs["servicemonitor.yaml"]["spec"]
    assert monitor["selector"]["matchLabels"] == selector
    assert monitor["endpoints"][0]["port"] == "http"
    assert monitor["endpoints"][0]["path"] == "/metrics"

    with Registry.open(trained_registry, create=False) as reg:
        sha = reg.resolve("cancer@2").files["forgeml-model.json"]
    assert deployment["metadata"]["annotations"]["forgeml.dev/model-sha256"] == sha


def test_the_model_copy_is_the_registry_version(
    rendered: tuple[Path, dict[str, Any]], trained_registry: Path
) -> None:
    out, _ = rendered
    with Registry.open(trained_registry, create=False) as reg:
        version = reg.resolve("cancer@2")
        source = reg.open_artifacts(version)
    copy = out / "model" / "cancer"
    copied = {k: v for k, v in tree_state(copy).items() if k != SOURCE_FILE}
    assert copied == tree_state(source) == version.files
    # The registry identity rides next to the model, for the server to report.
    identity = json.loads((copy / SOURCE_FILE).read_text())
    assert (identity["name"], identity["version"], identity["ref"]) == ("cancer", 2, "cancer@2")
    load_bundle(copy)  # what the server and the image build do
    # Readable by the image's non-root user, written by nobody.
    for path in [copy, *copy.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o444), (path, oct(mode))
    marker = json.loads((out / "forgeml-deploy.json").read_text())
    assert marker["model"] == "cancer" and marker["version"] == 2
    assert marker["requested"] == "cancer@champion"
    assert marker["model_files"] == version.files


def test_dockerfile_builds_the_model_into_the_image(rendered: tuple[Path, dict[str, Any]]) -> None:
    out, _ = rendered
    text = (out / "Dockerfile").read_text()
    assert lint_dockerfile(text) == []
    instructions = parse_dockerfile(text)
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert froms == [f"{contract.BASE_IMAGE} AS build", f"{contract.BASE_IMAGE} AS runtime"]
    copies = [i.args.split() for i in instructions if i.keyword == "COPY" and not i.flags]
    assert ["model/cancer/", "/models/cancer/"] in copies
    for source, _ in copies:
        assert (out / source).is_dir()
    final = {i.keyword: i for i in instructions}  # last of each keyword
    assert final["USER"].args == "10001:10001"
    assert final["ENTRYPOINT"].exec_form == ["forgeml", "serve"]
    assert final["CMD"].exec_form == contract.serve_args("/models/cancer")
    assert "forgeml[serve]==" in text
    # Only what the Dockerfile copies is sent to the builder.
    ignore = [ln for ln in (out / ".dockerignore").read_text().splitlines() if ln and ln[0] != "#"]
    assert ignore[0] == "*"
    assert {ln for ln in ignore if ln.startswith("!")} == {"!model/", "!wheels/"}


def test_readme_has_the_exact_commands(rendered: tuple[Path, dict[str, Any]]) -> None:
    out, result = rendered
    readme = (out / "README.md").read_text()
    assert "docker build -t forgeml-cancer:2 ." in readme
    assert "kubectl apply -k k8s" in readme
    assert "forgeml-cancer-admin" in readme
    assert "create secret generic forgeml-cancer-config --from-file=prediction-log=" in readme
    for command in result["commands"]:
        assert command in readme


def test_options_reach_the_manifests(cli, trained_registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "fixed"
    result = render(
        cli,
        trained_registry,
        out,
        "cancer@1",
        "--image",
        "registry.example.com:5000/ml/cancer:v1",
        "--replicas",
        "3",
        "--namespace",
        "ml-serving",
    )
    assert result["replicas"] == 3 and result["autoscaling"] is None
    assert not (out / "k8s/base/hpa.yaml").exists()
    deployment = load(out / "k8s/base/deployment.yaml")
    assert deployment["spec"]["replicas"] == 3
    assert container(deployment)["image"] == "registry.example.com:5000/ml/cancer:v1"
    top = load(out / "k8s/kustomization.yaml")
    assert top["namespace"] == "ml-serving" and "components" not in top
    objects = build_kustomization(out / "k8s")
    assert {o["metadata"]["namespace"] for o in objects} == {"ml-serving"}
    assert sorted(o["kind"] for o in objects) == ["Deployment", "PodDisruptionBudget", "Service"]
    for obj in objects:
        k8s_validate(obj)

    out = tmp_path / "auto"
    result = render(
        cli,
        trained_registry,
        out,
        "cancer",
        "--min-replicas",
        "3",
        "--max-replicas",
        "7",
        "--cpu-target",
        "55",
    )
    assert result["autoscaling"] == {"min_replicas": 3, "max_replicas": 7, "cpu_target": 55}
    hpa = load(out / "k8s/base/hpa.yaml")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 55


def test_a_model_name_kubernetes_cannot_take(cli, trained_registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "awkward"
    result = render(cli, trained_registry, out, AWKWARD_NAME)
    deployment = load(out / "k8s/base/deployment.yaml")
    name = deployment["metadata"]["name"]
    assert DNS_1035.match(name) and name.startswith("forgeml-breast-cancer-v2-")
    assert LABEL_VALUE.match(deployment["metadata"]["labels"]["forgeml.dev/model"])
    assert deployment["metadata"]["annotations"]["forgeml.dev/model-ref"] == f"{AWKWARD_NAME}@1"
    # The model keeps its exact name inside the image.
    assert container(deployment)["args"][0] == f"/models/{AWKWARD_NAME}"
    assert (out / "model" / AWKWARD_NAME / "forgeml-model.json").is_file()
    assert result["image"] == f"{name}:1"
    assert check_rendered(out) == []
    for obj in build_kustomization(out / "k8s"):
        k8s_validate(obj)


def test_rendering_is_deterministic(cli, trained_registry: Path, tmp_path: Path) -> None:
    render(cli, trained_registry, tmp_path / "a", "cancer@1")
    render(cli, trained_registry, tmp_path / "b", "cancer@1")
    assert tree_state(tmp_path / "a") == tree_state(tmp_path / "b")


def test_text_output(cli, trained_registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "text"
    result = cli("deploy", "k8s", "cancer", "-o", str(out), "--registry", str(trained_registry))
    assert result.code == 0, result.err
    assert result.out.startswith(f"rendered cancer@2 to {out}")
    assert "docker build -t forgeml-cancer:2 ." in result.out
