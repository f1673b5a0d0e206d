"""Kubernetes manifests for one model, as plain data (dumped with ``yaml.safe_dump``).

:func:`render_k8s` returns ``{path under k8s/: document}``::

    kustomization.yaml                      what `kubectl apply -k k8s` applies: the base,
                                            the namespace, optional components
    base/kustomization.yaml                 the base: lists the resources, adds common labels
    base/deployment.yaml                    pods: probes, resources, security, Secrets
    base/service.yaml                       ClusterIP, port 80 -> container port 8080
    base/hpa.yaml                           autoscaling/v2 on CPU (autoscaling only)
    base/pdb.yaml                           at most one pod down during voluntary disruptions
    components/service-monitor/...          Prometheus Operator ServiceMonitor (a Component,
                                            since its CRD may be absent)

Values are data, never text spliced into YAML, so every name and label is escaped by the
dumper. The documents carry their full labels and selectors, so each one is also valid on
its own.

>>> from forgeml.deploy.settings import ScalingOptions
>>> files = render_k8s(ScalingOptions().for_model("churn", 3))
>>> sorted(files)[:3]
['base/deployment.yaml', 'base/hpa.yaml', 'base/kustomization.yaml']
>>> files["base/service.yaml"]["spec"]["ports"]
[{'name': 'http', 'port': 80, 'targetPort': 'http', 'protocol': 'TCP'}]
"""

from __future__ import annotations

from typing import Any

import yaml

from forgeml.deploy import contract
from forgeml.deploy.settings import DeploySettings

__all__ = [
    "SERVICE_MONITOR_COMPONENT",
    "admin_secret_name",
    "config_secret_name",
    "dump_yaml",
    "labels",
    "render_k8s",
    "selector",
]

SERVICE_MONITOR_COMPONENT = "components/service-monitor"
_KUSTOMIZE = "kustomize.config.k8s.io"
_CONTAINER = "server"
_PRESTOP_SECONDS = 5
# preStop sleep + the server's drain of in-flight requests (bounded by its request timeout).
_GRACE_SECONDS = 45
_TMP_SIZE = "256Mi"


def dump_yaml(document: Any) -> str:
    """One YAML document, keys in the order given (apiVersion, kind, metadata, spec...).

    >>> print(dump_yaml({"metadata": {"labels": {"forgeml.dev/version": "3", "on": "true"}}}), end="")
    metadata:
      labels:
        forgeml.dev/version: '3'
        'on': 'true'
    """
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)


def selector(s: DeploySettings) -> dict[str, str]:
    """The labels that pick this model's pods. Never the version: a selector is immutable,
    and a new version must roll out under the same Deployment."""
    return {"app.kubernetes.io/name": "forgeml", "app.kubernetes.io/instance": s.app}


def labels(s: DeploySettings) -> dict[str, str]:
    """The labels of every object (and pod): recommended ``app.kubernetes.io/*`` labels
    plus ``forgeml.dev/model`` and ``forgeml.dev/version`` (the model's version; the
    forgeml version is in the image)."""
    return {
        **selector(s),
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/managed-by": "forgeml",
        "forgeml.dev/model": s.model_label,
        "forgeml.dev/version": str(s.version),
    }


def _metadata(s: DeploySettings, **extra: Any) -> dict[str, Any]:
    annotations = {"forgeml.dev/model-ref": s.ref}
    if s.model_sha256:
        annotations["forgeml.dev/model-sha256"] = s.model_sha256
    return {"name": s.app, "labels": labels(s), "annotations": annotations, **extra}


