"""A small, offline ``kustomize build`` for checking the files forgeml writes.

It follows ``resources`` and ``components`` (files and folders, relative paths only),
applies ``namespace`` and ``labels``, and reports what kustomize itself would refuse: a
missing or unparsable file, a folder without a kustomization, a component used as a
resource (or the reverse), a field it does not know, a duplicate object. On top it checks
the wiring kustomize does not: every Service, PodDisruptionBudget and ServiceMonitor
selects the pods of a Deployment, every HorizontalPodAutoscaler targets one, and every
named port exists. It is a checker, not a replacement: fields such as ``patches`` or
``images`` are reported as unsupported.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "kustomization.yaml").write_text("resources: [missing.yaml]\\n")
>>> build_kustomization(root)
Traceback (most recent call last):
...
forgeml.errors.ConfigError: kustomization.yaml: resource 'missing.yaml' does not exist
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from forgeml.errors import ConfigError

__all__ = ["KUSTOMIZATION_FILES", "build_kustomization", "check_wiring"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KNOWN = {"apiVersion", "kind", "resources", "components", "namespace", "labels"}
_KINDS = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
# Kinds whose pod template gets labels when a label entry says includeTemplates.
_TEMPLATED = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def _kustomization_file(folder: Path) -> Path | None:
    return next((folder / n for n in KUSTOMIZATION_FILES if (folder / n).is_file()), None)


def _where(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _load_documents(path: Path, label: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{label}: cannot be read as YAML: {exc}") from exc
    for doc in docs:
        metadata = doc.get("metadata") if isinstance(doc, dict) else None
        if not (
            isinstance(doc, dict)
            and isinstance(doc.get("apiVersion"), str)
            and isinstance(doc.get("kind"), str)
            and isinstance(metadata, dict)
            and isinstance(metadata.get("name"), str)
        ):
            raise ConfigError(f"{label}: every document needs apiVersion, kind and metadata.name")
    return docs


def build_kustomization(
    folder: Path, *, kind: str = "Kustomization", _root: Path | None = None
) -> list[dict[str, Any]]:
    """The objects ``kustomize build folder`` would emit (for the supported fields), in
    order; raises :class:`ConfigError` naming the first problem."""
    folder = Path(folder)
    root = _root or folder
    found = _kustomization_file(folder)
    label = _where(folder, root) or "."
    if found is None:
        raise ConfigError(f"{label}: no kustomization.yaml in this folder")
    where = _where(found, root)
    try:
        data = yaml.safe_load(found.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: cannot be read as YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a mapping")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: fields not supported by this checker: {', '.join(unknown)}")
    actual = data.get("kind", "Kustomization")
    if actual != kind:
        raise ConfigError(f"{where}: kind {actual!r} used as a {kind}")
    if data.get("apiVersion", _KINDS[kind]) != _KINDS[kind]:
        raise ConfigError(f"{where}: apiVersion of a {kind} is {_KINDS[kind]}")
    objects: list[dict[str, Any]] = []
    for entry_kind, key in (("Kustomization", "resources"), ("Component", "components")):
        for entry in data.get(key) or []:
            objects += _entry(folder, root, where, key, entry, entry_kind)
    objects = _apply(data, where, objects)
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        ident = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if ident in seen:
            raise ConfigError(f"{where}: {ident[0]} {ident[2]!r} is defined twice")
        seen.add(ident)
    return objects


def _entry(
    folder: Path, root: Path, where: str, key: str, entry: Any, kind: str
) -> list[dict[str, Any]]:
    if not isinstance(entry, str) or "://" in entry or PurePosixPath(entry).is_absolute():
        raise ConfigError(f"{where}: {key} entry {entry!r} must be a relative path")
    target = (folder / entry).resolve()
    if target.is_dir():
        return build_kustomization(target, kind=kind, _root=root)
    if kind == "Component":
        raise ConfigError(f"{where}: component {entry!r} is not a folder")
    if not target.is_file():
        raise ConfigError(f"{where}: resource {entry!r} does not exist")
    if not target.is_relative_to(folder.resolve()):
        # kustomize's default load restriction: files must be inside the kustomization root.
        raise ConfigError(f"{where}: resource {entry!r} is outside the kustomization folder")
    return _load_documents(target, _where(target, root))


def _apply(data: dict[str, Any], where: str, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    objects = copy.deepcopy(objects)
    namespace = data.get("namespace")
    for obj in objects:
        if namespace:
            obj["metadata"]["namespace"] = namespace
    for entry in data.get("labels") or []:
        pairs = entry.get("pairs") if isinstance(entry, dict) else None
        if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
            raise ConfigError(f"{where}: labels entries need 'pairs' of string values")
        if entry.get("includeSelectors"):
            raise ConfigError(f"{where}: labels with includeSelectors are not supported here")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(pairs)
            if entry.get("includeTemplates") and obj["kind"] in _TEMPLATED:
                template = obj.setdefault("spec", {}).setdefault("template", {})
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    return objects


def _matches(selector: Any, labels: dict[str, str]) -> bool:
    """True when a non-empty ``matchLabels``-style selector picks ``labels``."""
    return (
        isinstance(selector, dict)
        and bool(selector)
        and all(labels.get(k) == v for k, v in selector.items())
    )


@dataclass(frozen=True)
class _Pods:
    """A Deployment's pod labels and named container ports."""

    labels: dict[str, str]
    ports: set[str]


