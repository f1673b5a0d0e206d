"""What a task predicts: the task kind, the class labels and how targets are encoded.

Inside forgeml, classification targets are encoded as integers ``0..k-1`` in the order of
``TaskInfo.classes``; for binary tasks the positive class is always index 1, so
``predict_proba(X)[:, 1]`` is the positive score. Regression targets are float64.

>>> y, info = encode_target(np.array(["no", "yes", "no", None], dtype=object), "classification")
>>> info.classes, y.tolist()
(('no', 'yes'), [0, 1, 0, -1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from forgeml.errors import DataError

__all__ = ["TaskInfo", "encode_target"]

TaskKind = Literal["classification", "regression"]
Label = str | int | float | bool


@dataclass(frozen=True)
class TaskInfo:
    """The task kind plus, for classification, the labels in encoded order."""

    kind: TaskKind
    target: str = "target"
    classes: tuple[Label, ...] = field(default=())

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        return self.kind == "classification" and len(self.classes) == 2

    @property
    def subtype(self) -> str:
        """``binary``, ``multiclass`` or ``regression``: what metrics and losses key on."""
        if self.kind == "regression":
            return "regression"
        return "binary" if self.is_binary else "multiclass"

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        """Map encoded class indices back to the original labels, in the labels' own
        dtype (integers stay integers, so scikit-learn's metrics accept the result)."""
        labels = np.asarray(self.classes)
        return labels[np.asarray(encoded, dtype=np.int64)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        return cls(kind=data["kind"], target=data["target"], classes=tuple(data["classes"]))


def _native(value: Any) -> Label:
    """NumPy scalars to plain Python values so labels survive JSON round trips."""
    return value.item() if isinstance(value, np.generic) else value


def encode_target(
    values: np.ndarray,
    kind: TaskKind,
    *,
    target: str = "target",
    positive_class: Label | None = None,
) -> tuple[np.ndarray, TaskInfo]:
    """Encode raw target values; nulls become -1 (classification) or NaN (regression).

    Raises :class:`DataError` when a classification target has fewer than two classes or
    when ``positive_class`` is not one of them.
    """
    values = np.asarray(values, dtype=object)
    missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values])
    if kind == "regression":
        out = np.full(len(values), np.nan)
        try:
            out[~missing] = values[~missing].astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"target '{target}' has non-numeric values for regression") from exc
        return out, TaskInfo(kind="regression", target=target)

    present = values[~missing]
    classes = sorted({_native(v) for v in present}, key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "no values"
        raise DataError(f"target '{target}' has {found}: classification needs at least two classes")
    if positive_class is not None:
        if positive_class not in classes:
            raise DataError(
                f"positive_class {positive_class!r} is not a value of target '{target}' "
                f"(found {', '.join(map(repr, classes[:10]))})"
            )
        if len(classes) == 2:
            classes = [c for c in classes if c != positive_class] + [positive_class]
    index = {c: i for i, c in enumerate(classes)}
    out_int = np.full(len(values), -1, dtype=np.int64)
    out_int[~missing] = [index[_native(v)] for v in present]
    return out_int, TaskInfo(kind="classification", target=target, classes=tuple(classes))
