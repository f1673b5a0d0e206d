"""A weighted average of fitted estimators, saved as one folder per member.

Tuning may find that averaging a few of its best configurations beats the single best one
(greedy ensemble selection on out-of-fold predictions, see
:func:`forgeml.tuning.select_ensemble`). The result is an ordinary
:class:`~forgeml.models.base.FittedEstimator`: it predicts the weighted mean of its
members' predictions, and saves each member in its own declarative format under
``member-<i>/``. Loading checks every member like a single estimator, refuses nested
ensembles and folder names other than ``member-<i>``, and never unpickles anything.

>>> import numpy as np, tempfile
>>> from forgeml.models import get_adapter, load_estimator
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]] * 10, dtype=np.float32)
>>> y = np.array([0.0, 1.0, 2.0, 3.0] * 10)
>>> fit = lambda alpha: get_adapter("linear").fit(X, y, subtype="regression", n_classes=0,
...                                               params={"alpha": alpha}, seed=0)
>>> ens = FittedEnsemble([fit(0.1), fit(10.0)], [0.75, 0.25])
>>> with tempfile.TemporaryDirectory() as tmp:
...     files = ens.save(Path(tmp))
...     again = load_estimator(Path(tmp), ens.to_meta())
>>> files, bool(np.allclose(again.predict(X), ens.predict(X)))
(['member-0/estimator.linear.json', 'member-1/estimator.linear.json'], True)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import ArtifactIntegrityError, UsageError
from forgeml.models.base import FORMAT_VERSION, FittedEstimator

if TYPE_CHECKING:
    from forgeml.models.base import Matrix

__all__ = ["FittedEnsemble"]

_MEMBER_DIR = re.compile(r"^member-[0-9]{1,3}$")


class FittedEnsemble(FittedEstimator):
    """Members' predictions averaged with ``weights`` (positive, summing to 1)."""

    adapter = "ensemble"
    files = ()

    def __init__(self, members: Sequence[FittedEstimator], weights: Sequence[float]) -> None:
        if not members or len(members) != len(weights):
            raise UsageError("an ensemble needs members and one weight per member")
        if any(isinstance(m, FittedEnsemble) for m in members):
            raise UsageError("an ensemble cannot contain an ensemble")
        first = members[0]
        shapes = {(m.subtype, m.n_classes, m.n_features) for m in members}
        if len(shapes) != 1:
            raise UsageError(f"ensemble members disagree on task or features: {sorted(shapes)}")
        total = float(sum(weights))
        if any(not (w > 0) for w in weights) or not math.isfinite(total):
            raise UsageError(f"ensemble weights must be positive, got {list(weights)}")
        self.members = list(members)
        self.weights = [float(w) / total for w in weights]
        super().__init__(
            subtype=first.subtype,
            n_classes=first.n_classes,
            n_features=first.n_features,
            params={"members": [m.adapter for m in members], "weights": self.weights},
        )

    def set_predict_threads(self, threads: int | None) -> None:
        super().set_predict_threads(threads)
        for member in self.members:
            member.set_predict_threads(threads)

    def _predict(self, X: Matrix) -> np.ndarray:
        out: np.ndarray | None = None
        for member, weight in zip(self.members, self.weights, strict=True):
            part = weight * member.predict(X)
            out = part if out is None else out + part
        assert out is not None
        return out

    def feature_importance(self) -> np.ndarray | None:
        """Members' importances, each normalised to sum to 1, averaged with the weights."""
        total = np.zeros(self.n_features)
        found = False
        for member, weight in zip(self.members, self.weights, strict=True):
            values = member.feature_importance()
            if values is None or not np.sum(values) > 0:
                continue
            total += weight * np.asarray(values, dtype=np.float64) / float(np.sum(values))
            found = True
        return total if found else None

    def _payloads(self) -> dict[str, bytes]:  # pragma: no cover - save() is overridden
        raise NotImplementedError

    def save(self, directory: Path) -> list[str]:
        names: list[str] = []
        for i, member in enumerate(self.members):
            folder = f"member-{i}"
            names += [f"{folder}/{name}" for name in member.save(directory / folder)]
        return names

    def to_meta(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "adapter": self.adapter,
            "subtype": self.subtype,
            "n_classes": self.n_classes,
            "n_features": self.n_features,
            "params": dict(self.params),
            "best_iteration": None,
            "weights": list(self.weights),
            "members": [
                {"dir": f"member-{i}", **member.to_meta()} for i, member in enumerate(self.members)
            ],
        }

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> FittedEstimator:
        from forgeml.models.catalog import load_estimator

        members_meta, weights = meta.get("members"), meta.get("weights")
        if (
            meta.get("format_version") != FORMAT_VERSION
            or not isinstance(members_meta, list)
            or not isinstance(weights, list)
            or len(members_meta) != len(weights)
            or not members_meta
        ):
            raise ArtifactIntegrityError(f"{directory}: malformed ensemble metadata")
        members = []
        for entry in members_meta:
            folder = entry.get("dir") if isinstance(entry, dict) else None
            if not isinstance(folder, str) or not _MEMBER_DIR.match(folder):
                raise ArtifactIntegrityError(f"{directory}: bad ensemble member folder {folder!r}")
            if entry.get("adapter") == cls.adapter:
                raise ArtifactIntegrityError(f"{directory}: nested ensembles are not allowed")
            members.append(load_estimator(directory / folder, entry))
        try:
            weights_f = [float(w) for w in weights]
            return cls(members, weights_f)
        except (TypeError, ValueError, UsageError) as exc:
            raise ArtifactIntegrityError(f"{directory}: bad ensemble: {exc}") from exc

    @classmethod
    def _from_payloads(
        cls, payloads: dict[str, bytes], common: dict[str, Any], meta: dict[str, Any]
    ) -> FittedEstimator:  # pragma: no cover - load() is overridden
        raise NotImplementedError
