"""Worker processes for the concurrency tests (a plain module so ``spawn`` can import it)."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from forgeml.registry import NewVersion, Registry, RunRecord, new_run_id


def commit_versions(
    uri: str,
    artifacts: str | None,
    name: str,
    worker: int,
    commits: int,
    scratch: str,
    barrier: Barrier,
    results: Queue,
) -> None:
    """Open the registry (all workers at once, possibly for the first time) and commit
    ``commits`` runs, each with a version of model ``name``; report (run_id, version)."""
    try:
        source = Path(scratch) / f"w{worker}"
        source.mkdir(parents=True)
        (source / "model.txt").write_text(f"worker {worker}")
        barrier.wait(timeout=120)
        done = []
        with Registry.open(uri, artifacts) as registry:
            for i in range(commits):
                run = RunRecord(new_run_id(), name, "finished", datetime.now(UTC), seed=i)
                result = registry.commit_run(
                    run, NewVersion(name, source, aliases_if_absent=["champion"])
                )
                assert result.version is not None
                done.append((run.run_id, result.version.version))
        results.put(("ok", worker, done))
    except BaseException:
        results.put(("error", worker, traceback.format_exc()))
