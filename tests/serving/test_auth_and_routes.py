"""One table of routes and who may call them; every admin route refuses anonymous calls."""

from __future__ import annotations

import pytest
from tests.serving.conftest import ADMIN_KEY, make_client

from forgeml.errors import ConfigError
from forgeml.serving.config import ServeConfig
from forgeml.serving.service import ROUTES, PredictionService


def _path(template: str) -> str:
    return template.replace("{name}", "flights").replace("{version}", "1")


def test_the_table_is_the_app(client) -> None:
    served = {(m, r.path) for r in client.app.routes for m in r.methods}
    assert served == {(spec.method, spec.path) for spec in ROUTES}


def test_anonymous_calls_to_admin_routes_get_401(client) -> None:
    admin = [spec for spec in ROUTES if spec.role == "admin"]
    assert admin, "the table lists admin routes"
    for spec in ROUTES:
        response = client.request(
            spec.method, _path(spec.path), json={} if spec.method == "POST" else None
        )
        if spec.role == "admin":
            assert response.status_code == 401, spec.path
            assert response.headers.get("www-authenticate") == "Bearer"
        else:
            assert response.status_code != 401, spec.path
    for spec in admin:
        path = _path(spec.path)
        wrong = client.request(spec.method, path, headers={"X-API-Key": "wrong-key-0000000"})
        assert wrong.status_code == 401
        right = client.request(spec.method, path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        if spec.body in (None, "empty"):
            assert right.status_code == 200, (spec.path, right.text)
        else:  # let in, then told what the body lacks
            assert right.status_code == 400, (spec.path, right.text)
            assert "body" in right.json()["error"]


def test_admin_is_off_without_a_key_and_refused_when_asked_without_one(served_registry) -> None:
    with make_client(served_registry, ["flights"]) as plain:
        assert plain.post("/admin/reload").status_code == 404
    with pytest.raises(ConfigError, match="no admin key"):
        PredictionService(
            ServeConfig(models=["flights"], registry=str(served_registry), admin=True), env={}
        )
    with pytest.raises(ConfigError, match="at least 12"):
        PredictionService(
            ServeConfig(models=["flights"], registry=str(served_registry)),
            env={"FORGEML_ADMIN_KEY": "short"},
        )


def test_key_from_a_file(served_registry, tmp_path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(ADMIN_KEY + "\n")
    with make_client(
        served_registry, ["flights"], env={"FORGEML_ADMIN_KEY_FILE": str(key_file)}
    ) as c:
        assert c.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_openapi_lists_every_route(client) -> None:
    doc = client.get("/openapi.json").json()
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert listed == {(spec.method, spec.path) for spec in ROUTES}
    assert doc["paths"]["/admin/reload"]["post"]["security"]
    page = client.get("/docs").text
    assert "/v2/models/{name}/infer" in page and "http" not in page.split("<body>")[1].replace(
        "/openapi.json", ""
    )


def test_head_and_wrong_methods_on_the_route_table(client) -> None:
    head = client.head("/v2/health/live")
    assert head.status_code == 200
    wrong = client.delete("/v2/health/live")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    assert "not allowed" in wrong.json()["error"]
