"""Model quality under a time budget: forgeml vs FLAML AutoML on UCI Adult.

Goal (issue): on UCI Adult (fixed stratified 80/20 split), forgeml with a 60 s budget vs
FLAML AutoML with the same 60 s budget, same 2 cores, same split, side by side in one
run: test ROC AUC and wall time. forgeml's AUC must be >= FLAML's.

The split is made once (``sklearn.model_selection.train_test_split``, stratified on the
target, ``test_size=0.2``, ``random_state=0``) and written to ``bench/.cache/adult/``
(``train.parquet``, ``test.parquet``; target column ``income``, 0/1). Each side then runs
in its own fresh subprocess, one after the other (never in parallel), pinned to the same
``--cores`` CPUs with ``sched_setaffinity``:

* forgeml (project venv): ``forgeml.run(spec, data=train, test_data=test)`` with a
  ``--budget`` second tuning budget on ``roc_auc`` and a temporary registry, then
  ``forgeml.load_model(...).predict_proba`` on the test rows;
* FLAML (``bench/.cache/venv-flaml``, its own virtualenv since FLAML pins ``xgboost<3``):
  ``AutoML().fit(time_budget=budget, metric="roc_auc", task="classification",
  n_jobs=cores, seed=0)`` on the train rows (pandas, string columns as ``category``),
  then ``predict_proba`` on the test rows.

Each child sends back its positive-class probabilities for the test rows; this script
computes both ROC AUCs itself with ``sklearn.metrics.roc_auc_score`` on the same rows.
Wall time: ``fit`` is the training call (forgeml: the whole ``run``: validation,
features, tuning, refit, evaluation, registry, report); ``fit+predict`` adds loading the
model and scoring the test rows; ``process`` is the child's whole life (interpreter start,
imports, reading the split). Memory: the child's own peak RSS, and the peak PSS of its
whole process tree sampled every 0.25 s (forgeml tunes in worker processes; PSS counts
pages they share once).

forgeml's budget bounds its tuning; validation, the refit of the best configuration on all
training rows, evaluation and registration come on top, so its fit can outlast the budget.
``--flaml-budget match`` is the fairness check for that: FLAML then gets forgeml's measured
fit wall time of the same run as its ``time_budget`` (results in
``quality_vs_flaml_matched.json``).

``--runs N`` repeats the side-by-side pair N times in one invocation (alternating which
side goes first) and judges the goal on the median AUC difference; each run also gets a
paired bootstrap interval for its difference over the test rows.

Run: ``.venv/bin/python bench/quality_vs_flaml.py [--budget 60 --cores 2 --runs 1]``, or
``--only flaml`` for one side alone.
Results: a table on stdout and ``bench/results/quality_vs_flaml.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    CACHE,
    child_peak_rss_mib,
    dataset_path,
    format_table,
    machine_info,
    now_iso,
    peer_python,
    peer_versions,
    run_json,
    versions,
    write_json_atomic,
    write_result,
)

NAME = "quality_vs_flaml"
ADULT = "adult_income.csv"
SOURCE_TARGET = "income >50K"
TARGET = "income"
SPLIT_DIR = CACHE / "adult"
FLAML_PINS = ["flaml[automl]==2.7.0", "pyarrow==25.0.1"]
FLAML_PACKAGES = ["flaml", "lightgbm", "xgboost", "scikit-learn", "pandas", "numpy", "pyarrow"]
FORGEML_PACKAGES = ["forgeml", "lightgbm", "xgboost", "scikit-learn", "optuna", "polars"]
FORGEML_PACKAGES += ["pandas", "numpy"]
SIDES = ("forgeml", "flaml")
NOT_READY = "not_ready"


# --- the split (parent, project venv) --------------------------------------------------------


def make_split(source: Path, seed: int) -> dict[str, Any]:
    """Write the stratified 80/20 split once; reuse it while source and seed are unchanged."""
    import hashlib

    import polars as pl
    from sklearn.model_selection import train_test_split

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    meta_path = SPLIT_DIR / "split.json"
    wanted = {"source": str(source), "sha256": digest, "seed": seed, "test_size": 0.2}
    if meta_path.is_file() and (SPLIT_DIR / "test.parquet").is_file():
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in wanted} == wanted:
            return meta
    frame = pl.read_csv(source).rename({SOURCE_TARGET: TARGET})
    y = frame.get_column(TARGET).to_numpy()
    train_idx, test_idx = train_test_split(
        range(len(frame)), test_size=0.2, stratify=y, random_state=seed
    )
    SPLIT_DIR.mkdir(parents=True, exist_ok=True)
    for name, idx in (("train", train_idx), ("test", test_idx)):
        tmp = SPLIT_DIR / f".{name}.parquet.tmp"
        frame[list(idx)].write_parquet(tmp)
        os.replace(tmp, SPLIT_DIR / f"{name}.parquet")
    meta = {**wanted, "n_train": len(train_idx), "n_test": len(test_idx)}
    meta["positive_rate_train"] = round(float(y[list(train_idx)].mean()), 5)
    meta["positive_rate_test"] = round(float(y[list(test_idx)].mean()), 5)
    write_json_atomic(meta_path, meta)
    return meta


# --- children --------------------------------------------------------------------------------


def pin_cores(cores: int) -> list[int]:
    """Restrict this process (and the workers it starts) to its first ``cores`` CPUs."""
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    os.sched_setaffinity(0, cpus)
    return cpus


def child_flaml(budget: float, cores: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    import pandas as pd
    from flaml import AutoML

    train = pd.read_parquet(SPLIT_DIR / "train.parquet")
    test = pd.read_parquet(SPLIT_DIR / "test.parquet")
    for column in train.columns:
        if column != TARGET and not pd.api.types.is_numeric_dtype(train[column]):
            train[column] = train[column].astype("category")
            categories = train[column].cat.categories
            test[column] = pd.Categorical(test[column], categories=categories)
    X_train, y_train = train.drop(columns=[TARGET]), train[TARGET]
    X_test = test.drop(columns=[TARGET])
    ready = time.perf_counter()
    automl = AutoML()
    automl.fit(
        X_train,
        y_train,
        time_budget=budget,
        metric="roc_auc",
        task="classification",
        n_jobs=cores,
        seed=seed,
        verbose=0,
    )
    fitted = time.perf_counter()
    proba = automl.predict_proba(X_test)[:, list(automl.classes_).index(1)]
    done = time.perf_counter()
    return {
        "status": "ok",
        "proba": [float(p) for p in proba],
        "fit_seconds": fitted - ready,
        "fit_predict_seconds": done - ready,
        "setup_seconds": ready - started,
        "best": {"model": automl.best_estimator, "config": automl.best_config},
        "detail": {"best_val_loss": automl.best_loss},
    }


def forgeml_spec(budget: float, seed: int, registry: str) -> dict[str, Any]:
    return {
        "name": "adult",
        "task": "classification",
        "target": TARGET,
        "positive_class": 1,
        "tuning": {"budget": {"seconds": budget}, "metric": "roc_auc"},
        "registry": {"uri": registry},
        "seed": seed,
    }


def child_forgeml(budget: float, cores: int, seed: int) -> dict[str, Any]:
    del cores  # forgeml's engine sizes its workers from the CPU affinity set by pin_cores
    started = time.perf_counter()
    import polars as pl

    import forgeml

    train = pl.read_parquet(SPLIT_DIR / "train.parquet")
    test = pl.read_parquet(SPLIT_DIR / "test.parquet")
    with tempfile.TemporaryDirectory(prefix="forgeml-bench-registry-") as registry:
        spec = forgeml_spec(budget, seed, registry)
        ready = time.perf_counter()
        try:
            result = forgeml.run(spec, data=train, test_data=test)
        except TypeError as exc:  # the API does not take test_data yet
            if "test_data" not in str(exc):
                raise
            return {"status": NOT_READY, "error": f"{type(exc).__name__}: {exc}"}
        fitted = time.perf_counter()
        model = forgeml.load_model(f"{result.model_name}@{result.version}", registry=registry)
        proba = model.predict_proba(test.drop(TARGET))[:, list(model.classes_).index(1)]
        done = time.perf_counter()
        summary = json.loads(Path(result.summary_path).read_text())
    return {
        "status": "ok",
        "proba": [float(p) for p in proba],
        "fit_seconds": fitted - ready,
        "fit_predict_seconds": done - ready,
        "setup_seconds": ready - started,
        "best": result.best,
        "detail": {
            "trials": result.trials,
            "cv_score": result.cv_score,
            "own_test_metrics": result.test_metrics,
            "n_train": summary.get("n_train"),
            "n_test": summary.get("n_test"),
            "timings_s": result.to_dict()["timings_s"],
        },
    }


def child_main(side: str, budget: float, cores: int, seed: int) -> None:
    cpus = pin_cores(cores)
    run = child_flaml if side == "flaml" else child_forgeml
    result = run(budget, cores, seed)
    result.update(cpus=cpus, child_peak_rss_mib=child_peak_rss_mib())
    print(json.dumps(result, default=str))


# --- the parent ------------------------------------------------------------------------------


def side_python(side: str) -> Path:
    return Path(sys.executable) if side == "forgeml" else peer_python("flaml", FLAML_PINS)


def side_versions(side: str, python: Path) -> dict[str, str]:
    if side == "forgeml":
        return versions(FORGEML_PACKAGES)
    return peer_versions(python, FLAML_PACKAGES)


def run_side(
    side: str, budget: float, args: argparse.Namespace, y_test: Any, probas: dict[str, Any]
) -> dict[str, Any]:
    """Run one side in a fresh subprocess and score its probabilities here (they are kept
    in ``probas`` for the paired bootstrap, not written to the results)."""
    from sklearn.metrics import roc_auc_score

    python = side_python(side)
    child_args = ["--child", side, "--budget", str(budget), "--cores", str(args.cores)]
    child_args += ["--seed", str(args.seed)]
    print(f"running {side} ({budget:g} s budget) ...", file=sys.stderr)
    try:
        out = run_json(python, __file__, child_args, timeout=budget * 4 + 600)
    except RuntimeError as exc:
        return {"status": "failed", "error": str(exc)[-3000:], "versions": {}}
    out["versions"] = side_versions(side, python)
    out["budget_seconds"] = budget
    if out["status"] != "ok":
        return out
    proba = out.pop("proba")
    if len(proba) != len(y_test):
        out.update(status="failed", error=f"{len(proba)} probabilities for {len(y_test)} rows")
        return out
    out["test_roc_auc"] = float(roc_auc_score(y_test, proba))
    probas[side] = proba
    return out


def flaml_budget(args: argparse.Namespace, forgeml: dict[str, Any]) -> float:
    """FLAML's time budget: ``--flaml-budget`` seconds, forgeml's fit time ('match'), or
    the common ``--budget``."""
    if args.flaml_budget is None:
        return args.budget
    if args.flaml_budget != "match":
        return float(args.flaml_budget)
    if forgeml.get("status") != "ok":
        raise SystemExit("--flaml-budget match needs the forgeml side to run first and succeed")
    return round(float(forgeml["fit_seconds"]), 1)


def bootstrap_delta(
    y: Any, ours: Any, theirs: Any, *, n: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap of AUC(forgeml) - AUC(FLAML) over the test rows: a 95% interval
    says whether the difference is larger than what resampling the test set gives."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y, ours, theirs = np.asarray(y), np.asarray(ours), np.asarray(theirs)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        deltas.append(roc_auc_score(y[idx], ours[idx]) - roc_auc_score(y[idx], theirs[idx]))
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {
        "resamples": n,
        "ci95": [round(float(low), 5), round(float(high), 5)],
        "share_forgeml_ge": round(float(np.mean(np.asarray(deltas) >= 0)), 4),
    }


def fmt(value: Any, spec: str) -> str:
    return "pending" if value is None else format(value, spec)


def run_pair(index: int, args: argparse.Namespace, y_test: Any) -> dict[str, Any]:
    """One side-by-side run: both sides one after the other (which goes first alternates
    between runs, except with ``--flaml-budget match``), then the paired bootstrap."""
    order = list(SIDES)
    if index % 2 == 1 and args.flaml_budget != "match":
        order.reverse()
    results: dict[str, dict[str, Any]] = {}
    probas: dict[str, Any] = {}
    for side in order:
        if args.only and side != args.only:
            results[side] = {"status": "skipped"}
            continue
        budget = args.budget
        if side == "flaml":
            budget = flaml_budget(args, results.get("forgeml", {}))
        results[side] = run_side(side, budget, args, y_test, probas)
    boot = None
    if len(probas) == len(SIDES):
        boot = bootstrap_delta(y_test, probas["forgeml"], probas["flaml"], seed=args.seed)
    return {"run": index + 1, "order": order, "sides": results, "bootstrap": boot}


def _ok(runs: list[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    return [r["sides"][side] for r in runs if r["sides"][side].get("status") == "ok"]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary_table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per tool: medians over the runs (memory: the largest peak)."""
    headers = ["tool", "runs", "test ROC AUC (median)", "AUC range", "budget s", "fit s"]
    headers += ["fit+predict s", "process s", "peak RSS MiB", "tree PSS MiB", "best model"]
    rows = []
    for side in SIDES:
        ok = _ok(runs, side)
        aucs = [r["test_roc_auc"] for r in ok]
        status = runs[-1]["sides"][side].get("status", "pending")
        best = sorted({str((r.get("best") or {}).get("model")) for r in ok}) or [status]
        rows.append(
            [
                side,
                f"{len(ok)}/{len(runs)}",
                fmt(_median(aucs), ".4f"),
                f"{min(aucs):.4f}-{max(aucs):.4f}" if aucs else "pending",
                fmt(_median([r["budget_seconds"] for r in ok]), ".1f"),
                fmt(_median([r["fit_seconds"] for r in ok]), ".1f"),
                fmt(_median([r["fit_predict_seconds"] for r in ok]), ".1f"),
                fmt(_median([r["_process"]["wall_seconds"] for r in ok]), ".1f"),
                fmt(max((r["child_peak_rss_mib"] for r in ok), default=None), ",.0f"),
                fmt(max((r["_process"]["tree_peak_pss_mib"] for r in ok), default=None), ",.0f"),
                ", ".join(best),
            ]
        )
    return {"headers": headers, "rows": rows}


