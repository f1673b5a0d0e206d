"""``forgeml ab`` end to end: a real registry with two versions, a real log store filled as
a server fills it, start -> status -> weights -> conclude; and every bad input is one clear
line and exit code 2."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from forgeml.monitoring.store import open_store
from forgeml.registry import NewVersion, Registry, RunRecord, new_run_id
from forgeml.registry.location import default_log_location

Cli = Callable[..., Any]
START = ("--unit", "user_id", "--metric", "converted")


@pytest.fixture
def reg(tmp_path: Path) -> str:
    """``churn`` v1 (champion) and v2 (challenger), and ``fraud`` v1 (champion only)."""
    folder = tmp_path / "reg"
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.txt").write_text("weights")
    with Registry.open(folder) as registry:
        for name, aliases in (("churn", ["champion"]), ("churn", ["challenger"]), ("fraud", [])):
            run = RunRecord(new_run_id(), name, "finished", datetime.now(UTC))
            registry.commit_run(
                run, NewVersion(name, source, aliases=aliases, aliases_if_absent=["champion"])
            )
    return str(folder)


def _fill(location: str, experiment: Any, n: int, seed: int) -> None:
    rng = random.Random(seed)
    split = experiment.split()
    now = datetime.now(UTC)
    predictions, feedback = [], []
    for i in range(n):
        unit = f"user-{i}"
        variant = split.assign(unit)
        ts = now + timedelta(seconds=i)
        predictions.append(
            {
                "request_id": f"req-{i}",
                "ts": ts,
                "model": experiment.model,
                "version": str(experiment.versions[variant]),
                "variant": variant,
                "unit": unit,
                "shadow": False,
                "row": 0,
                "inputs": "{}",
                "prediction": "1",
                "score": 0.5,
                "latency_ms": 10 + rng.random(),
            }
        )
        if rng.random() < (0.1 if variant == "champion" else 0.2):
            feedback.append(
                {
                    "ts": ts + timedelta(minutes=5),
                    "model": experiment.model,
                    "unit": unit,
                    "label": "true",
                    "event_id": f"ev-{i}",
                }
            )
    before = {"ts": now + timedelta(seconds=2), "model": experiment.model, "unit": "user-5"}
    feedback.append({**before, "label": "1"})  # before user-5's exposure: ignored, counted
    with open_store(location) as store:
        store.write("predictions", pl.DataFrame(predictions))
        store.write("feedback", pl.DataFrame(feedback))


def running(reg: str, model: str = "churn") -> Any:
    with Registry.open(reg, create=False) as registry:
        return registry.running_experiment(model)


def test_start_status_weights_conclude(cli: Cli, reg: str) -> None:
    variants = "champion:0.5,challenger:0.5"
    result = cli("ab", "start", "churn", "--variants", variants, *START, "--registry", reg)
    assert result.code == 0, result.err
    assert "started experiment churn-" in result.out
    assert "champion (v1) 50%, challenger (v2) 50%" in result.out
    assert "--poll-seconds" in result.err and "/admin/reload" in result.err
    experiment = running(reg)
    assert experiment.versions == {"champion": 1, "challenger": 2}

    empty = cli("ab", "status", "churn", "--registry", reg, "-O", "json")
    assert empty.code == 0, empty.err
    assert json.loads(empty.out)["decision"]["reasons"] == ["no exposures yet"]

    log = default_log_location(reg)
    _fill(log, experiment, 400, 0)
    text = cli("ab", "status", "churn", "--registry", reg)
    assert text.code == 0, text.err
    for word in ("exposures", "always-valid p", "sample ratio", "guardrails", "decision"):
        assert word in text.out
    assert "1 before exposure" in text.out

    data = json.loads(cli("ab", "status", "churn", "--registry", reg, "-O", "json").out)
    assert data["exposures"] == 400
    assert sum(v["exposures"] for v in data["variants"]) == 400
    assert data["outcomes"]["ignored"]["before_exposure"] == 1
    assert data["srm"]["mismatch"] is False
    assert data["comparisons"][0]["effect"]["kind"] == "binary"
    assert running(reg).state["challenger"]["looks"] == 2  # each look with data is saved

    explicit = cli("ab", "status", "churn", "--log", log, "--registry", reg, "-O", "json")
    assert json.loads(explicit.out)["exposures"] == 400

    moved = cli(
        "ab", "weights", "churn", "--variants", "champion:0.2,challenger:0.8", "--registry", reg
    )
    assert moved.code == 0, moved.err
    assert "weights now champion:0.2, challenger:0.8; 30.0% of units change variant" in moved.out
    assert running(reg).variants == {"champion": 0.2, "challenger": 0.8}

    done = cli("ab", "conclude", "churn", "--promote", "challenger", "--registry", reg)
    assert done.code == 0, done.err
    assert "challenger promoted, churn@champion: 1 -> 2" in done.out
    with Registry.open(reg, create=False) as registry:
        assert registry.resolve("churn@champion").version == 2
        assert registry.running_experiment("churn") is None

    listed = cli("ab", "list", "--registry", reg, "-O", "json")
    assert [(e["name"], e["status"]) for e in json.loads(listed.out)] == [
        (experiment.name, "concluded")
    ]
    table = cli("ab", "list", "churn", "--registry", reg).out
    assert "concluded" in table and "promote" in table
    # The promotion is an ordinary alias move: forgeml models rollback undoes it.
    back = cli("models", "rollback", "churn", "--registry", reg)
    assert back.code == 0 and "2 -> 1" in back.out


def test_shadow_and_rollback(cli: Cli, reg: str) -> None:
    result = cli(
        "ab", "start", "churn", *START, "--shadow", "--name", "shadow-1", "--registry", reg,
        "-O", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out)["shadow"] is True
    status = cli("ab", "status", "churn", "--registry", reg)
    assert "shadow rows scored" in status.out and "agreement" in status.out
    done = cli("ab", "conclude", "churn", "--rollback", "--registry", reg, "-O", "json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["alias_change"] is None
    assert "no prediction log" not in done.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("start", "churn", "--variants", "champion:0.5,challenger:0.6", *START), "must sum to 1"),
        (("start", "churn", "--variants", "champion:0.5,canary:0.5", *START), "no alias 'canary'"),
        (("start", "chrun", *START), "did you mean 'churn'"),
        (("start", "fraud", *START), "has no alias 'challenger'"),
        (("start", "churn", "--variants", "champion:0.5,v9:0.5", *START), "has no version 9"),
        (("start", "churn", "--variants", "champion=1", *START), "expected NAME:WEIGHT"),
        (("start", "churn", *START, "--kind", "ratio"), "ratio"),
        (("start", "churn", *START, "--control", "canary"), "control 'canary' is not a variant"),
        (("conclude", "churn", "--rollback"), "has no running experiment"),
        (("conclude", "churn", "--promote", "challenger", "--rollback"), "not both"),
        (("conclude", "churn"), "--promote VARIANT or --rollback"),
        (("weights", "churn", "--variants", "champion:0.5,challenger:0.5"), "no running"),
        (("status", "churn"), "has no experiments"),
        (("status", "fraudd"), "no model named 'fraudd'"),
    ],
)
def test_bad_inputs_are_one_clear_line(
    cli: Cli, reg: str, args: tuple[str, ...], message: str
) -> None:
    result = cli("ab", *args, "--registry", reg)
    assert result.code == 2, (result.out, result.err)
    assert message in result.err
    assert "Traceback" not in result.err and "internal error" not in result.err


def test_refusals_while_one_runs(cli: Cli, reg: str, tmp_path: Path) -> None:
    assert cli("ab", "start", "churn", *START, "--name", "first", "--registry", reg).code == 0
    second = cli("ab", "start", "churn", *START, "--name", "second", "--registry", reg)
    assert second.code == 2
    assert "already has a running experiment, 'first'" in second.err
    bad = cli(
        "ab", "weights", "churn", "--variants", "champion:0.3,challenger:0.3", "--registry", reg
    )
    assert bad.code == 2 and "must sum to 1" in bad.err
    other = cli(
        "ab", "weights", "churn", "--variants", "champion:0.5,canary:0.5", "--registry", reg
    )
    assert other.code == 2 and "unknown: canary" in other.err
    missing = cli("ab", "status", "churn", "--log", str(tmp_path / "nope"), "--registry", reg)
    assert missing.code == 2 and "no prediction log there" in missing.err
    unknown = cli("ab", "conclude", "churn", "--promote", "canary", "--registry", reg)
    assert unknown.code == 2 and "has no variant 'canary'" in unknown.err
    assert running(reg).name == "first"
