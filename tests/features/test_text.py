"""TF-IDF: same numbers as scikit-learn, exact after a JSON round trip, sparse output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from forgeml.config.spec import FeaturesSpec, TextSpec
from forgeml.features import FittedFeatures
from forgeml.tasks.info import TaskInfo, encode_target

from .conftest import fit


@pytest.fixture(scope="module")
def sms(shared_datasets: Path) -> pl.DataFrame:
    frame = pl.read_csv(shared_datasets / "sms_spam.csv")
    return frame.head(2000)


def test_tfidf_matches_sklearn_and_round_trips_exactly(sms: pl.DataFrame) -> None:
    text, label = "text", "type"
    y, task = encode_target(sms[label].to_numpy(), "classification", target=label)
    spec = FeaturesSpec(text=TextSpec(max_features=500, ngram_range=(1, 2), min_df=2))
    fitted = fit(sms, y, {text: "text", label: "string"}, task, spec)
    X = fitted.transform(sms)
    assert isinstance(X, sp.csr_matrix) and X.dtype == np.float32 and X.shape == (sms.height, 500)
    reference = TfidfVectorizer(max_features=500, ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    expected = reference.fit(sms[text].to_list()).transform(sms[text].to_list())
    vocab = [n.split("__tfidf__", 1)[1] for n in fitted.feature_names]
    assert vocab == sorted(reference.vocabulary_, key=reference.vocabulary_.__getitem__)
    np.testing.assert_allclose(X.toarray(), expected.toarray(), rtol=1e-6, atol=1e-7)
    again = FittedFeatures.from_dict(json.loads(json.dumps(fitted.to_dict())))
    Z = again.transform(sms)
    assert isinstance(Z, sp.csr_matrix)
    assert (Z != X).nnz == 0 and np.array_equal(Z.indices, X.indices)


def test_text_next_to_dense_columns_and_empty_vocabulary() -> None:
    frame = pl.DataFrame(
        {"x": [1.0, 2.0, 3.0], "doc": ["red fox", None, "lazy dog"], "e": ["", None, ""]}
    )
    spec = FeaturesSpec(text=TextSpec(min_df=1, ngram_range=(1, 1)))
    fitted = fit(
        frame, np.zeros(3), {"x": "float", "doc": "text", "e": "text"}, TaskInfo("regression"), spec
    )
    assert fitted.feature_names == [
        "x",
        "doc__tfidf__dog",
        "doc__tfidf__fox",
        "doc__tfidf__lazy",
        "doc__tfidf__red",
    ]
    X = fitted.transform(frame)
    assert isinstance(X, sp.csr_matrix) and X.shape == (3, 5)
    assert X[1, 1:].nnz == 0  # a null document has no terms
    assert [d["n_outputs"] for d in fitted.describe()] == [1, 4, 0]
    assert fitted.transform(frame.head(0)).shape == (0, 5)
