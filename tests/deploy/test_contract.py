"""What the deployment assumes about ``forgeml serve`` (forgeml.deploy.contract) is what
the server does: routes, their access, the admin-key variable, flags and drain time."""

from __future__ import annotations

import pytest

from forgeml.deploy import contract, render_k8s
from forgeml.deploy.settings import ScalingOptions

service = pytest.importorskip("forgeml.serving.service")


def test_probe_and_metrics_routes_exist_and_are_public() -> None:
    routes = {(r.method, r.path): r.role for r in service.ROUTES}
    for path in (contract.LIVE_PATH, contract.READY_PATH, contract.METRICS_PATH):
        assert routes.get(("GET", path)) == "public", path


def test_admin_key_file_variable() -> None:
    from forgeml.serving import auth

    assert auth.ENV_KEY_FILE == contract.ADMIN_KEY_FILE_ENV
    from forgeml.serving import config

    assert set(contract.CONFIG_FILES.values()) == {
        config.PREDICTION_LOG_FILE_ENV,
        config.INTERACTIONS_FILE_ENV,
    }


def test_serve_takes_the_flags_the_image_passes() -> None:
    import typer

    from forgeml.cli import serve_cmd

    app = typer.Typer()
    app.command()(serve_cmd.serve)
    params = typer.main.get_command(app).params
    flags = {opt for p in params for opt in p.opts}
    for flag in contract.serve_args("/models/m")[1::2]:
        assert flag in flags
    port = next(p for p in params if "--port" in p.opts)
    assert port.default == contract.PORT


def test_the_grace_period_covers_prestop_and_drain() -> None:
    from forgeml.serving.config import ServeConfig

    drain = ServeConfig(models=["m"]).drain_seconds
    deployment = render_k8s(ScalingOptions().for_model("m", 1))["base/deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    prestop = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] >= prestop + drain
