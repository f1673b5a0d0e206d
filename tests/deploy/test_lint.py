"""The Dockerfile lint and the offline kustomize checker catch what they claim to."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeml.deploy import build_kustomization, check_wiring, lint_dockerfile, render_k8s
from forgeml.deploy.dockerfile import parse_dockerfile, render_dockerfile
from forgeml.deploy.settings import ScalingOptions
from forgeml.errors import ConfigError

GOOD = render_dockerfile("churn", forgeml_version="0.1.0", labels={}, model_dir="model/churn")


def test_the_rendered_dockerfile_is_clean() -> None:
    assert lint_dockerfile(GOOD) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("python:3.11.14-slim-bookworm AS build", "python AS build", "pin the base image"),
        ("python:3.11.14-slim-bookworm AS runtime", "python:latest AS runtime", "not latest"),
        (" AS build\n", "\n", "the build stage needs a name"),
        ("USER 10001:10001", "USER root", "use a numeric, non-zero UID"),
        ("USER 10001:10001", "USER 0:0", "use a numeric, non-zero UID"),
        ("USER 10001:10001", "USER forgeml", "use a numeric, non-zero UID"),
        ("USER 10001:10001\n", "", "has no USER"),
        ("EXPOSE 8080", "EXPOSE 9000", "does not EXPOSE 8080"),
        (
            "COPY --from=build /opt/venv /opt/venv",
            "COPY venv /opt/venv",
            "copies nothing from an earlier stage",
        ),
        (
            'CMD ["/models/churn", "--host", "0.0.0.0", "--port", "8080"]',
            "CMD /models/churn --port 8080",
            "CMD must use the exec form",
        ),
        (
            'ENTRYPOINT ["forgeml", "serve"]',
            "ENTRYPOINT forgeml serve",
            "ENTRYPOINT must use the exec form",
        ),
        ("COPY wheels/ /wheels/", "ADD https://example.com/forgeml.whl /wheels/", "ADD of a URL"),
        ("    PYTHONUNBUFFERED=1 \\\n", "", "does not set ENV PYTHONUNBUFFERED"),
        (
            "    PYTHONDONTWRITEBYTECODE=1 \\\n    PYTHONUNBUFFERED",
            "    PYTHONUNBUFFERED",
            "does not set ENV PYTHONDONTWRITEBYTECODE",
        ),
        ("libgomp1 \\", "libgomp1 build-essential \\", "installs build tools (build-essential)"),
        ("EXPOSE 8080", "ENV FORGEML_ADMIN_KEY=hunter2hunter2\nEXPOSE 8080", "looks like a secret"),
        ("EXPOSE 8080", "ARG API_TOKEN=abc\nEXPOSE 8080", "looks like a secret"),
    ],
)
def test_each_rule_catches_its_problem(old: str, new: str, problem: str) -> None:
    assert old in GOOD
    problems = lint_dockerfile(GOOD.replace(old, new, 1))
    assert any(problem in p for p in problems), problems


def test_a_single_stage_is_not_multi_stage() -> None:
    single = 'FROM python:3.11.14-slim AS app\nUSER 1000\nEXPOSE 8080\nCMD ["x"]\n'
    assert any("at least 2 FROM" in p for p in lint_dockerfile(single))


def test_base_images_from_args_are_resolved() -> None:
    text = GOOD.replace(
        "FROM python:3.11.14-slim-bookworm AS build",
        "ARG BASE=python:latest\nFROM ${BASE} AS build",
    )
    text = "ARG BASE=python:latest\n" + text.replace("ARG BASE=python:latest\n", "")
    assert any("FROM python:latest" in p for p in lint_dockerfile(text))
    assert lint_dockerfile(text.replace("python:latest", "python:3.11.14-slim")) == []


def test_stage_names_and_scratch_are_not_images() -> None:
    text = GOOD.replace(
        "FROM python:3.11.14-slim-bookworm AS runtime",
        "FROM scratch AS model\nFROM build AS runtime",
    )
    assert not any("pin the base image" in p for p in lint_dockerfile(text))


def test_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nRUN a \\\n  # inner comment\n  && b\n\nCOPY --chown=1:1 --from=x a b\n"
    parsed = [(i.line, i.keyword, i.flags, i.args) for i in parse_dockerfile(text)]
    assert parsed == [(2, "RUN", {}, "a && b"), (6, "COPY", {"chown": "1:1", "from": "x"}, "a b")]


# -- the kustomize checker ----------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"kustomization.yaml": "resources: [a.yaml]\n"}, "resource 'a.yaml' does not exist"),
        ({"kustomization.yaml": "resources: [sub]\n", "sub/x.txt": ""}, "no kustomization.yaml"),
        (
            {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": "kind: ConfigMap\n"},
            "needs apiVersion, kind and metadata.name",
        ),
        (
            {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": "a: [\n"},
            "cannot be read as YAML",
        ),
        ({"kustomization.yaml": "patches: []\n"}, "not supported by this checker: patches"),
        (
            {"kustomization.yaml": "resources: [https://example.com/x.yaml]\n"},
            "must be a relative path",
        ),
        (
            {
                "kustomization.yaml": "resources: [a.yaml, b.yaml]\n",
                "a.yaml": CM.format(name="x"),
                "b.yaml": CM.format(name="x"),
            },
            "ConfigMap 'x' is defined twice",
        ),
        (
            {"kustomization.yaml": "components: [c]\n", "c/kustomization.yaml": "resources: []\n"},
            "kind 'Kustomization' used as a Component",
        ),
        (
            {
                "kustomization.yaml": "resources: [c]\n",
                "c/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
            },
            "kind 'Component' used as a Kustomization",
        ),
        (
            {"app/kustomization.yaml": "resources: [../a.yaml]\n", "a.yaml": CM.format(name="x")},
            "outside the kustomization folder",
        ),
    ],
)
def test_kustomize_problems(tmp_path: Path, files: dict[str, str], message: str) -> None:
    _write(tmp_path, files)
    root = tmp_path / "app" if "app/kustomization.yaml" in files else tmp_path
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        build_kustomization(root)


def test_wiring_problems() -> None:
    files = render_k8s(ScalingOptions().for_model("churn", 3))
    objects = [doc for path, doc in files.items() if not path.endswith("kustomization.yaml")]
    assert check_wiring(objects) == []
    service = next(o for o in objects if o["kind"] == "Service")
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    service["spec"]["ports"][0]["targetPort"] = "metrics"
    hpa["spec"]["scaleTargetRef"]["name"] = "other"
    monitor["spec"]["endpoints"][0]["port"] = "web"
    assert sorted(check_wiring(objects)) == [
        "HorizontalPodAutoscaler 'forgeml-churn' targets no Deployment here",
        "Service 'forgeml-churn': targetPort 'metrics' is not a container port",
        "ServiceMonitor 'forgeml-churn': port 'web' is not a Service port",
    ]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] = "x"
    problems = check_wiring(objects)
    assert "Deployment 'forgeml-churn': selector does not match its pod labels" in problems
    assert "Service 'forgeml-churn' selects no Deployment's pods" in problems
    assert "PodDisruptionBudget 'forgeml-churn' selects no Deployment's pods" in problems
