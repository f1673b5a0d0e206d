"""Structural checks of decision trees read from files, before a library walks them.

Tree libraries trust the child indices and feature indices they load: an out-of-range
index read from a tampered file becomes an out-of-bounds memory access at prediction
time. Every tree loaded from disk passes :func:`check_tree` first.

>>> import numpy as np
>>> check_tree(np.array([1, -1, -1]), np.array([2, -1, -1]), np.array([0, -1, -1]), 1, what="t")
>>> check_tree(np.array([1, -1, -1]), np.array([1, -1, -1]), np.array([0, -1, -1]), 1, what="t")
Traceback (most recent call last):
...
forgeml.errors.ArtifactIntegrityError: t: node 1 has 2 parents (not a tree)
"""

from __future__ import annotations

import numpy as np

from forgeml.errors import ArtifactIntegrityError

__all__ = ["check_tree"]


def check_tree(
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    n_features: int,
    *,
    what: str,
) -> None:
    """Refuse anything but one binary tree rooted at node 0.

    ``left``/``right`` hold child node indices, ``-1`` (both) marking a leaf; ``feature``
    holds the split feature of each node (ignored at leaves), which must be below
    ``n_features``. Every node but the root must have exactly one parent and be
    reachable from the root.
    """
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    feature = np.asarray(feature, dtype=np.int64)
    n = left.shape[0]
    if n == 0 or left.ndim != 1 or right.shape != (n,) or feature.shape != (n,):
        raise ArtifactIntegrityError(f"{what}: malformed node arrays")
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise ArtifactIntegrityError(f"{what}: a node has exactly one child")
    children = np.concatenate([left[~leaf], right[~leaf]])
    if children.size and (children.min() < 1 or children.max() >= n):
        raise ArtifactIntegrityError(f"{what}: child index out of range")
    parents = np.bincount(children, minlength=n)
    extra = np.flatnonzero(parents[1:] != 1)
    if extra.size:
        node = int(extra[0]) + 1
        raise ArtifactIntegrityError(
            f"{what}: node {node} has {parents[node]} parents (not a tree)"
        )
    split = feature[~leaf]
    if split.size and (split.min() < 0 or split.max() >= n_features):
        raise ArtifactIntegrityError(f"{what}: split feature index out of range")
    # One parent each still allows cycles detached from the root: walk from the root.
    seen = np.zeros(n, dtype=bool)
    frontier = np.array([0], dtype=np.int64)
    while frontier.size:
        seen[frontier] = True
        inner = frontier[~leaf[frontier]]
        frontier = np.concatenate([left[inner], right[inner]])
    if not seen.all():
        raise ArtifactIntegrityError(f"{what}: nodes unreachable from the root")