def runs_table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per run: both AUCs, their difference with its bootstrap interval, fit times."""
    headers = ["run", "order", "forgeml AUC", "FLAML AUC", "difference", "95% interval"]
    headers += ["forgeml fit s", "FLAML fit s"]
    rows = []
    for run in runs:
        ours, theirs = run["sides"]["forgeml"], run["sides"]["flaml"]
        a, b = ours.get("test_roc_auc"), theirs.get("test_roc_auc")
        boot = run["bootstrap"]
        rows.append(
            [
                run["run"],
                " then ".join(run["order"]),
                fmt(a, ".4f"),
                fmt(b, ".4f"),
                fmt(a - b if a is not None and b is not None else None, "+.4f"),
                "[{:+.4f}, {:+.4f}]".format(*boot["ci95"]) if boot else "n/a",
                fmt(ours.get("fit_seconds"), ".1f"),
                fmt(theirs.get("fit_seconds"), ".1f"),
            ]
        )
    return {"title": "Each run", "headers": headers, "rows": rows}


def goal(runs: list[dict[str, Any]], matched: bool) -> dict[str, Any]:
    text = "forgeml's test ROC AUC >= FLAML's (same split, same budget, same cores)"
    if matched:
        text = "forgeml's test ROC AUC >= FLAML's when FLAML gets forgeml's fit wall time"
    deltas = []
    for run in runs:
        a = run["sides"]["forgeml"].get("test_roc_auc")
        b = run["sides"]["flaml"].get("test_roc_auc")
        if a is not None and b is not None:
            deltas.append(a - b)
    if not deltas:
        missing = [s for s in SIDES if not _ok(runs, s)]
        return {"text": text, "met": None, "measured": f"pending: no AUC for {missing}"}
    median = statistics.median(deltas)
    wins = sum(d >= 0 for d in deltas)
    measured = f"median AUC difference {median:+.4f} over {len(deltas)} run(s)"
    measured += f", forgeml >= FLAML in {wins} of {len(deltas)}"
    boots = [run["bootstrap"] for run in runs if run["bootstrap"]]
    ties = sum(b["ci95"][0] <= 0 <= b["ci95"][1] for b in boots)
    measured += f"; the 95% interval contains 0 in {ties} of {len(boots)}"
    return {"text": text, "met": median >= 0, "measured": measured}


def budget_notes(runs: list[dict[str, Any]]) -> list[str]:
    """How long each side's fit took against its budget (forgeml: per stage)."""
    parts = []
    for run in runs:
        sides = []
        for side, r in run["sides"].items():
            if r.get("status") != "ok":
                continue
            text = f"{side} {r['fit_seconds']:.1f} s for {r['budget_seconds']:g} s"
            stages = (r.get("detail") or {}).get("timings_s") or {}
            shown = [f"{k} {v:.1f}" for k, v in stages.items() if v >= 0.5]
            sides.append(text + (f" ({', '.join(shown)})" if shown else ""))
        if sides:
            parts.append(f"run {run['run']}: " + ", ".join(sides))
    return ["Fit wall time against the budget: " + "; ".join(parts) + "."] if parts else []


