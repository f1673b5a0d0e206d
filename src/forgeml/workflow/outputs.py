"""What a finished run writes: the JSON summary, the registry run record, the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from forgeml.config.loader import dump_spec
from forgeml.config.redact import redacted_spec
from forgeml.config.spec import Spec

__all__ = ["Outcome", "report_context", "run_record", "summary"]


class Outcome:
    """The results of the training half of a run, gathered for the outputs below."""

    def __init__(
        self,
        *,
        run_id: str,
        spec: Spec,
        prepared: Any,
        metric: Any,
        search: Any,
        estimator: Any,
        threshold: float | None,
        evaluation: Any,
        versions: dict[str, str],
        started_at: datetime,
        members: list[tuple[int, float]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.spec = spec
        self.prepared = prepared
        self.metric = metric
        self.search = search
        self.estimator = estimator
        self.threshold = threshold
        self.evaluation = evaluation
        self.versions = versions
        self.started_at = started_at
        self.members = members or [(search.best.number, 1.0)]
        self.test_pred: Any = None  # held-out predictions (raw model output)

    @property
    def cv(self) -> dict[str, Any]:
        best = self.search.best
        return {
            "metric": self.metric.name,
            "mean": float(best.value if best.value is not None else float("nan")),
            "std": float(np.std(best.fold_values)) if best.fold_values else 0.0,
        }

    @property
    def best(self) -> dict[str, Any]:
        best = self.search.best
        out: dict[str, Any] = {
            "trial": best.number,
            "model": best.model,
            "params": best.params,
            "class_weight": best.class_weight,
        }
        if len(self.members) > 1:
            trials = {t.number: t for t in self.search.trials}
            out["ensemble"] = [
                {"trial": n, "model": trials[n].model, "weight": round(w, 4)}
                for n, w in self.members
            ]
        return out


def summary(out: Outcome) -> dict[str, Any]:
    """The run's JSON summary (``summary.json`` and ``--output json``)."""
    prepared = out.prepared
    return {
        "run_id": out.run_id,
        "name": out.spec.name,
        "task": prepared.task.to_dict(),
        "subtype": prepared.task.subtype,
        "metric": out.metric.name,
        "test_metrics": out.evaluation.metrics,
        "cv_score": out.cv,
        "best": out.best,
        "threshold": out.threshold,
        "trials": out.search.counts,
        "validation": prepared.report.to_dict(),
        "test_validation": prepared.test_report.to_dict() if prepared.test_report else None,
        "fingerprint": prepared.report.fingerprint.to_dict(),
        "seed": out.spec.seed,
        "library_versions": out.versions,
        "n_train": len(prepared.y_train),
        "n_test": len(prepared.y_test),
        "n_features": int(prepared.X_train.shape[1]),
        "leaderboard": out.search.leaderboard(limit=50),
        "notes": prepared.notes,
    }


def _flat_params(best: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {"model": best["model"], "class_weight": best["class_weight"]}
    for key, value in best["params"].items():
        # Registry params are scalars; anything else (None, lists) is kept as JSON text.
        plain = value if isinstance(value, int | float | str | bool) else json.dumps(value)
        flat[f"{best['model']}.{key}"] = plain
    return flat


def run_record(out: Outcome) -> Any:
    """The registry's :class:`~forgeml.registry.RunRecord` for this run."""
    from forgeml.registry import RunRecord

    prepared = out.prepared
    metrics = {f"test_{k}": float(v) for k, v in out.evaluation.metrics.items()}
    metrics[f"cv_{out.metric.name}"] = out.cv["mean"]
    return RunRecord(
        run_id=out.run_id,
        name=out.spec.name,
        status="finished",
        started_at=out.started_at,
        ended_at=datetime.now(UTC),
        params=_flat_params(out.best),
        metrics=metrics,
        config=json.loads(redacted_spec(out.spec).model_dump_json(exclude={"base_dir"})),
        seed=out.spec.seed,
        data_fingerprint=prepared.report.fingerprint.to_dict(),
        library_versions=out.versions,
        summary={
            "trials": out.search.counts,
            "threshold": out.threshold,
            "n_train": len(prepared.y_train),
            "n_test": len(prepared.y_test),
        },
        tags={"task": prepared.task.subtype, "model": out.search.best.model},
    )


def report_context(out: Outcome, timings: dict[str, float]) -> Any:
    """The HTML report's context (the version is filled in once registered)."""
    from forgeml.evaluation import ReportContext

    prepared = out.prepared
    importance = out.estimator.feature_importance()
    pairs: list[tuple[str, float]] = []
    if importance is not None:
        named = zip(prepared.fitted.feature_names, (float(v) for v in importance), strict=True)
        pairs = sorted(named, key=lambda p: -p[1])
    best = out.search.best
    notes = list(prepared.notes)
    if "ensemble" in out.best:
        parts = ", ".join(
            f"{m['model']} (trial {m['trial']}, weight {m['weight']:.2f})"
            for m in out.best["ensemble"]
        )
        notes.append(f"The final model averages {len(out.best['ensemble'])} trials: {parts}.")
    return ReportContext(
        title=f"Predicting '{out.spec.target}'",
        model_name=out.spec.name,
        version=None,
        run_id=out.run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        task=prepared.task,
        target=out.spec.target,
        metric=out.metric.name,
        best_model=best.model,
        evaluation=out.evaluation,
        cv_score=(out.cv["mean"], out.cv["std"]),
        leaderboard=[{**row, "score": row["value"]} for row in out.search.leaderboard()],
        best_params={"model": best.model, **best.params, "class_weight": best.class_weight},
        feature_importance=pairs,
        features=prepared.fitted.describe(),
        validation=prepared.report.to_dict(),
        fingerprint=prepared.report.fingerprint.to_dict(),
        seed=out.spec.seed,
        timings=timings,
        spec_yaml=dump_spec(redacted_spec(out.spec)),
        versions=out.versions,
        notes=notes,
    )
