"""The Grafana dashboard and Prometheus alert rules: valid, fresh, and naming only series
the server really exports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from forgeml.serving.metrics import ServerMetrics

HERE = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DASHBOARD = json.loads((HERE / "forgeml-dashboard.json").read_text())
RULES = yaml.safe_load((HERE / "forgeml-alerts.yaml").read_text())["groups"][0]["rules"]
# Grafana's variables, as Grafana substitutes them before querying.
GRAFANA = {"$__rate_interval": "5m", "$model": ".*"}


def _expressions() -> list[str]:
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    return exprs + [rule["expr"] for rule in RULES]


def _promql(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    return expr


def _selected_names(node: Any) -> set[str]:
    """Metric names of every vector selector in a parsed PromQL expression."""
    names = set()
    if type(node).__name__ == "VectorSelector" and node.name:
        names.add(node.name)
    for attr in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
        value = getattr(node, attr, None)
        for child in value if isinstance(value, list) else [value]:
            if child is not None and not isinstance(child, str | int | float):
                names |= _selected_names(child)
    return names


def _exported() -> set[str]:
    """Every sample name a server exports once each series has data."""
    metrics = ServerMetrics()
    metrics.count("churn", "3", "/predict", 200, 0.002)
    metrics.predictions("churn").observe(0.4)
    for stage in metrics.stages.values():
        stage.observe(0.001)
    metrics.batch_size.observe(4)
    metrics.set_models([SimpleNamespace(name="churn", version=3, aliases=["champion"])])
    metrics.set_drift("churn", "age", "psi", 0.05)
    metrics.drifted[("churn", "age")] = 0.0
    metrics.count_feedback("churn", "matched")
    metrics.live = lambda: {("churn", "3", ""): (10, {"accuracy": 0.9})}
    page = metrics.render()[0].decode()
    return {s.name for f in text_string_to_metric_families(page) for s in f.samples}


def test_the_files_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("gen_monitoring", HERE / "gen_monitoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, text in module.render().items():
        assert path.read_text() == text, f"{path.name} is stale: run gen_monitoring.py"


@pytest.mark.parametrize("expr", _expressions())
def test_every_expression_parses_and_names_exported_series(expr: str) -> None:
    parsed = promql_parser.parse(_promql(expr))
    names = _selected_names(parsed)
    assert names, expr
    assert names <= _exported(), names - _exported()


def test_a_broken_expression_would_be_caught() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(forgeml_requests_total[5m])")
    assert _selected_names(promql_parser.parse("rate(forgeml_requets_total[5m])")) - _exported()


def test_dashboard_structure() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["type"] == "query"
    assert "forgeml_model_info" in variables["model"]["definition"]
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel[
            "gridPos"
        ]["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
    titled = " ".join(p["title"] for p in DASHBOARD["panels"])
    for topic in ("Requests", "Error", "Latency", "drift"):
        assert topic in titled


def test_alert_rules_cover_drift_errors_latency_and_silence() -> None:
    names = [rule["alert"] for rule in RULES]
    assert len(names) == len(set(names))
    for wanted in ("HighErrorRate", "HighLatencyP99", "NoTraffic", "FeatureDrift"):
        assert any(wanted in n for n in names), wanted
    for rule in RULES:
        assert rule["for"] and rule["labels"]["severity"] in ("page", "warn")
        assert rule["annotations"]["summary"]