def status_notes(runs: list[dict[str, Any]]) -> list[str]:
    notes: list[str] = []
    for run in runs:
        for side, r in run["sides"].items():
            if r.get("status") == NOT_READY:
                note = (
                    f"{side}: pending - the API is not ready yet ({r['error']}). Run "
                    "`.venv/bin/python bench/quality_vs_flaml.py` again once forgeml.run "
                    "accepts test_data=."
                )
            elif r.get("status") == "failed":
                note = f"{side}: failed - {r['error'].strip().splitlines()[-1]}"
            elif r.get("status") == "skipped":
                note = f"{side}: not run in this invocation (--only)."
            else:
                continue
            if note not in notes:
                notes.append(note)
    return notes


def check_notes(runs: list[dict[str, Any]], n_test: int) -> list[str]:
    """Cross-checks of forgeml's own evaluation against the AUC computed here."""
    notes = []
    diffs = []
    for r in _ok(runs, "forgeml"):
        detail = r.get("detail") or {}
        own = (detail.get("own_test_metrics") or {}).get("roc_auc")
        if own is not None:
            diffs.append(abs(own - r["test_roc_auc"]))
        if detail.get("n_test") not in (None, n_test):
            notes.append(
                f"WARNING: forgeml evaluated on {detail['n_test']} rows, not the "
                f"{n_test} rows of the explicit test set."
            )
    if diffs:
        notes.append(
            "forgeml's own evaluation of the test set agrees with the AUC computed here "
            f"(largest difference {max(diffs):.1e})."
        )
    return notes


