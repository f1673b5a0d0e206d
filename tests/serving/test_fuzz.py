"""Fuzz the whole OpenAPI surface of a real server: no input may produce a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from tests.serving.test_server import Server

from forgeml.serving.openapi import openapi_document
from forgeml.serving.service import ROUTES

schema = schemathesis.openapi.from_dict(openapi_document(ROUTES))


@pytest.fixture(scope="module")
def server(served_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(
        served_registry, "flights@champion", "--max-batch-rows", "500", "--max-body-mb", "1"
    )
    try:
        yield running
    finally:
        running.stop()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_produces_a_server_error(case, server: Server) -> None:
    response = case.call(base_url=server.url, timeout=30)
    assert response.status_code < 500, (
        case.method,
        case.path,
        response.status_code,
        response.text[:300],
        server.log_tail(),
    )
    content_type = response.headers.get("content-type") or ""
    if isinstance(content_type, list):  # schemathesis keeps every value of a header
        content_type = content_type[0] if content_type else ""
    if response.status_code >= 400 and content_type.startswith("application/json"):
        assert "error" in response.json()
