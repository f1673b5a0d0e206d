"""Delayed ground truth: ``POST /v2/feedback`` joins observed outcomes to served predictions.

Two kinds of feedback, alone or in a batch (``{"feedback": [...]}``, all or nothing):

* **a label for a prediction** — ``{"request_id": "r1", "label": "yes"}`` for a one-row
  request, ``{"request_id": "r1", "row": 3, "label": 7.2}`` for one row of a larger one,
  or ``{"request_id": "r1", "labels": [...]}`` for all its rows. The label must be one of
  the model's classes (classification) or a finite number (regression).
* **an outcome of an experiment unit** — ``{"unit_id": "user-42", "value": 1}``
  (``"model"`` too when the server serves several): what ``forgeml ab status`` counts.
  ``event_id`` makes a retried outcome count once.

The server remembers its recent requests (:class:`RecentRequests`, bounded): a label for
one of them is checked against the model, joined at once, and feeds the live metrics
(``forgeml_live_metric{model,version,variant,metric}``, over a sliding time window); a
request id it no longer holds is looked up in the log store. A request id found nowhere is
a 404, a second label for the same row a 409 — nothing is recorded twice, and a batch with
one bad item records nothing. Accepted feedback is written to the log store's
``feedback`` table through the prediction log's queue, for reports and experiments.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from forgeml.errors import RequestError

__all__ = ["Entry", "FeedbackItem", "LiveWindow", "RecentRequests", "parse_feedback"]

MAX_ITEMS = 10_000
_SCALARS = (str, int, float, bool)


# One answered request: (model name, version, variant or None, raw model output, rows).
Entry = tuple[str, int, str | None, np.ndarray, int]


class RecentRequests:
    """The last ``capacity`` answered requests by id (oldest forgotten first), the rows
    that got their label, and the shadow variants' answers.

    A ring of ``capacity`` slots, one list per field: remembering a request stores
    references into preallocated lists and allocates nothing the garbage collector
    tracks. (A dataclass per request once made full collections walk 100,000 of them,
    ~60 ms; a tuple per request still made collections run far more often.)
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._slots: dict[str, int] = {}  # request id -> its slot
        self._ids: list[str | None] = [None] * capacity
        self._models: list[Any] = [None] * capacity
        self._versions: list[Any] = [None] * capacity
        self._variants: list[str | None] = [None] * capacity
        self._raws: list[Any] = [None] * capacity
        self._next = 0
        self._labelled: dict[str, int] = {}  # request id -> bit mask of labelled rows
        self._labelled_order: deque[str] = deque()
        self._shadows: dict[str, tuple[Entry, ...]] = {}

    def add(
        self, request_id: str, model: str, version: int, variant: str | None, raw: np.ndarray
    ) -> None:
        slot = self._next
        self._next = slot + 1 if slot + 1 < self.capacity else 0
        slots = self._slots
        old = self._ids[slot]
        if old is not None and slots.get(old) == slot:  # the oldest request is forgotten
            del slots[old]
            if self._shadows:
                self._shadows.pop(old, None)
        if request_id in slots:  # a reused id: the latest request wins, unlabelled
            self._labelled.pop(request_id, None)
            self._shadows.pop(request_id, None)
        slots[request_id] = slot
        self._ids[slot] = request_id
        self._models[slot] = model
        self._versions[slot] = version
        self._variants[slot] = variant
        self._raws[slot] = raw

    def get(self, request_id: str) -> Entry | None:
        slot = self._slots.get(request_id)
        if slot is None:
            return None
        raw = self._raws[slot]
        return (self._models[slot], self._versions[slot], self._variants[slot], raw, len(raw))

    def add_shadow(self, request_id: str, entry: Entry) -> None:
        if request_id in self._slots:
            self._shadows[request_id] = (*self._shadows.get(request_id, ()), entry)

    def shadows(self, request_id: str) -> tuple[Entry, ...]:
        return self._shadows.get(request_id, ())

    def is_labelled(self, request_id: str, row: int) -> bool:
        return bool(self._labelled.get(request_id, 0) >> row & 1)

    def mark(self, request_id: str, row: int) -> None:
        """Row ``row`` of the request got its label (also for requests found only in the
        log store)."""
        if request_id not in self._labelled:
            self._labelled_order.append(request_id)
            if len(self._labelled_order) > self.capacity:
                self._labelled.pop(self._labelled_order.popleft(), None)
        self._labelled[request_id] = self._labelled.get(request_id, 0) | (1 << row)

    def __len__(self) -> int:
        return len(self._slots)


@dataclass(frozen=True)
class FeedbackItem:
    """One parsed item: a label for a request's row(s), or a unit's outcome."""

    index: int
    request_id: str | None = None
    row: int | None = None
    labels: list[Any] | None = None  # for request feedback: one per row (row None: all rows)
    unit: str | None = None
    model: str | None = None
    value: float | None = None
    event_id: str | None = None

    @property
    def where(self) -> str:
        return f"feedback[{self.index}]"


