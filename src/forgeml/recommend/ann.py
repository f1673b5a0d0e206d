"""An approximate nearest-neighbour index over a factor model's items (ALS, BPR), through
``hnswlib`` — an optional dependency (``pip install 'forgeml[rec]'``).

The graph is built in hnswlib's inner-product space over the item vectors as they are
(for BPR they include the bias column, and the user vectors a 1, so the inner product is
the model's score). Candidates' scores are recomputed exactly (``user · item``), so the
returned scores are the model's own. (The textbook reduction of inner-product search to
cosine search — one extra coordinate ``sqrt(R² - |y|²)`` — was measured and gave far
lower recall with hnswlib: 0.57 vs 0.87 at ``ef=100`` on Gaussian factors.)

Seen and excluded items are honoured by over-fetching: a user with ``e`` excluded items
asks the graph for ``k + e`` candidates and drops the excluded ones. A user with more than
``max_overfetch`` exclusions, and any call with ``allow`` (a restricted set, e.g. one
category), is scored exactly instead — both are cheap exactly and costly approximately.

>>> import numpy as np, scipy.sparse as sp
>>> from forgeml.recommend.als import ALS
>>> rng = np.random.default_rng(0)
>>> model = ALS(factors=8)
>>> model.seen_ = sp.csr_matrix((5, 300), dtype=np.float32)
>>> model.user_factors_ = rng.normal(size=(5, 8)).astype(np.float32)
>>> model.item_factors_ = rng.normal(size=(300, 8)).astype(np.float32)
>>> index = build_index(model)
>>> recall_at_k_vs_exact(model, np.arange(5), k=10) >= 0.9
True
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml._optional import require
from forgeml.errors import DataError, UsageError
from forgeml.recommend.models import Recommender, _check_k, _codes, _top_k

if TYPE_CHECKING:
    import scipy.sparse as sp

    from forgeml.recommend.als import _FactorModel

__all__ = ["ItemIndex", "build_index", "recall_at_k_vs_exact"]


class ItemIndex:
    """An HNSW graph over ``model``'s item vectors; build it with :func:`build_index`.

    ``recommend`` / ``recommend_history`` have the model's signatures and return the same
    kind of ``(items, scores)`` (approximately the same items; exact scores). ``ef`` is
    the search breadth (higher: better recall, slower); it is raised per call to at least
    the number of candidates fetched. Queries are not thread-safe (hnswlib's ``ef`` is
    index state): use one index from one thread at a time.
    """

    def __init__(
        self,
        model: _FactorModel,
        graph: Any,
        *,
        M: int,
        ef_construction: int,
        ef: int,
        max_overfetch: int,
    ) -> None:
        self.model = model
        self.graph = graph
        self.M = M
        self.ef_construction = ef_construction
        self.ef = ef
        self.max_overfetch = max_overfetch
        self._factors = model.item_vectors()

    @property
    def n_items(self) -> int:
        """Number of items in the graph (the model's catalogue)."""
        return int(self.graph.get_current_count())

    def _check_fresh(self) -> None:
        if self.model.item_vectors() is not self._factors:
            raise UsageError("the ANN index was built for other item factors: rebuild it")

    def query(
        self, user_vectors: np.ndarray, k: int = 10, *, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)`` ``[len(user_vectors), k]``: approximate top-``k`` items by
        inner product, best first, never an excluded item; ``exclude`` is ``None``, one
        array of item codes per row, or a sparse ``[rows, n_items]`` matrix (non-zeros
        excluded). Padding ``-1`` / ``-inf`` where fewer than ``k`` items remain."""
        import scipy.sparse as sp

        self._check_fresh()
        k = _check_k(k)
        vectors = np.atleast_2d(np.asarray(user_vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[1] != self._factors.shape[1]:
            raise UsageError(
                f"user_vectors must have {self._factors.shape[1]} columns, got {vectors.shape}"
            )
        rows = len(vectors)
        n_items = self._factors.shape[0]
        if exclude is None:
            excluded: sp.csr_matrix = sp.csr_matrix((rows, n_items), dtype=np.float32)
        elif sp.issparse(exclude):
            excluded = sp.csr_matrix(exclude)
        else:
            excluded = _rows_matrix(list(exclude), n_items)
        if excluded.shape != (rows, n_items):
            raise UsageError(f"exclude must cover {rows} rows x {n_items} items")
        items = np.full((rows, k), -1, dtype=np.int64)
        scores = np.full((rows, k), -np.inf, dtype=np.float32)
        counts = np.diff(excluded.indptr)
        need = k + counts
        # Rows that need about as many candidates share one query (fetch sizes rounded up
        # to a power of two), so a heavy user does not widen the search for light ones.
        buckets = 2 ** np.ceil(np.log2(np.maximum(need, 1))).astype(np.int64)
        # Too many exclusions, or a search over most of the catalogue: exact is cheaper.
        exact = (counts > self.max_overfetch) | (2 * buckets >= n_items)
        groups = [(np.flatnonzero(exact), 0)] + [
            (np.flatnonzero(~exact & (buckets == bucket)), int(bucket))
            for bucket in np.unique(buckets[~exact])
        ]
        for group, fetch in groups:
            if len(group) == 0:
                continue
            found = self._search(vectors[group], excluded[group], fetch, k) if fetch else None
            top, top_scores = (
                found if found is not None else self._exact(vectors[group], excluded[group], k)
            )
            items[group, : top.shape[1]] = top
            scores[group, : top.shape[1]] = top_scores
        items[~np.isfinite(scores)] = -1
        scores[items < 0] = -np.inf
        return items, scores

    def _search(
        self, vectors: np.ndarray, excluded: sp.csr_matrix, fetch: int, k: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``fetch`` graph candidates per row, rescored exactly, exclusions dropped;
        ``None`` when the graph cannot return that many."""
        self.graph.set_ef(max(self.ef, fetch))
        try:
            labels, _ = self.graph.knn_query(
                vectors, k=fetch, num_threads=1 if len(vectors) < 16 else -1
            )
        except RuntimeError:  # hnswlib found fewer than `fetch` items
            return None
        labels = labels.astype(np.int64)
        candidate_scores = np.einsum("rd,rkd->rk", vectors, self._factors[labels])
        candidate_scores = candidate_scores.astype(np.float32)
        for row in range(len(vectors)):
            banned = excluded.indices[excluded.indptr[row] : excluded.indptr[row + 1]]
            if len(banned):
                candidate_scores[row, np.isin(labels[row], banned)] = -np.inf
        top, top_scores = _top_k(candidate_scores, k)
        return np.take_along_axis(labels, top, axis=1), top_scores

    def _exact(
        self, vectors: np.ndarray, excluded: sp.csr_matrix, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        dense = np.asarray(vectors @ self._factors.T, dtype=np.float32)
        rows, cols = excluded.nonzero()
        dense[rows, cols] = -np.inf
        return _top_k(dense, k)

    def recommend(
        self,
        user_codes: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        exclude: Any = None,
        allow: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like ``model.recommend`` through the index (``allow``: exact, see module docs)."""
        if allow is not None:
            return self.model.recommend(
                user_codes, k, exclude_seen=exclude_seen, exclude=exclude, allow=allow
            )
        users = _codes(user_codes, self.model.n_users, "user")
        history = self.model.seen_[users]
        result = self.query(
            self.model.user_vectors(users),
            k,
            exclude=self._exclusions(history if exclude_seen else None, exclude, len(users)),
        )
        return self._popular_for_empty(history, result, k, exclude_seen, exclude)

    def recommend_history(
        self,
        histories: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        exclude: Any = None,
        allow: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like ``model.recommend_history`` (fold-in), through the index."""
        if allow is not None:
            return self.model.recommend_history(
                histories, k, exclude_seen=exclude_seen, exclude=exclude, allow=allow
            )
        history = self.model._history_matrix(histories)
        vectors = self.model._fold_in(history)
        seen = history if exclude_seen else None
        result = self.query(vectors, k, exclude=self._exclusions(seen, exclude, history.shape[0]))
        return self._popular_for_empty(history, result, k, exclude_seen, exclude)

    def _popular_for_empty(
        self,
        history: sp.csr_matrix,
        result: tuple[np.ndarray, np.ndarray],
        k: int,
        exclude_seen: bool,
        exclude: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows with an empty history get the popular items, as from the model itself."""
        empty = np.flatnonzero(np.diff(history.indptr) == 0)
        if len(empty):
            items, scores = result
            n_items = self._factors.shape[0]
            popular = self.model._rank(
                k,
                lambda lo, hi: np.zeros((hi - lo, n_items), np.float32),
                history[empty],
                exclude_seen,
                exclude,
                None,
            )
            items[empty], scores[empty] = popular
        return result

    def _exclusions(self, seen: sp.csr_matrix | None, exclude: Any, rows: int) -> sp.csr_matrix:
        import scipy.sparse as sp

        n_items = self._factors.shape[0]
        total = sp.csr_matrix((rows, n_items), dtype=np.float32) if seen is None else seen
        if exclude is not None:
            banned = np.unique(_codes(exclude, n_items, "exclude item"))
            if len(banned):
                extra = sp.csr_matrix(
                    (
                        np.ones(rows * len(banned), np.float32),
                        np.tile(banned, rows),
                        np.arange(rows + 1) * len(banned),
                    ),
                    shape=(rows, n_items),
                )
                total = (total + extra).tocsr()
        return sp.csr_matrix(total)

    # ------------------------------------------------------------------ persistence

    def _save(self, path: Path) -> dict[str, Any]:
        """Write the graph to ``path`` (hnswlib's binary format); its JSON description."""
        self._check_fresh()
        self.graph.save_index(str(path))
        return {
            "library": "hnswlib",
            "space": "ip",
            "dim": int(self._factors.shape[1]),
            "n_items": self.n_items,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef": self.ef,
            "max_overfetch": self.max_overfetch,
        }

    @classmethod
    def _load(cls, path: Path, entry: dict[str, Any], model: Recommender) -> ItemIndex:
        """Read a graph saved by :meth:`_save` for ``model``, after checking the file's
        structure (hnswlib itself trusts it and would read out of bounds), and attach it
        as ``model.index_``."""
        hnswlib = require("hnswlib", extra="rec", feature="the ANN index")
        from forgeml.recommend.als import _FactorModel

        if not isinstance(model, _FactorModel):
            raise DataError(f"{path}: an ANN index is only saved with ALS or BPR models")
        fields = ("dim", "n_items", "M", "ef_construction", "ef", "max_overfetch")
        if entry.get("library") != "hnswlib" or entry.get("space") != "ip":
            raise DataError(f"{path}: not an hnswlib inner-product index")
        if not all(isinstance(entry.get(name), int) and entry[name] > 0 for name in fields):
            raise DataError(f"{path}: index description needs positive integers {fields}")
        dim, n_items = entry["dim"], entry["n_items"]
        if dim != model.item_vectors().shape[1] or n_items != model.n_items:
            raise DataError(
                f"{path}: index of {n_items} items x {dim} factors does not match the "
                f"model ({model.n_items} x {model.item_vectors().shape[1]})"
            )
        _check_hnsw_file(path, n_items=n_items, dim=dim)
        graph = hnswlib.Index(space="ip", dim=dim)
        graph.load_index(str(path), max_elements=n_items)
        labels = np.sort(np.asarray(graph.get_ids_list(), dtype=np.int64))
        if not np.array_equal(labels, np.arange(n_items)):
            raise DataError(f"{path}: index labels are not the item codes 0..{n_items - 1}")
        graph.set_ef(entry["ef"])
        index = cls(
            model,
            graph,
            M=entry["M"],
            ef_construction=entry["ef_construction"],
            ef=entry["ef"],
            max_overfetch=entry["max_overfetch"],
        )
        model.index_ = index
        return index


def build_index(
    model: _FactorModel,
    *,
    M: int = 16,
    ef_construction: int = 200,
    ef: int = 400,
    max_overfetch: int = 2_000,
    seed: int = 0,
    threads: int = 0,
) -> ItemIndex:
    """Build the HNSW index over ``model``'s items (ALS or BPR, fitted), attach it as
    ``model.index_`` (so :func:`forgeml.recommend.persist.save` saves it) and return it.
    ``M`` (graph degree) and ``ef_construction`` trade build time and memory for recall;
    ``threads=0`` uses every core (the graph then depends on thread timing; ``threads=1``
    is reproducible)."""
    hnswlib = require("hnswlib", extra="rec", feature="the ANN index")
    from forgeml.recommend.als import _FactorModel

    if not isinstance(model, _FactorModel):
        raise UsageError(
            f"build_index needs a factor model (ALS or BPR), not {type(model).__name__}"
        )
    model._fitted()
    if min(M, ef_construction, ef) < 1 or max_overfetch < 0 or threads < 0:
        raise UsageError("build_index: M, ef_construction and ef must be >= 1")
    factors = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)
    graph = hnswlib.Index(space="ip", dim=factors.shape[1])
    graph.init_index(
        max_elements=max(len(factors), 1), ef_construction=ef_construction, M=M, random_seed=seed
    )
    graph.set_num_threads(threads if threads > 0 else -1)
    graph.add_items(factors, np.arange(len(factors)))
    graph.set_ef(ef)
    index = ItemIndex(
        model,
        graph,
        M=M,
        ef_construction=ef_construction,
        ef=ef,
        max_overfetch=max_overfetch,
    )
    model.index_ = index
    return index


def recall_at_k_vs_exact(
    model: _FactorModel, user_codes: Any, k: int = 10, *, index: ItemIndex | None = None
) -> float:
    """Mean over ``user_codes`` of the share of the exact top-``k`` (seen items excluded)
    that the index returns (``index``: ``model.index_`` by default)."""
    index = index if index is not None else getattr(model, "index_", None)
    if index is None:
        raise UsageError("recall_at_k_vs_exact: the model has no index: call build_index")
    exact, _ = model.recommend(user_codes, k)
    approximate, _ = index.recommend(user_codes, k)
    shares = []
    for want, got in zip(exact, approximate, strict=True):
        valid = want[want >= 0]
        if len(valid):
            shares.append(len(np.intersect1d(valid, got[got >= 0])) / len(valid))
    return float(np.mean(shares)) if shares else 1.0


def _rows_matrix(rows: list[Any], n_items: int) -> sp.csr_matrix:
    import scipy.sparse as sp

    codes = [np.unique(_codes(row, n_items, "exclude item")) for row in rows]
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    indices = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    return sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, np.concatenate([[0], np.cumsum(lengths)])),
        shape=(len(rows), n_items),
    )


# hnswlib's header (hnswalg.h, saveIndex): six size_t, an int, a uint32, three size_t, a
# double, a size_t; then level 0 (cur_element_count x size_data_per_element bytes); then,
# per element, a uint32 byte count and that many bytes of upper-level link lists.
_HEADER = struct.Struct("<6Q i I 3Q d Q")


def _check_hnsw_file(path: Path, *, n_items: int, dim: int) -> None:
    """Refuse an hnswlib file whose sizes, counts or neighbour ids are out of range."""
    data = path.read_bytes()
    bad = DataError(f"{path}: not a valid hnswlib index for {n_items} items x {dim} dims")
    if len(data) < _HEADER.size:
        raise bad
    (
        offset_level0,
        max_elements,
        count,
        size_per_element,
        label_offset,
        offset_data,
        max_level,
        entry_point,
        max_m,
        max_m0,
        m,
        _mult,
        _ef_construction,
    ) = _HEADER.unpack_from(data)
    links0 = max_m0 * 4 + 4
    if (
        offset_level0 != 0
        or count != n_items
        or max_elements < count
        or max_m0 < 1
        or max_m < 1
        or m < 1
        or offset_data != links0
        or label_offset != links0 + dim * 4
        or size_per_element != links0 + dim * 4 + 8
        or max_level < 0
        or max_level > 64
        or (count and entry_point >= count)
    ):
        raise bad
    start = _HEADER.size
    level0_end = start + count * size_per_element
    if len(data) < level0_end:
        raise bad
    level0 = np.frombuffer(data, dtype=np.uint8, count=count * size_per_element, offset=start)
    level0 = level0.reshape(count, size_per_element)
    link_words = level0[:, :links0].copy().view(np.uint32)
    degrees = link_words[:, 0]  # the count in 2 bytes; the 3rd holds hnswlib's deleted mark
    neighbours = link_words[:, 1:]
    used = np.arange(max_m0)[None, :] < degrees[:, None]
    labels = level0[:, label_offset:].copy().view(np.uint64).ravel()
    if (
        np.any(degrees > max_m0)
        or np.any(neighbours[used] >= count)
        or np.any(labels >= n_items)
        or not np.all(np.isfinite(level0[:, offset_data:label_offset].copy().view(np.float32)))
    ):
        raise bad
    # Upper levels: per element a byte count, then `level` blocks of (count, max_m ids).
    levels = np.zeros(count, dtype=np.int64)
    links: list[tuple[int, np.ndarray]] = []  # (level, neighbour ids) to check below
    position = level0_end
    upper_block = max_m * 4 + 4
    for element in range(count):
        if position + 4 > len(data):
            raise bad
        (size,) = struct.unpack_from("<I", data, position)
        position += 4
        if size:
            if size % upper_block or position + size > len(data) or size // upper_block > max_level:
                raise bad
            words = np.frombuffer(data, dtype=np.uint32, count=size // 4, offset=position)
            words = words.reshape(-1, max_m + 1)
            levels[element] = len(words)
            upper_degrees = words[:, 0]
            if np.any(upper_degrees > max_m):
                raise bad
            for level, block in enumerate(words, start=1):
                links.append((level, block[1 : 1 + block[0]]))
            position += size
    if position != len(data) or (count and levels[entry_point] != max_level):
        raise bad
    # A search at level L reads the level-L links of each neighbour met there: every
    # neighbour listed at level L must itself reach level L.
    for level, ids in links:
        if np.any(ids >= count) or np.any(levels[ids] < level):
            raise bad