def notes_for(runs: list[dict[str, Any]], split: dict[str, Any]) -> list[str]:
    notes = [
        f"Split: {split['n_train']:,} train / {split['n_test']:,} test rows, stratified, seed "
        f"{split['seed']}; AUC computed here with sklearn.metrics.roc_auc_score for both.",
        "Sides ran one after the other in fresh subprocesses, each pinned to the same CPUs. "
        "A time budget on shared CPUs makes the number of trials, and so the result, vary "
        "from run to run.",
    ]
    if any(run["bootstrap"] for run in runs):
        notes.append(
            "95% interval: paired bootstrap of the AUC difference (forgeml - FLAML) over "
            "the test rows, 1000 resamples; an interval containing 0 means the difference "
            "is within test-set noise."
        )
    return notes + status_notes(runs) + budget_notes(runs) + check_notes(runs, split["n_test"])


def side_versions_of(runs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for side in SIDES:
        for run in runs:
            if run["sides"][side].get("versions"):
                found[side] = run["sides"][side]["versions"]
                break
    return found


def print_report(
    args: argparse.Namespace, tables: list[dict[str, Any]], outcome: dict, notes: list[str]
) -> None:
    print(f"\nUCI Adult, stratified 80/20 (seed {args.seed}), {args.cores} cores each,")
    print(f"{args.runs} run(s), the two sides one after the other in each")
    for table in tables:
        if table.get("title"):
            print(f"\n{table['title']}")
        print(format_table(table["headers"], [[str(c) for c in row] for row in table["rows"]]))
    print(f"\ngoal: {outcome['text']}: {outcome['measured']}")
    for note in notes:
        print(f"- {note}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds, for each side")
    parser.add_argument(
        "--flaml-budget",
        default=None,
        help="FLAML's budget if not --budget: seconds, or 'match' (forgeml's fit wall time)",
    )
    parser.add_argument("--runs", type=int, default=1, help="side-by-side runs (medians)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=SIDES, help="run one side only (the other: pending)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(args.child, args.budget, args.cores, args.seed)
        return

    import polars as pl

    source = dataset_path(ADULT)
    assert source is not None
    split = make_split(source, args.seed)
    y_test = pl.read_parquet(SPLIT_DIR / "test.parquet").get_column(TARGET).to_numpy()
    runs = [run_pair(i, args, y_test) for i in range(args.runs)]

    matched = args.flaml_budget == "match"
    summary, per_run = summary_table(runs), runs_table(runs)
    outcome = goal(runs, matched)
    notes = notes_for(runs, split)
    print_report(args, [summary, per_run], outcome, notes)
    name = f"{NAME}_matched" if matched else NAME
    title = "Model quality under a time budget: forgeml vs FLAML AutoML (UCI Adult)"
    if matched:
        title += ", FLAML given forgeml's fit wall time"
    write_result(
        name,
        {
            "benchmark": name,
            "title": title,
            "command": " ".join(["bench/quality_vs_flaml.py", *sys.argv[1:]]),
            "date": now_iso(),
            "machine": machine_info(),
            "versions": side_versions_of(runs),
            "parameters": {
                "dataset": "UCI Adult (adult_income.csv), target income (0/1)",
                "split": split,
                "budget_seconds": args.budget,
                "flaml_budget": args.flaml_budget or args.budget,
                "runs": args.runs,
                "cores": args.cores,
                "seed": args.seed,
                "only": args.only,
                "forgeml_spec": forgeml_spec(args.budget, args.seed, "<temporary folder>"),
                "flaml_fit": {
                    "time_budget": args.flaml_budget or args.budget,
                    "metric": "roc_auc",
                    "task": "classification",
                    "n_jobs": args.cores,
                    "seed": args.seed,
                },
                "flaml_pins": FLAML_PINS,
            },
            "goal": outcome,
            "table": summary,
            "extra_tables": [per_run],
            "notes": notes,
            "runs": runs,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
