"""Text columns: TF-IDF over word n-grams.

Fitting uses scikit-learn's ``TfidfVectorizer`` with ``spec.text`` (``max_features``,
``ngram_range``, ``min_df``, ``lowercase``, ``sublinear_tf``; l2-normalised rows, smoothed
idf). What is kept is plain data: the vocabulary in column order and the idf weights.
Transforming always goes through a vectorizer rebuilt from those two (fixed vocabulary,
restored ``idf_``), right after fitting as after loading from JSON, so a reloaded pipeline
gives bit-identical output; nothing is pickled. Nulls are empty documents. When no term
survives ``min_df`` the column has no outputs.

>>> from forgeml.config.spec import TextSpec
>>> docs = pl.Series("review", ["good food", "bad food", None])
>>> block = TextBlock.fit("review", docs, TextSpec(min_df=1, ngram_range=(1, 1)))
>>> block.names()
['review__tfidf__bad', 'review__tfidf__food', 'review__tfidf__good']
>>> [round(float(v), 3) for v in block.transform_sparse(docs).toarray()[0]]
[0.0, 0.605, 0.796]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from forgeml._optional import require
from forgeml.config.spec import TextSpec
from forgeml.features._json import Fields

__all__ = ["TextBlock"]


def _vectorizer_class() -> Any:
    module = require(
        "sklearn.feature_extraction.text", extra="text", feature="TF-IDF text features"
    )
    return module.TfidfVectorizer


def _documents(values: pl.Series) -> list[str]:
    return values.cast(pl.String).fill_null("").to_list()


@dataclass
class TextBlock:
    """Fitted TF-IDF vocabulary (in column order) and idf weights of one text column."""

    kind: ClassVar[str] = "text"
    column: str
    terms: tuple[str, ...]
    idf: np.ndarray
    ngram_range: tuple[int, int]
    lowercase: bool
    sublinear_tf: bool
    _vectorizer: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._vectorizer = None
        if self.terms:
            vec = _vectorizer_class()(
                vocabulary={t: i for i, t in enumerate(self.terms)},
                ngram_range=self.ngram_range,
                lowercase=self.lowercase,
                sublinear_tf=self.sublinear_tf,
                norm="l2",
                smooth_idf=True,
                dtype=np.float64,
            )
            vec.idf_ = self.idf
            self._vectorizer = vec

    @classmethod
    def fit(cls, column: str, values: pl.Series, spec: TextSpec) -> TextBlock:
        """Learn the vocabulary and idf weights from the training documents."""
        vec = _vectorizer_class()(
            max_features=spec.max_features,
            ngram_range=spec.ngram_range,
            min_df=spec.min_df,
            lowercase=spec.lowercase,
            sublinear_tf=spec.sublinear_tf,
            norm="l2",
            smooth_idf=True,
            dtype=np.float64,
        )
        try:
            vec.fit(_documents(values))
        except ValueError:  # no term left (empty documents, min_df above every count)
            terms: tuple[str, ...] = ()
            idf = np.zeros(0)
        else:
            terms = tuple(sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__))
            idf = np.asarray(vec.idf_, dtype=np.float64)
        return cls(column, terms, idf, spec.ngram_range, spec.lowercase, spec.sublinear_tf)

    def names(self) -> list[str]:
        return [f"{self.column}__tfidf__{t}" for t in self.terms]

    def transform_sparse(self, values: pl.Series) -> sp.csr_matrix:
        """TF-IDF rows of ``values`` as a float32 CSR matrix."""
        return self.transform_documents(_documents(values))

    def transform_documents(self, documents: list[str]) -> sp.csr_matrix:
        """TF-IDF rows of documents (``""`` for a missing one) as a float32 CSR matrix."""
        if self._vectorizer is None or not documents:
            return sp.csr_matrix((len(documents), len(self.terms)), dtype=np.float32)
        matrix = self._vectorizer.transform(documents)
        return sp.csr_matrix(matrix, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "column": self.column,
            "terms": list(self.terms),
            "idf": self.idf.tolist(),
            "ngram_range": list(self.ngram_range),
            "lowercase": self.lowercase,
            "sublinear_tf": self.sublinear_tf,
        }

    @classmethod
    def from_dict(cls, fields: Fields) -> TextBlock:
        terms = fields.strings("terms")
        idf = fields.array("idf")
        if len(idf) != len(terms) or len(set(terms)) != len(terms):
            raise fields.fail(
                "idf", f"expected {len(terms)} weights for {len(terms)} distinct terms"
            )
        ngrams = fields.array("ngram_range", integer=True)
        if ngrams.shape != (2,) or not 1 <= ngrams[0] <= ngrams[1]:
            raise fields.fail("ngram_range", "expected [low, high] with 1 <= low <= high")
        return cls(
            column=fields.string("column"),
            terms=tuple(terms),
            idf=idf,
            ngram_range=(int(ngrams[0]), int(ngrams[1])),
            lowercase=fields.boolean("lowercase"),
            sublinear_tf=fields.boolean("sublinear_tf"),
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "encoders": ["tfidf"], "n_outputs": len(self.terms)}
