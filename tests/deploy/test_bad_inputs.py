"""Bad input gets one clear line and exit code 2 (exit 1 for a corrupted artifact), and
nothing is written: no output folder, no staging leftovers, an existing folder untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgeml.deploy import render as render_module

from .conftest import tree_state

BAD_OPTIONS = [
    (["--replicas", "0"], "--replicas must be a whole number of at least 1"),
    (["--replicas", "-2"], "--replicas must be a whole number of at least 1"),
    (["--min-replicas", "0"], "--min-replicas must be a whole number of at least 1"),
    (
        ["--min-replicas", "5", "--max-replicas", "3"],
        "--min-replicas (5) is greater than --max-replicas (3)",
    ),
    (["--replicas", "2", "--min-replicas", "1"], "cannot be combined with --min-replicas"),
    (["--cpu-target", "0"], "--cpu-target must be a whole number of at least 1"),
    (["--cpu-target", "150"], "--cpu-target is a percentage of the CPU request, from 1 to 100"),
    (["--image", "Cancer:1"], "not a valid image reference"),
    (["--image", "cancer"], "name a tag or a digest"),
    (["--image", "cancer:latest"], "'latest' changes under a running Deployment"),
    (["--image", "cancer:1;rm -rf /"], "not a valid image reference"),
    (["--image", "cancer:1 --privileged"], "not a valid image reference"),
    (["--namespace", "Prod"], "--namespace 'Prod': a namespace is at most 63 lowercase"),
    (["--namespace", "a_b"], "--namespace 'a_b'"),
]


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS]
)
def test_bad_options(
    cli, trained_registry: Path, tmp_path: Path, no_leftovers, args, message
) -> None:
    before = tree_state(trained_registry)
    out = tmp_path / "out"
    result = cli(
        "deploy", "k8s", "cancer", "-o", str(out), "--registry", str(trained_registry), *args
    )
    assert result.code == 2
    assert message in _one_line(result.err)
    assert not out.exists() and no_leftovers() == []
    assert tree_state(trained_registry) == before


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nosuch", "nosuch"),
        ("cancer@9", "version 9"),
        ("cancer@staging", "staging"),
        ("../etc", "invalid model"),
    ],
)
def test_unknown_models(
    cli, trained_registry: Path, tmp_path: Path, no_leftovers, ref, message
) -> None:
    out = tmp_path / "out"
    result = cli("deploy", "k8s", ref, "-o", str(out), "--registry", str(trained_registry))
    assert result.code == 2
    assert message in _one_line(result.err)
    assert not out.exists() and no_leftovers() == []


def test_a_registry_that_does_not_exist_is_not_created(cli, tmp_path: Path, no_leftovers) -> None:
    result = cli(
        "deploy",
        "k8s",
        "cancer",
        "-o",
        str(tmp_path / "out"),
        "--registry",
        str(tmp_path / "nothing"),
    )
    assert result.code == 2
    _one_line(result.err)
    assert no_leftovers() == [] and sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_and_left_alone(
    cli, trained_registry: Path, tmp_path: Path, no_leftovers
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--force"]):  # --force only replaces an earlier render
        result = cli(
            "deploy", "k8s", "cancer", "-o", str(out), "--registry", str(trained_registry), *extra
        )
        assert result.code == 2
        assert "--out" in _one_line(result.err)
        assert tree_state(out) == {"notes.txt": tree_state(out)["notes.txt"]}
        assert (out / "notes.txt").read_text() == "mine"
    assert no_leftovers() == []


def test_a_file_is_refused(cli, trained_registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("x")
    result = cli(
        "deploy", "k8s", "cancer", "-o", str(out), "--registry", str(trained_registry), "--force"
    )
    assert result.code == 2
    assert "exists and is not a folder" in _one_line(result.err)
    assert out.read_text() == "x"


def test_an_empty_folder_is_used(cli, trained_registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = cli("deploy", "k8s", "cancer", "-o", str(out), "--registry", str(trained_registry))
    assert result.code == 0, result.err
    assert (out / "Dockerfile").is_file()


def test_force_replaces_an_earlier_render(
    cli, trained_registry: Path, tmp_path: Path, no_leftovers
) -> None:
    out = tmp_path / "out"
    args = ("deploy", "k8s", "-o", str(out), "--registry", str(trained_registry))
    assert cli(*args, "cancer@1").code == 0
    result = cli(*args, "cancer@2")
    assert result.code == 2 and "--force" in _one_line(result.err)
    assert json.loads((out / "forgeml-deploy.json").read_text())["version"] == 1
    assert cli(*args, "cancer@2", "--force").code == 0
    assert json.loads((out / "forgeml-deploy.json").read_text())["version"] == 2
    assert no_leftovers() == []


def test_a_corrupted_artifact_is_refused(
    cli, registry_copy: Path, tmp_path: Path, no_leftovers
) -> None:
    (victim,) = (registry_copy / "artifacts" / "cancer" / "2").glob("features.json")
    victim.chmod(0o644)
    victim.write_text(victim.read_text().replace("0", "1", 1))
    out = tmp_path / "out"
    result = cli("deploy", "k8s", "cancer@2", "-o", str(out), "--registry", str(registry_copy))
    assert result.code == 1
    assert "sha256 mismatch" in _one_line(result.err)
    assert not out.exists() and no_leftovers() == []


def test_a_failure_while_writing_leaves_nothing(
    cli, trained_registry: Path, tmp_path: Path, no_leftovers, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    args = ("deploy", "k8s", "cancer@1", "-o", str(out), "--registry", str(trained_registry))
    assert cli(*args).code == 0
    before = tree_state(out)
    real = render_module._write_text
    calls = []

    def flaky(path: Path, text: str) -> None:
        calls.append(path)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(render_module, "_write_text", flaky)
    result = cli(*args[:2], "cancer@2", *args[3:], "--force")
    assert result.code == 2
    assert "No space left on device" in _one_line(result.err)
    assert tree_state(out) == before  # the earlier render, intact
    assert no_leftovers() == []

    fresh = tmp_path / "fresh"
    calls.clear()
    result = cli("deploy", "k8s", "cancer", "-o", str(fresh), "--registry", str(trained_registry))
    assert result.code == 2
    assert not fresh.exists() and no_leftovers() == []
