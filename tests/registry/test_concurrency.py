"""Concurrent writers: N processes committing versions of one model get 1..N, no gaps, no
lost runs, even when they all open a registry that does not exist yet."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from forgeml.registry import Registry

WORKERS = 8
COMMITS = 3


def test_concurrent_commits_get_gap_free_versions(
    where, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import registry_workers  # importable by name in the spawned children too

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=registry_workers.commit_versions,
            args=(
                where.uri,
                where.artifacts,
                "churn",
                w,
                COMMITS,
                str(tmp_path / "scratch"),
                barrier,
                results,
            ),
        )
        for w in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=240) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    errors = [r[2] for r in reports if r[0] != "ok"]
    assert not errors, errors[0]

    committed = {run_id: version for _, _, done in reports for run_id, version in done}
    assert sorted(committed.values()) == list(range(1, WORKERS * COMMITS + 1))
    with Registry.open(where.uri, where.artifacts, create=False) as reg:
        assert {r.run_id for r in reg.list_runs(limit=1000)} == set(committed)
        detail = reg.get_model("churn")
        assert [v.version for v in detail.versions] == list(range(1, WORKERS * COMMITS + 1))
        assert {v.run_id: v.version for v in detail.versions} == committed
        assert detail.aliases == {"champion": 1}  # exactly one first version
        stamps = [v.created_at for v in detail.versions]
        assert stamps == sorted(stamps)
        for version in detail.versions:
            reg.open_artifacts(version)
        folder = reg.artifacts_root / "churn"
        assert sorted(int(p.name) for p in folder.iterdir()) == sorted(committed.values())
