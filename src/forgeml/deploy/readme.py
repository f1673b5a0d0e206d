"""The next steps after ``forgeml deploy k8s``: exact commands, for README.md and JSON.

Every value in a command is shell-quoted (:func:`shlex.quote`), although image names and
namespaces are already checked to hold no shell characters.

>>> from forgeml.deploy.settings import ScalingOptions
>>> steps = next_steps(ScalingOptions(namespace="ml").for_model("churn", 3))
>>> [command for _, command in steps][:2]
['docker build -t forgeml-churn:3 .', 'docker push forgeml-churn:3']
"""

from __future__ import annotations

import shlex

from forgeml.deploy import contract
from forgeml.deploy.manifests import (
    SERVICE_MONITOR_COMPONENT,
    admin_secret_name,
    config_secret_name,
)
from forgeml.deploy.settings import DeploySettings

__all__ = ["next_steps", "render_readme"]

_KEYGEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32), end=\"\")'"


def next_steps(s: DeploySettings) -> list[tuple[str, str]]:
    """``(what, command)`` pairs, run from the rendered folder, in order."""
    q = shlex.quote
    ns = f" -n {q(s.namespace)}" if s.namespace else ""
    steps = [
        (
            "Build the image (the model is baked in at " + contract.model_path(s.model) + ")",
            f"docker build -t {q(s.image)} .",
        ),
        (
            "Push it where the cluster pulls from (kind: `kind load docker-image` instead)",
            f"docker push {q(s.image)}",
        ),
    ]
    if s.namespace:
        steps.append(("Create the namespace (once)", f"kubectl create namespace {q(s.namespace)}"))
    steps += [
        (
            "Create the admin API key Secret (once; the key never touches the disk)",
            f"{_KEYGEN} | kubectl{ns} create secret generic {q(admin_secret_name(s))} "
            f"--from-file={contract.ADMIN_KEY_SECRET_KEY}=/dev/stdin",
        ),
        (
            "Optional: log every prediction to PostgreSQL (feedback, drift, reports, A/B "
            "need it; add `--from-file=interactions=...` with a redis:// URL to share a "
            "recommender's new interactions between pods)",
            f'printf %s "$PREDICTION_LOG_URL" | kubectl{ns} create secret generic '
            f"{q(config_secret_name(s))} --from-file=prediction-log=/dev/stdin",
        ),
        ("Apply the manifests", "kubectl apply -k k8s"),
        ("Wait for the rollout", f"kubectl{ns} rollout status deployment/{s.app}"),
        ("Try it", f"kubectl{ns} port-forward service/{s.app} 8080:80"),
        ("...and in another shell", f"curl -s localhost:8080{contract.READY_PATH}"),
    ]
    return steps


def render_readme(s: DeploySettings, *, forgeml_version: str) -> str:
    """README.md of the rendered folder."""
    scaling = (
        f"a HorizontalPodAutoscaler keeps {s.min_replicas} to {s.max_replicas} replicas at "
        f"{s.cpu_target}% of their CPU request"
        if s.autoscaling
        else f"{s.replicas} replica{'s' if s.replicas != 1 else ''}, fixed (no autoscaler)"
    )
    monitor = (
        "included (the cluster must have the Prometheus Operator CRDs)"
        if s.service_monitor
        else f"not included; add `{SERVICE_MONITOR_COMPONENT}` to `components:` in "
        "`k8s/kustomization.yaml` to scrape with the Prometheus Operator"
    )
    lines = [
        f"# {s.ref} on Kubernetes",
        "",
        f"Rendered by `forgeml deploy k8s` (forgeml {forgeml_version}). Run the commands from "
        "this folder.",
        "",
        f"- Image: `{s.image}`, serving `model/{s.model}/` (a verified copy of {s.ref}).",
        f"- Namespace: `{s.namespace or 'the current kubectl context'}`; objects are named "
        f"`{s.app}`.",
        f"- Scaling: {scaling}.",
        f"- ServiceMonitor: {monitor}.",
        "",
        "## Steps",
        "",
    ]
    for number, (what, command) in enumerate(next_steps(s), start=1):
        lines += [f"{number}. {what}:", "", "   ```sh", f"   {command}", "   ```", ""]
    lines += [
        "## Files",
        "",
        "- `Dockerfile`, `.dockerignore`: the image (only `model/` and `wheels/` are sent "
        "to the builder).",
        f"- `wheels/`: put a forgeml {forgeml_version} wheel here to build without the "
        "package index.",
        "- `k8s/base/`: Deployment, Service, "
        + ("HorizontalPodAutoscaler, " if s.autoscaling else "")
        + "PodDisruptionBudget.",
        f"- `k8s/{SERVICE_MONITOR_COMPONENT}/`: the optional ServiceMonitor.",
        "- `forgeml-deploy.json`: what was rendered, from which model version and files.",
        "",
        "Change resources, probes or replicas with a kustomize overlay that uses `k8s/` as "
        "its base, so a re-render (`--force` replaces this folder) keeps your changes.",
        "",
    ]
    return "\n".join(lines)
