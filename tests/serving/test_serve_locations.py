"""``forgeml serve`` takes the prediction log's and the interaction store's locations from
files named by environment variables (a mounted Kubernetes Secret: URLs with passwords
never appear in flags or manifests); flags win, and a missing file is no error (the
Secret is optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forgeml.serving.config import INTERACTIONS_FILE_ENV, PREDICTION_LOG_FILE_ENV, ServeConfig


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ServeConfig]:
    """The configs ``forgeml serve`` would have started a server with."""
    configs: list[ServeConfig] = []
    monkeypatch.setattr("forgeml.serving.server.serve", configs.append)
    return configs


def _serve(cli: Any, registry: Path, *args: str) -> Any:
    return cli("serve", "flights@champion", "--registry", str(registry), *args)


def test_locations_come_from_the_files_the_environment_names(
    cli, served_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started
) -> None:
    log, store = tmp_path / "prediction-log", tmp_path / "interactions"
    log.write_text(f"{tmp_path / 'logs'}\n")
    store.write_text("redis://:s3cret@127.0.0.1:6379/0\n")
    monkeypatch.setenv(PREDICTION_LOG_FILE_ENV, str(log))
    monkeypatch.setenv(INTERACTIONS_FILE_ENV, str(store))
    result = _serve(cli, served_registry)
    assert result.code == 0, result.err
    assert started[-1].prediction_log == str(tmp_path / "logs")
    assert started[-1].interactions == "redis://:s3cret@127.0.0.1:6379/0"
    assert "s3cret" not in result.err and "redis://:***@127.0.0.1:6379/0" in result.err
    # A flag wins over the file; --no-log-predictions over both.
    assert _serve(cli, served_registry, "--prediction-log", str(tmp_path / "other")).code == 0
    assert started[-1].prediction_log == str(tmp_path / "other")
    assert _serve(cli, served_registry, "--no-log-predictions").code == 0
    assert started[-1].prediction_log is None


def test_a_missing_or_empty_file_leaves_the_defaults(
    cli, served_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    monkeypatch.setenv(PREDICTION_LOG_FILE_ENV, str(tmp_path / "not-created"))
    monkeypatch.setenv(INTERACTIONS_FILE_ENV, str(empty))
    assert _serve(cli, served_registry).code == 0
    assert started[-1].prediction_log == str(served_registry / "logs")  # the registry's
    assert started[-1].interactions is None


def test_an_unreadable_file_is_a_one_line_config_error(
    cli, served_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started
) -> None:
    monkeypatch.setenv(PREDICTION_LOG_FILE_ENV, str(tmp_path))  # a folder, not a file
    result = _serve(cli, served_registry)
    assert result.code == 2 and not started
    assert f"cannot read {PREDICTION_LOG_FILE_ENV}={tmp_path}" in result.err
    assert "Traceback" not in result.err
