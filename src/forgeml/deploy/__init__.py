"""Deployment: a model's container image and Kubernetes manifests.

``forgeml deploy k8s churn@champion -o deploy-churn`` (:func:`deploy_k8s`) writes a folder
with a Dockerfile that bakes the verified model into a slim, non-root image, and a
kustomize base (Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget, an
optional ServiceMonitor) whose probes, port and environment follow
:mod:`forgeml.deploy.contract` — what the deployment assumes about ``forgeml serve``.

Manifests are plain data dumped with ``yaml.safe_dump``; the Dockerfile linter
(:func:`lint_dockerfile`) and the offline kustomize build (:func:`build_kustomization`,
:func:`check_wiring`) check every render before it is moved into place, and are what the
tests run on the reference files in the repository's ``deploy/`` folder.

>>> from forgeml.deploy import ScalingOptions, render_k8s
>>> deployment = render_k8s(ScalingOptions().for_model("churn", 3))["base/deployment.yaml"]
>>> deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
{'path': '/v2/health/ready', 'port': 'http'}
"""

from __future__ import annotations

from forgeml.deploy.dockerfile import lint_dockerfile, parse_dockerfile, render_dockerfile
from forgeml.deploy.kustomize import build_kustomization, check_wiring
from forgeml.deploy.manifests import render_k8s
from forgeml.deploy.render import check_rendered, deploy_k8s, k8s_files, render_files
from forgeml.deploy.settings import DeploySettings, ScalingOptions

__all__ = [
    "DeploySettings",
    "ScalingOptions",
    "build_kustomization",
    "check_rendered",
    "check_wiring",
    "deploy_k8s",
    "k8s_files",
    "lint_dockerfile",
    "parse_dockerfile",
    "render_dockerfile",
    "render_files",
    "render_k8s",
]