def _pods(deployment: dict[str, Any]) -> _Pods:
    template = deployment["spec"]["template"]
    ports = {
        p["name"] for c in template["spec"]["containers"] for p in c.get("ports", []) if "name" in p
    }
    return _Pods(template["metadata"].get("labels", {}), ports)


def check_wiring(objects: list[dict[str, Any]]) -> list[str]:
    """Problems in how the objects refer to each other (``[]`` when none).

    >>> check_wiring([{"kind": "Service", "metadata": {"name": "s"},
    ...                "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}])
    ["Service 's' selects no Deployment's pods"]
    """
    pods = {o["metadata"]["name"]: _pods(o) for o in objects if o["kind"] == "Deployment"}
    services = [o for o in objects if o["kind"] == "Service"]
    problems = []
    for obj in objects:
        kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec", {})
        where = f"{kind} {name!r}"
        if kind == "Deployment" and not _matches(
            spec["selector"].get("matchLabels"), pods[name].labels
        ):
            problems.append(f"{where}: selector does not match its pod labels")
        elif kind in ("Service", "PodDisruptionBudget"):
            chosen = spec.get("selector", {})
            chosen = chosen if kind == "Service" else chosen.get("matchLabels")
            hits = [p for p in pods.values() if _matches(chosen, p.labels)]
            if not hits:
                problems.append(f"{where} selects no Deployment's pods")
            for port in spec.get("ports", []):
                target = port.get("targetPort")
                if isinstance(target, str) and not all(target in p.ports for p in hits):
                    problems.append(f"{where}: targetPort {target!r} is not a container port")
        elif kind == "HorizontalPodAutoscaler":
            ref = spec.get("scaleTargetRef", {})
            if ref.get("kind") != "Deployment" or ref.get("name") not in pods:
                problems.append(f"{where} targets no Deployment here")
        elif kind == "ServiceMonitor":
            chosen = spec.get("selector", {}).get("matchLabels")
            targets = [s for s in services if _matches(chosen, s["metadata"].get("labels", {}))]
            if not targets:
                problems.append(f"{where} selects no Service")
            for endpoint in spec.get("endpoints", []):
                port = endpoint.get("port")
                if not all(port in {p.get("name") for p in t["spec"]["ports"]} for t in targets):
                    problems.append(f"{where}: port {port!r} is not a Service port")
    return problems
