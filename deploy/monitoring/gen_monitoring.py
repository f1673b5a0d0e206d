"""Write the Grafana dashboard and the Prometheus alert rules for forgeml's server.

Both use exactly the metric names ``forgeml serve`` exports on ``/metrics``
(``tests/deploy/test_monitoring.py`` checks every expression parses as PromQL and names
only exported series). Run ``python deploy/monitoring/gen_monitoring.py`` after changing
them; ``--check`` fails when the files in this folder are stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "forgeml-dashboard.json"
ALERTS = HERE / "forgeml-alerts.yaml"
SEL = 'model=~"$model"'

# (title, unit, [(PromQL, legend)]) for the time-series panels, two per row.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Requests per second by status",
        "reqps",
        [(f"sum by (code) (rate(forgeml_requests_total{{{SEL}}}[$__rate_interval]))", "{{code}}")],
    ),
    (
        "Error ratio (5xx)",
        "percentunit",
        [
            (
                f'sum(rate(forgeml_requests_total{{{SEL},code=~"5.."}}[$__rate_interval])) / '
                f"clamp_min(sum(rate(forgeml_requests_total{{{SEL}}}[$__rate_interval])), 1e-9)",
                "5xx share",
            )
        ],
    ),
    (
        "Latency (p50, p99) by route",
        "s",
        [
            (
                f"histogram_quantile({q}, sum by (le, route) "
                "(rate(forgeml_request_duration_seconds_bucket[$__rate_interval])))",
                f"p{int(q * 100)} {{{{route}}}}",
            )
            for q in (0.5, 0.99)
        ],
    ),
    (
        "Time per stage (p99)",
        "s",
        [
            (
                "histogram_quantile(0.99, sum by (le, stage) "
                "(rate(forgeml_stage_duration_seconds_bucket[$__rate_interval])))",
                "{{stage}}",
            )
        ],
    ),
    (
        "In flight and queued",
        "short",
        [
            ("sum(forgeml_inflight_requests)", "requests in flight"),
            ("sum(forgeml_queue_rows)", "rows waiting for the model"),
        ],
    ),
    (
        "Rows per model call (p50, p99)",
        "short",
        [
            (
                f"histogram_quantile({q}, sum by (le) (rate(forgeml_batch_size_bucket[$__rate_interval])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.99)
        ],
    ),
    (
        "Mean prediction",
        "short",
        [
            (
                f"sum by (model) (rate(forgeml_prediction_value_sum{{{SEL}}}[$__rate_interval])) / "
                f"clamp_min(sum by (model) (rate(forgeml_prediction_value_count{{{SEL}}}[$__rate_interval])), 1e-9)",
                "{{model}}",
            )
        ],
    ),
    (
        "Feature drift (PSI)",
        "short",
        [(f'max by (feature) (forgeml_feature_drift_score{{{SEL},method="psi"}})', "{{feature}}")],
    ),
    (
        "Drifted features",
        "short",
        [(f"sum by (model) (forgeml_feature_drifted{{{SEL}}})", "{{model}}")],
    ),
    (
        "Live metrics (delayed labels)",
        "short",
        [
            (
                f"max by (version, variant, metric) (forgeml_live_metric{{{SEL}}})",
                "v{{version}} {{variant}} {{metric}}",
            )
        ],
    ),
    (
        "Feedback per second",
        "short",
        [
            (
                f"sum by (status) (rate(forgeml_feedback_total{{{SEL}}}[$__rate_interval]))",
                "{{status}}",
            )
        ],
    ),
    (
        "Prediction log: written and dropped rows, failed writes",
        "short",
        [
            ("sum(rate(forgeml_prediction_log_written_total[$__rate_interval]))", "written rows/s"),
            ("sum(rate(forgeml_prediction_log_dropped_total[$__rate_interval]))", "dropped rows/s"),
            ("sum(rate(forgeml_prediction_log_errors_total[$__rate_interval]))", "failed writes/s"),
        ],
    ),
]

RULES: list[dict[str, Any]] = [
    {
        "alert": "ForgemlHighErrorRate",
        "expr": 'sum by (model) (rate(forgeml_requests_total{code=~"5.."}[5m])) / '
        "clamp_min(sum by (model) (rate(forgeml_requests_total[5m])), 1e-9) > 0.05",
        "for": "5m",
        "labels": {"severity": "page"},
        "annotations": {
            "summary": "{{ $labels.model }}: more than 5% of requests fail with 5xx",
            "description": "5xx share {{ $value | humanizePercentage }} over 5 minutes; "
            "503s mean overload or draining: check forgeml_queue_rows and the replicas.",
        },
    },
    {
        "alert": "ForgemlHighLatencyP99",
        "expr": "histogram_quantile(0.99, sum by (le, route) "
        '(rate(forgeml_request_duration_seconds_bucket{route=~".*(predict|infer|invocations)"}[5m]))) > 0.25',
        "for": "10m",
        "labels": {"severity": "warn"},
        "annotations": {
            "summary": "p99 latency of {{ $labels.route }} above 250 ms",
            "description": "p99 {{ $value | humanizeDuration }} for 10 minutes.",
        },
    },
    {
        "alert": "ForgemlNoTraffic",
        "expr": 'sum by (model) (rate(forgeml_requests_total{model!=""}[15m])) == 0',
        "for": "15m",
        "labels": {"severity": "warn"},
        "annotations": {
            "summary": "{{ $labels.model }} answered no prediction for 15 minutes",
            "description": "Clients may be failing before they reach the server.",
        },
    },
    {
        "alert": "ForgemlServerDown",
        "expr": "absent(forgeml_model_info)",
        "for": "5m",
        "labels": {"severity": "page"},
        "annotations": {
            "summary": "no forgeml server is reporting metrics",
            "description": "No forgeml_model_info series for 5 minutes.",
        },
    },
    {
        "alert": "ForgemlFeatureDrift",
        "expr": "max by (model, feature) (forgeml_feature_drifted) == 1",
        "for": "15m",
        "labels": {"severity": "warn"},
        "annotations": {
            "summary": "{{ $labels.model }}: feature {{ $labels.feature }} drifted",
            "description": "The server's sliding-window check finds an effect size over its "
            "threshold (PSI, KS or JS) that is also significant, for 15 minutes: "
            "see forgeml_feature_drift_score and forgeml monitor report.",
        },
    },
    {
        "alert": "ForgemlPredictionLogLoss",
        "expr": "sum by (instance) (rate(forgeml_prediction_log_dropped_total[10m])) + "
        "sum by (instance) (rate(forgeml_prediction_log_errors_total[10m])) > 0",
        "for": "10m",
        "labels": {"severity": "warn"},
        "annotations": {
            "summary": "the prediction log of {{ $labels.instance }} is losing rows",
            "description": "Rows dropped (queue full) or writes failing (disk, database): "
            "drift checks, reports and experiments see less than was served.",
        },
    },
    {
        "alert": "ForgemlShedding",
        "expr": 'sum by (model) (rate(forgeml_requests_total{code="503"}[5m])) > 0',
        "for": "10m",
        "labels": {"severity": "warn"},
        "annotations": {
            "summary": "{{ $labels.model }} is shedding load (503)",
            "description": "The queue is full: add replicas or workers.",
        },
    },
]


def dashboard() -> dict[str, Any]:
    panels = []
    for i, (title, unit, targets) in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {
                        "refId": chr(ord("A") + j),
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for j, (expr, legend) in enumerate(targets)
                ],
            }
        )
    return {
        "title": "forgeml serving",
        "uid": "forgeml-serving",
        "tags": ["forgeml"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                {
                    "name": "model",
                    "label": "Model",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {
                        "query": "label_values(forgeml_model_info, model)",
                        "refId": "models",
                    },
                    "definition": "label_values(forgeml_model_info, model)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {},
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
        "annotations": {"list": []},
    }


def alerts() -> dict[str, Any]:
    return {"groups": [{"name": "forgeml", "rules": RULES}]}


def render() -> dict[Path, str]:
    header = "# Generated by deploy/monitoring/gen_monitoring.py: edit that, not this.\n"
    return {
        DASHBOARD: json.dumps(dashboard(), indent=2) + "\n",
        ALERTS: header + yaml.safe_dump(alerts(), sort_keys=False, width=100),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the files are stale")
    args = parser.parse_args()
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        sys.exit(f"stale: {', '.join(stale)} (run python deploy/monitoring/gen_monitoring.py)")


if __name__ == "__main__":
    main()
