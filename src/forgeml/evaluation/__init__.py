"""Evaluation: metrics and curves on held-out predictions, plots as SVG, the HTML report.

* :func:`evaluate` scores predictions for a task and returns an :class:`Evaluation`
  (metrics plus the data behind every plot; ``to_dict()`` is strict JSON).
* :func:`best_threshold` tunes a binary decision threshold on out-of-fold scores.
* :mod:`forgeml.evaluation.plots` draws the plots as self-contained SVG strings.
* :func:`render_report` / :func:`write_report` turn a :class:`ReportContext` into one
  self-contained HTML file.

Importing this package is cheap: scikit-learn, matplotlib and Jinja2 load on first use.
"""

from forgeml.evaluation.calibration import Calibration, CalibrationBin, calibration_bins
from forgeml.evaluation.confusion import ClassReport, ConfusionMatrix
from forgeml.evaluation.curves import Curve
from forgeml.evaluation.evaluate import (
    ClassificationDetail,
    Evaluation,
    RegressionDetail,
    evaluate,
)
from forgeml.evaluation.report import ReportContext, render_report, write_report
from forgeml.evaluation.residuals import Histogram, ScatterSample
from forgeml.evaluation.threshold import best_threshold

__all__ = [
    "Calibration",
    "CalibrationBin",
    "ClassReport",
    "ClassificationDetail",
    "ConfusionMatrix",
    "Curve",
    "Evaluation",
    "Histogram",
    "RegressionDetail",
    "ReportContext",
    "ScatterSample",
    "best_threshold",
    "calibration_bins",
    "evaluate",
    "render_report",
    "write_report",
]