def parse_feedback(data: Any) -> list[FeedbackItem]:
    """The items of a feedback body, or a 400 naming the first bad field."""
    if isinstance(data, dict) and "feedback" in data:
        items = data["feedback"]
        if not isinstance(items, list) or not items:
            raise RequestError("feedback must be a non-empty list of feedback objects")
        if len(items) > MAX_ITEMS:
            raise RequestError(f"feedback: at most {MAX_ITEMS:,} items per request")
    else:
        items = [data]
    return [_item(i, item) for i, item in enumerate(items)]


def _item(index: int, item: Any) -> FeedbackItem:
    where = f"feedback[{index}]"
    if not isinstance(item, dict):
        raise RequestError(f"{where}: expected an object with request_id or unit_id")
    known = {"request_id", "row", "label", "labels", "unit_id", "model", "value", "event_id"}
    extra = sorted(set(item) - known)
    if extra:
        raise RequestError(f"{where}: unknown field(s) {', '.join(extra)}")
    has_request, has_unit = "request_id" in item, "unit_id" in item
    if has_request == has_unit:
        raise RequestError(f"{where}: give exactly one of request_id (a label for a "
                           "prediction) or unit_id (an experiment outcome)")  # fmt: skip
    event_id = _text(item, "event_id", where, required=False)
    if has_unit:
        for name in ("row", "label", "labels"):
            if name in item:
                raise RequestError(f"{where}: {name} goes with request_id; a unit has a value")
        value = item.get("value")
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise RequestError(f"{where}.value: expected a finite number or a boolean")
        return FeedbackItem(
            index, unit=_text(item, "unit_id", where), model=_text(item, "model", where,
            required=False), value=float(value), event_id=event_id,
        )  # fmt: skip
    if "value" in item:
        raise RequestError(f"{where}: value goes with unit_id; a prediction gets a label")
    request_id = _text(item, "request_id", where)
    row = item.get("row")
    if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 0):
        raise RequestError(f"{where}.row: expected a row number (0, 1, ...)")
    if ("label" in item) == ("labels" in item):
        raise RequestError(f"{where}: give label (one row) or labels (every row), not both")
    if "labels" in item:
        labels = item["labels"]
        if row is not None:
            raise RequestError(f"{where}: labels covers every row; use label with row")
        if not isinstance(labels, list) or not labels:
            raise RequestError(f"{where}.labels: expected a non-empty list")
    else:
        labels = [item["label"]]
    for label in labels:
        if label is None or not isinstance(label, _SCALARS):
            raise RequestError(f"{where}: a label must be a string, number or boolean")
    return FeedbackItem(
        index, request_id=request_id, row=row, labels=labels, model=_text(item, "model",
        where, required=False), event_id=event_id,
    )  # fmt: skip


def _text(item: dict[str, Any], name: str, where: str, *, required: bool = True) -> Any:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise RequestError(f"{where}.{name}: expected a non-empty string (at most 256 chars)")
    return value


def check_label(model: Any, label: Any, where: str) -> Any:
    """The label as the model's own class (or a float for regression), or a 422."""
    if model.task.kind == "regression":
        if (
            isinstance(label, bool)
            or not isinstance(label, int | float)
            or not math.isfinite(label)
        ):
            raise RequestError(f"{where}: model '{model.name}' predicts numbers; the label "
                               f"must be a finite number, got {label!r}", status=422)  # fmt: skip
        return float(label)
    for cls in model.classes:
        same = not isinstance(cls, bool) and not isinstance(label, bool) and cls == label
        if same or str(cls) == str(label):
            return cls
    shown = ", ".join(map(repr, model.classes[:20]))
    raise RequestError(
        f"{where}: label {label!r} is not a class of model '{model.name}' (classes: {shown})",
        status=422,
    )


class LiveWindow:
    """The labelled predictions of one model version (and variant) over the last
    ``seconds``, at most ``capacity`` of them."""

    def __init__(self, seconds: float, capacity: int = 100_000) -> None:
        self.seconds = seconds
        self._pairs: deque[tuple[float, Any, Any, float | None]] = deque(maxlen=capacity)

    def add(self, label: Any, prediction: Any, score: float | None) -> None:
        self._pairs.append((time.time(), label, prediction, score))

    def metrics(self, kind: str, positive: Any = None) -> tuple[int, dict[str, float]]:
        """``(labels in the window, metric values)``."""
        from forgeml.monitoring.outcomes import outcome_metrics

        cutoff = time.time() - self.seconds
        pairs = self._pairs
        while pairs and pairs[0][0] < cutoff:
            pairs.popleft()
        if not pairs:
            return 0, {}
        _, labels, predictions, scores = zip(*pairs, strict=True)
        usable = None if any(s is None for s in scores) else list(scores)
        values = outcome_metrics(kind, list(labels), list(predictions), usable, positive=positive)
        return len(pairs), values
