"""``forgeml deploy k8s``: a folder with a model's image build and Kubernetes manifests.

:func:`deploy_k8s` checks every option, resolves the model, verifies its artifacts
(registry sha256 records, then the model's own manifest by loading it), and writes::

    DIR/Dockerfile, .dockerignore    the image: forgeml[serve] + model/<name>/, non-root
    DIR/model/<name>/                a verified, read-only copy of the artifact folder
    DIR/wheels/                      optional forgeml wheels for an offline build
    DIR/k8s/                         kustomize: base/, components/service-monitor/
    DIR/README.md                    the exact build / push / apply commands
    DIR/forgeml-deploy.json          what was rendered (model, files, options)

Everything is written into a temporary folder next to ``DIR``, checked (Dockerfile lint,
offline kustomize build, object wiring) and renamed into place, so a failure leaves no
trace. ``DIR`` must not exist, or be empty; ``force`` replaces an earlier render (a folder
holding ``forgeml-deploy.json``), never anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forgeml.deploy.dockerfile import lint_dockerfile, render_dockerfile
from forgeml.deploy.kustomize import build_kustomization, check_wiring
from forgeml.deploy.manifests import SERVICE_MONITOR_COMPONENT, dump_yaml, render_k8s
from forgeml.deploy.readme import next_steps, render_readme
from forgeml.deploy.settings import DeploySettings, ScalingOptions
from forgeml.errors import ArtifactIntegrityError, ForgeError, UsageError
from forgeml.version import __version__

__all__ = ["MARKER", "SOURCE_FILE", "check_rendered", "deploy_k8s", "k8s_files", "render_files"]

# Written next to a copied model: its registry name, version and aliases.
SOURCE_FILE = "forgeml-source.json"

#: The file that marks a folder as written by forgeml deploy (what --force may replace).
MARKER = "forgeml-deploy.json"
_CHUNK = 1 << 20

# Allowlist: only the model and wheels reach the builder, never a key file, a .git or a
# kubeconfig someone left in the folder.
_DOCKERIGNORE = """\
# Only what the Dockerfile copies is sent to the builder.
*
!model/
!wheels/
**/__pycache__
"""

_WHEELS_README = """\
Put a forgeml wheel here (for example `pip wheel --no-deps -w wheels forgeml=={version}`,
or `python -m build --wheel` in a forgeml checkout) to build the image without fetching
forgeml from the package index. Its dependencies still come from the index.
"""


def k8s_files(s: DeploySettings) -> dict[str, str]:
    """The Kubernetes files for ``s`` as text, keyed by their path under ``k8s/``.

    >>> text = k8s_files(ScalingOptions(replicas=2).for_model("churn", 3))["base/deployment.yaml"]
    >>> print(text.splitlines()[0])
    # Rendered by `forgeml deploy k8s` for churn@3; change it with an overlay.
    >>> "replicas: 2" in text
    True
    """
    header = f"# Rendered by `forgeml deploy k8s` for {s.ref}; change it with an overlay.\n"
    return {path: header + dump_yaml(doc) for path, doc in render_k8s(s).items()}


def render_files(s: DeploySettings) -> dict[str, str]:
    """Every rendered text file (not the model copy), keyed by its path in ``DIR``.

    >>> sorted(render_files(ScalingOptions().for_model("churn", 3)))[:5]
    ['.dockerignore', 'Dockerfile', 'README.md', 'k8s/base/deployment.yaml', 'k8s/base/hpa.yaml']
    """
    labels = {
        "org.opencontainers.image.title": f"forgeml {s.ref}",
        "org.opencontainers.image.version": str(s.version),
        "dev.forgeml.model": s.model,
        "dev.forgeml.model-version": str(s.version),
    }
    if s.model_sha256:
        labels["dev.forgeml.model-sha256"] = s.model_sha256
    files = {
        "Dockerfile": render_dockerfile(
            s.model, forgeml_version=__version__, labels=labels, model_dir=f"model/{s.model}"
        ),
        ".dockerignore": _DOCKERIGNORE,
        "README.md": render_readme(s, forgeml_version=__version__),
        "wheels/README.md": _WHEELS_README.format(version=__version__),
    }
    files |= {f"k8s/{path}": text for path, text in k8s_files(s).items()}
    return files


def check_rendered(folder: Path) -> list[str]:
    """Problems in a rendered folder: Dockerfile lint, kustomize build of ``k8s/`` (and of
    the base with the ServiceMonitor component), object wiring. ``[]`` when none.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for rel, text in render_files(ScalingOptions().for_model("churn", 3)).items():
    ...     _write_text(folder / rel, text)
    >>> check_rendered(folder)
    []
    >>> (folder / "k8s/base/pdb.yaml").unlink()
    >>> check_rendered(folder)
    ["k8s: base/kustomization.yaml: resource 'pdb.yaml' does not exist"]
    >>> shutil.rmtree(folder)
    """
    folder = Path(folder)
    problems = [f"Dockerfile: {p}" for p in lint_dockerfile((folder / "Dockerfile").read_text())]
    k8s = folder / "k8s"
    try:
        objects = build_kustomization(k8s)
        monitored = build_kustomization(k8s / "base") + build_kustomization(
            k8s / SERVICE_MONITOR_COMPONENT, kind="Component"
        )
    except ForgeError as exc:
        return [*problems, f"k8s: {exc}"]
    problems += [f"k8s: {p}" for p in check_wiring(objects)]
    problems += [f"k8s (with the ServiceMonitor): {p}" for p in check_wiring(monitored)]
    return sorted(set(problems), key=problems.index)


def _check_out(out: Path, force: bool) -> None:
    """Refuse an output folder that cannot be (re)placed, before anything is read."""
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not force:
        raise UsageError(
            f"--out {out}: already exists and is not empty; choose a new folder "
            "(or --force to replace an earlier forgeml deploy render)"
        )
    if not (out / MARKER).is_file():
        raise UsageError(
            f"--out {out}: not a folder written by forgeml deploy (no {MARKER}); "
            "refusing to replace it, even with --force"
        )
    here = Path.cwd().resolve()
    if here == out.resolve() or out.resolve() in here.parents:
        raise UsageError(f"--out {out}: is the current folder (or holds it); run from elsewhere")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    path.chmod(0o644)


def _copy_model(source: Path, target: Path, expected: Mapping[str, str], label: str) -> None:
    """Copy the recorded files of ``source`` to ``target``, hashing what is written: the
    copy must match the registry's sha256, even if the source changed since it was
    verified. Files end up read-only, folders world-readable (the image runs as non-root)."""
    from forgeml.registry.artifacts import safe_join

    for rel in sorted(expected):
        src, dst = safe_join(source, rel), safe_join(target, rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with src.open("rb") as fin, dst.open("xb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if digest.hexdigest() != expected[rel]:
            raise ArtifactIntegrityError(f"artifact {label} file {rel}: changed while copied")
        dst.chmod(0o444)
    for folder in sorted({target, *(p for p in target.rglob("*") if p.is_dir())}):
        folder.chmod(0o755)


def _install(staging: Path, out: Path) -> None:
    """Move ``staging`` to ``out`` (absent, empty, or an earlier render) in one rename;
    an earlier render is moved aside first and removed once the new one is in place."""
    old = None
    if out.exists() and any(out.iterdir()):
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.replace(old)
    try:
        staging.replace(out)  # onto an empty folder, rename(2) replaces it
    except BaseException:
        if old is not None:
            old.replace(out)
        raise
    _fsync(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def deploy_k8s(
    registry: str,
    ref: str,
    out: Path,
    options: ScalingOptions | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Render ``ref`` from ``registry`` into the folder ``out``; returns what was written
    (model, path, image, scaling, files, next commands). Raises :class:`UsageError` for bad
    options or output folders, :class:`~forgeml.errors.ModelNotFound` for an unknown model,
    :class:`ArtifactIntegrityError` for artifacts that fail their sha256 checks.

    Options are checked before the registry is opened or anything is written:

    >>> deploy_k8s(".forgeml", "churn", Path("out"), ScalingOptions(min_replicas=3, max_replicas=2))
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --min-replicas (3) is greater than --max-replicas (2)
    """
    from forgeml.models.bundle import MANIFEST, load_bundle
    from forgeml.registry import Registry

    options = (options or ScalingOptions()).check()
    out = Path(out)
    _check_out(out, force)
    with Registry.open(registry, create=False) as reg:
        version = reg.resolve(ref)
        source = reg.open_artifacts(version)
        load_bundle(source)  # the server's own check: manifest hashes, files parse
        settings = options.for_model(version.name, version.version, version.files.get(MANIFEST))
        files = render_files(settings)
        marker = {
            "format": "forgeml-deploy",
            "format_version": 1,
            "forgeml_version": __version__,
            "model": version.name,
            "version": version.version,
            "requested": ref,
            "model_sha256": settings.model_sha256,
            "image": settings.image,
            "namespace": settings.namespace,
            "replicas": settings.replicas,
            "autoscaling": _autoscaling(settings),
            "service_monitor": settings.service_monitor,
            "model_files": dict(sorted(version.files.items())),
        }
        files[MARKER] = json.dumps(marker, indent=2) + "\n"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot write here: {exc.strerror or exc}") from exc
        try:
            model_dir = staging / "model" / version.name
            _copy_model(source, model_dir, version.files, version.ref)
            # Which registry version this folder is: the server reports it (the model's
            # own manifest predates registration and cannot carry it).
            _write_text(model_dir / SOURCE_FILE, json.dumps(_source(version), indent=2) + "\n")
            (model_dir / SOURCE_FILE).chmod(0o444)
            for rel, text in files.items():
                _write_text(staging / rel, text)
            problems = check_rendered(staging)
            if problems:  # a bug in the renderer, not a user error
                raise ForgeError("rendered files failed their checks: " + "; ".join(problems))
            staging.chmod(0o755)
            _install(staging, out)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise UsageError(f"--out {out}: cannot write: {exc.strerror or exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return {
        "model": version.ref,
        "path": str(out),
        "image": settings.image,
        "namespace": settings.namespace,
        "replicas": settings.replicas,
        "autoscaling": _autoscaling(settings),
        "service_monitor": settings.service_monitor,
        "files": sorted(
            [
                *files,
                *(f"model/{version.name}/{f}" for f in [*version.files, SOURCE_FILE]),
            ]
        ),
        "commands": [command for _, command in next_steps(settings)],
    }


def _source(version: Any) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": version.version,
        "aliases": list(version.aliases),
        "ref": version.ref,
    }


def _autoscaling(s: DeploySettings) -> dict[str, int] | None:
    if not s.autoscaling:
        return None
    return {
        "min_replicas": s.min_replicas,
        "max_replicas": s.max_replicas,
        "cpu_target": s.cpu_target,
    }
