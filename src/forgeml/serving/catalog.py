"""The models a server holds, and how they are swapped when an alias moves.

A server is started with *sources*: registry references (``churn@champion``,
``churn@3``, ``churn``) or model folders. :class:`ModelCatalog` resolves them into loaded
:class:`ServedModel` objects keyed by ``(name, version)``. :meth:`ModelCatalog.reload`
resolves the references again (after a promote or rollback), loads any new version, and
then replaces the lookup tables in one assignment: a request that already holds a model
keeps using it to the end, new requests see the new version, nothing is dropped.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import ModelNotFound, RequestError

__all__ = ["ModelCatalog", "ServedModel"]

_MANIFEST = "forgeml-model.json"
_SOURCE = "forgeml-source.json"  # the registry identity of a deployed model folder
_RECOMMENDER = "recommender.json"  # forgeml.recommend.persist's manifest


@dataclass
class ServedModel:
    """One loaded model version and what the protocols need to know about it."""

    name: str
    version: int
    bundle: Any  # a forgeml.models.bundle.ModelBundle, or a ServedRecommender
    source: str
    aliases: list[str] = field(default_factory=list)
    batcher: Any = None  # set by the app: the micro-batcher feeding this model
    decoder: Any = None  # set by the app: raw outputs -> logged predictions and scores
    directory: str | None = None  # the verified model folder (profile.json lives there)

    @property
    def is_recommender(self) -> bool:
        from forgeml.serving.recommending import ServedRecommender

        return isinstance(self.bundle, ServedRecommender)

    def tabular(self) -> ServedModel:
        """This model, for a route that scores rows; a recommender is refused (400)."""
        if self.is_recommender:
            raise RequestError(
                f"model '{self.name}' is a recommender: ask POST /v1/recommend or "
                "/v1/similar-items, not a prediction route",
                status=400,
            )
        return self

    def recommender(self) -> Any:
        """The :class:`~forgeml.serving.recommending.ServedRecommender` of this model; a
        tabular model is refused (400)."""
        if not self.is_recommender:
            raise RequestError(
                f"model '{self.name}' is not a recommender (it predicts rows: use /predict, "
                "/invocations or /v2/models/{name}/infer)",
                status=400,
            )
        return self.bundle

    @property
    def schema(self) -> dict[str, str]:
        return dict(self.bundle.input_schema)

    @property
    def task(self) -> Any:
        return self.bundle.task

    @property
    def classes(self) -> list[Any]:
        return list(self.bundle.task.classes)


def _is_folder(source: str) -> bool:
    return "@" not in source and (
        Path(source, _MANIFEST).is_file() or Path(source, _RECOMMENDER).is_file()
    )


def _load_model(directory: Path, threads: int = 1, interactions: str | None = None) -> Any:
    """A tabular model bundle, or a recommender (a folder holding ``recommender.json``)
    whose model thread uses ``threads`` BLAS threads and keeps new interactions in
    ``interactions`` (None: memory)."""
    if (directory / _RECOMMENDER).is_file():
        from forgeml.serving.recommending import ServedRecommender

        return ServedRecommender(directory, threads=threads, interactions=interactions)
    from forgeml.models.bundle import load_bundle

    return load_bundle(directory)


class ModelCatalog:
    """Loaded models by name and version, with each source's current resolution."""

    def __init__(
        self,
        sources: list[str],
        *,
        registry: str,
        artifacts: str | None = None,
        model_threads: int = 1,
        interactions: str | None = None,
    ) -> None:
        self.sources = list(sources)
        self.model_threads = model_threads
        self.interactions = interactions
        self.registry = registry
        self.artifacts = artifacts
        self._versions: dict[tuple[str, int], ServedModel] = {}
        self._default: dict[str, ServedModel] = {}  # the version each name serves by default
        self._lock = threading.Lock()
        self.generation = 0
        # model name -> its running experiment (forgeml.experiments.Experiment), served
        # models only; every variant's version is loaded and kept.
        self.experiments: dict[str, Any] = {}

    # --- lookups (request path: plain dict reads, no lock) ------------------------------
    def get(self, name: str | None, version: int | str | None = None) -> ServedModel:
        """The model to answer with; ``name=None`` means the only model served."""
        default = self._default
        if name is not None and not isinstance(name, str):
            raise RequestError(f"model must be a model name, got {name!r}", status=400)
        if isinstance(version, bool) or not isinstance(version, int | str | None):
            raise RequestError(f"version must be an integer, got {version!r}", status=400)
        if name is None:
            if len(default) != 1:
                raise RequestError(
                    f"several models are served ({', '.join(sorted(default))}): name one",
                    status=400,
                )
            name = next(iter(default))
        if version is None:
            model = default.get(name)
            if model is None:
                raise RequestError(
                    f"model '{name}' is not served here (served: {', '.join(sorted(default))})",
                    status=404,
                )
            return model
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise RequestError(f"version must be an integer, got {version!r}", status=400) from None
        model = self._versions.get((name, number))
        if model is None:
            served = sorted(v for n, v in self._versions if n == name)
            if not served:
                raise RequestError(f"model '{name}' is not served here", status=404)
            raise RequestError(
                f"model '{name}' has no version {number} loaded (loaded: "
                f"{', '.join(map(str, served))})",
                status=404,
            )
        return model

    def models(self) -> list[ServedModel]:
        return sorted(self._versions.values(), key=lambda m: (m.name, m.version))

    def defaults(self) -> dict[str, ServedModel]:
        return dict(self._default)

    def is_default(self, model: ServedModel) -> bool:
        """Whether ``model`` is what a request naming no version gets."""
        return self._default.get(model.name) is model

    @property
    def ready(self) -> bool:
        return bool(self._default)

    # --- loading -------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Resolve every source and load what is new; returns a line per change."""
        with self._lock:
            return self._load_locked()

    async def reload(self) -> list[str]:
        """:meth:`load` off the event loop (loading reads and verifies files)."""
        return await asyncio.to_thread(self.load)

    def _load_locked(self) -> list[str]:
        versions = dict(self._versions)
        default: dict[str, ServedModel] = {}
        changes: list[str] = []
        resolved, experiments, variants = self._resolve()
        for source, (name, version, directory, aliases) in resolved.items():
            key = (name, version)
            model = versions.get(key)
            if model is None:
                bundle = _load_model(Path(directory), self.model_threads, self.interactions)
                model = ServedModel(name, version, bundle, source, directory=str(directory))
                versions[key] = model
                changes.append(f"loaded {name}@{version} ({source})")
            model.aliases = sorted(set(aliases))
            if name in default and default[name].version != version:
                raise ModelNotFound(
                    f"sources {default[name].source!r} and {source!r} both serve model '{name}' "
                    "as its default version: serve one of them"
                )
            previous = self._default.get(name)
            if previous is not None and previous.version != version:
                changes.append(f"{name}: {previous.version} -> {version} ({source})")
            default[name] = model
        experiments = {n: e for n, e in experiments.items() if n in default}
        for (name, version), directory in variants.items():
            if name in experiments and (name, version) not in versions:
                bundle = _load_model(Path(directory), self.model_threads, self.interactions)
                versions[(name, version)] = ServedModel(
                    name, version, bundle, f"{name}@{version}", directory=str(directory)
                )
                changes.append(f"loaded {name}@{version} (experiment {experiments[name].name})")
        # Keep versions that a default or an experiment still points at; drop the rest.
        keep = {(m.name, m.version) for m in default.values()}
        keep |= {(n, v) for n, e in experiments.items() for v in e.versions.values()}
        for key, dropped in versions.items():
            if key not in keep and dropped.is_recommender:
                dropped.bundle.close()  # its thread ends once a running call returns
        versions = {k: v for k, v in versions.items() if k in keep}
        started = sorted(set(experiments) - set(self.experiments))
        ended = sorted(set(self.experiments) - set(experiments))
        changes += [f"{n}: experiment {experiments[n].name} running" for n in started]
        changes += [f"{n}: experiment {self.experiments[n].name} ended" for n in ended]
        self._versions, self._default = versions, default
        self.experiments = experiments
        self.generation += 1
        return changes

    def _resolve(
        self,
    ) -> tuple[dict[str, tuple[str, int, Path, list[str]]], dict[str, Any], dict[Any, Path]]:
        """``source -> (name, version, verified folder, aliases)``, the running experiments
        by model name, and each experiment variant's ``(name, version) -> folder``."""
        import json

        out: dict[str, tuple[str, int, Path, list[str]]] = {}
        experiments: dict[str, Any] = {}
        variants: dict[Any, Path] = {}
        refs = [s for s in self.sources if not _is_folder(s)]
        for source in self.sources:
            if _is_folder(source):
                folder = Path(source)
                manifest = folder / _MANIFEST
                meta = (
                    json.loads(manifest.read_text()).get("metadata") or {}
                    if manifest.is_file()
                    else {}
                )
                # forgeml deploy writes the registry identity next to the copied model.
                sidecar = folder / _SOURCE
                if sidecar.is_file():
                    meta = {**meta, **json.loads(sidecar.read_text())}
                name = str(meta.get("name") or folder.name)
                version = int(meta.get("version") or 1)
                out[source] = (name, version, folder, list(meta.get("aliases") or []))
        if refs:
            from forgeml.registry import Registry

            with Registry.open(self.registry, self.artifacts, create=False) as registry:
                for source in refs:
                    found = registry.resolve(source)
                    directory = registry.open_artifacts(found)
                    out[source] = (found.name, found.version, directory, list(found.aliases))
                served = {name for name, _, _, _ in out.values()}
                for experiment in registry.running_experiments():
                    if experiment.model not in served:
                        continue
                    experiments[experiment.model] = experiment
                    for number in experiment.versions.values():
                        key = (experiment.model, int(number))
                        if key not in self._versions and key not in variants:
                            variants[key] = registry.open_artifacts(
                                f"{experiment.model}@{int(number)}"
                            )
        return out, experiments, variants