def _http_probe(path: str, *, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _container(s: DeploySettings) -> dict[str, Any]:
    return {
        "name": _CONTAINER,
        "image": s.image,
        "imagePullPolicy": "IfNotPresent",
        "args": contract.serve_args(contract.model_path(s.model)),
        "ports": [{"name": "http", "containerPort": contract.PORT, "protocol": "TCP"}],
        "env": [
            {
                "name": contract.ADMIN_KEY_FILE_ENV,
                "value": f"{contract.ADMIN_KEY_DIR}/{contract.ADMIN_KEY_SECRET_KEY}",
            },
            *(
                {"name": env, "value": f"{contract.CONFIG_DIR}/{key}"}
                for key, env in contract.CONFIG_FILES.items()
            ),
            # OpenMP (LightGBM, XGBoost) would start one thread per *node* core and be
            # throttled by the CPU limit; this is the limit rounded up.
            {
                "name": "OMP_NUM_THREADS",
                "valueFrom": {
                    "resourceFieldRef": {
                        "containerName": _CONTAINER,
                        "resource": "limits.cpu",
                        "divisor": "1",
                    }
                },
            },
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        # Loading and verifying a model can take a while: the startup probe allows 5
        # minutes before liveness starts counting, without slowing the detection of a hang.
        "startupProbe": _http_probe(contract.READY_PATH, period=5, failures=60),
        "readinessProbe": _http_probe(contract.READY_PATH, period=5, failures=3),
        "livenessProbe": _http_probe(contract.LIVE_PATH, period=10, failures=3),
        # Keep serving while the endpoint removal reaches every kube-proxy/ingress; SIGTERM
        # (drain, then exit) comes after this.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(_PRESTOP_SECONDS)]}}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": contract.RUNTIME_UID,
            "runAsGroup": contract.RUNTIME_UID,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir
            {"name": "admin-key", "mountPath": contract.ADMIN_KEY_DIR, "readOnly": True},
            {"name": "config", "mountPath": contract.CONFIG_DIR, "readOnly": True},
        ],
    }


def admin_secret_name(s: DeploySettings) -> str:
    """The Secret holding the admin API key (created by the user, never rendered)."""
    return f"{s.app}-admin"


def config_secret_name(s: DeploySettings) -> str:
    """The optional Secret with the prediction log's and the interaction store's URLs
    (keys ``prediction-log``, ``interactions``; created by the user, never rendered)."""
    return f"{s.app}-config"


def _deployment(s: DeploySettings) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if not s.autoscaling:
        spec["replicas"] = s.replicas
    spec |= {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector(s)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": labels(s),
                "annotations": {
                    **_metadata(s)["annotations"],
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(contract.PORT),
                    "prometheus.io/path": contract.METRICS_PATH,
                },
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": _GRACE_SECONDS,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": contract.RUNTIME_UID,
                    "runAsGroup": contract.RUNTIME_UID,
                    "fsGroup": contract.RUNTIME_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [_container(s)],
                "volumes": [
                    {"name": "tmp", "emptyDir": {"sizeLimit": _TMP_SIZE}},
                    {
                        "name": "admin-key",
                        "secret": {
                            "secretName": admin_secret_name(s),
                            "defaultMode": 0o440,
                            "items": [
                                {
                                    "key": contract.ADMIN_KEY_SECRET_KEY,
                                    "path": contract.ADMIN_KEY_SECRET_KEY,
                                }
                            ],
                        },
                    },
                    {  # optional: without it the server logs nothing, keeps interactions per pod
                        "name": "config",
                        "secret": {
                            "secretName": config_secret_name(s),
                            "defaultMode": 0o440,
                            "optional": True,
                        },
                    },
                ],
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector(s)},
                    }
                ],
            },
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(s), "spec": spec}


def _service(s: DeploySettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(s),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(s),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _hpa(s: DeploySettings) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(s),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": s.app},
            "minReplicas": s.min_replicas,
            "maxReplicas": s.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": s.cpu_target},
                    },
                }
            ],
            # Scale up at once, down slowly: a burst that ends should not cost a cold start
            # (model load) when the next one comes.
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                }
            },
        },
    }


def _pdb(s: DeploySettings) -> dict[str, Any]:
    # maxUnavailable, not minAvailable: with a single replica minAvailable: 1 would block
    # every node drain forever.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(s),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(s)}},
    }


def _service_monitor(s: DeploySettings) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(s),
        "spec": {
            "selector": {"matchLabels": selector(s)},
            "endpoints": [
                {
                    "port": "http",
                    "path": contract.METRICS_PATH,
                    "interval": "30s",
                    "scrapeTimeout": "10s",
                }
            ],
        },
    }


def _kustomization(kind: str, **fields: Any) -> dict[str, Any]:
    version = "v1alpha1" if kind == "Component" else "v1beta1"
    return {"apiVersion": f"{_KUSTOMIZE}/{version}", "kind": kind, **fields}


def render_k8s(s: DeploySettings) -> dict[str, dict[str, Any]]:
    """Every Kubernetes file for ``s``, keyed by its path under ``k8s/``."""
    base = {"deployment.yaml": _deployment(s), "service.yaml": _service(s)}
    if s.autoscaling:
        base["hpa.yaml"] = _hpa(s)
    base["pdb.yaml"] = _pdb(s)
    files = {f"base/{name}": doc for name, doc in base.items()}
    files["base/kustomization.yaml"] = _kustomization(
        "Kustomization",
        resources=list(base),
        labels=[
            {
                "pairs": {"app.kubernetes.io/part-of": "forgeml"},
                "includeSelectors": False,
                "includeTemplates": True,
            }
        ],
    )
    files[f"{SERVICE_MONITOR_COMPONENT}/servicemonitor.yaml"] = _service_monitor(s)
    files[f"{SERVICE_MONITOR_COMPONENT}/kustomization.yaml"] = _kustomization(
        "Component", resources=["servicemonitor.yaml"]
    )
    top: dict[str, Any] = {}
    if s.namespace:
        top["namespace"] = s.namespace
    top["resources"] = ["base"]
    if s.service_monitor:
        top["components"] = [SERVICE_MONITOR_COMPONENT]
    files["kustomization.yaml"] = _kustomization("Kustomization", **top)
    return dict(sorted(files.items()))
