"""Task families: what is predicted, how targets are encoded, and the metrics that apply."""

from forgeml.tasks.info import TaskInfo, encode_target
from forgeml.tasks.metrics import (
    METRICS,
    Metric,
    all_metrics,
    default_metric,
    resolve_metric,
    score,
)

__all__ = [
    "METRICS",
    "Metric",
    "TaskInfo",
    "all_metrics",
    "default_metric",
    "encode_target",
    "resolve_metric",
    "score",
]
