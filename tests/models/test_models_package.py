"""The package surface, cheap imports, balanced weights and the shared tree check."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.utils.class_weight import compute_sample_weight

import forgeml.models as models_pkg
from forgeml.errors import ArtifactIntegrityError, DataError
from forgeml.models import balanced_weights
from forgeml.models._artifacts import read_verified, write_atomic
from forgeml.models._trees import check_tree


def test_public_surface_is_all() -> None:
    assert sorted(models_pkg.__all__) == [
        "FORMAT_VERSION",
        "FittedEnsemble",
        "FittedEstimator",
        "ModelAdapter",
        "available_names",
        "balanced_weights",
        "builtin_names",
        "get_adapter",
        "load_estimator",
    ]
    for name in models_pkg.__all__:
        assert getattr(models_pkg, name) is not None


def test_importing_the_package_loads_no_model_library() -> None:
    code = (
        "import sys\n"
        "import forgeml.models\n"
        "from forgeml.models import get_adapter\n"
        "get_adapter('lightgbm').search_space('binary', 1000)\n"
        "heavy = ('sklearn', 'lightgbm', 'xgboost', 'skops', 'scipy', 'threadpoolctl')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@given(arrays(np.int64, st.integers(1, 200), elements=st.integers(0, 4)))
def test_balanced_weights_match_scikit_learn(y: np.ndarray) -> None:
    weights = balanced_weights(y)
    np.testing.assert_allclose(weights, compute_sample_weight("balanced", y))
    present = np.unique(y)
    totals = [weights[y == c].sum() for c in present]
    np.testing.assert_allclose(totals, len(y) / len(present))


@pytest.mark.parametrize("bad", [np.array([-1, 0]), np.array([[0, 1]]), np.array([0.5, 1.0])])
def test_balanced_weights_need_class_indices(bad) -> None:
    with pytest.raises(DataError):
        balanced_weights(bad)


def test_atomic_write_and_verified_read(tmp_path) -> None:
    digest = write_atomic(tmp_path, "model.json", b"{}")
    assert read_verified(tmp_path, "model.json", {"model.json": digest}) == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
    with pytest.raises(ArtifactIntegrityError, match="sha256 mismatch"):
        read_verified(tmp_path, "model.json", {"model.json": "0" * 64})
    for name in ("../escape.json", "/etc/passwd", "a/b", ".."):
        with pytest.raises(ArtifactIntegrityError, match="plain file name"):
            read_verified(tmp_path, name, {name: digest})
        with pytest.raises(ArtifactIntegrityError, match="plain file name"):
            write_atomic(tmp_path, name, b"")


@pytest.mark.parametrize(
    ("left", "right", "feature", "message"),
    [
        ([1, -1], [-1, -1], [0, -1], "exactly one child"),
        ([1, 3, -1, -1, -1], [2, 4, -1, -1, -1], [0, 0, -1, -1, -1], None),
        ([1, -1, 3, 2, -1], [4, -1, -1, -1, -1], [0, -1, 0, 0, -1], "parents|one child"),
        ([1, -1, -1, 4, 3], [2, -1, -1, 4, 3], [0, -1, -1, 0, 0], "parents"),
        ([1, -1, -1], [2, -1, -1], [5, -1, -1], "feature index"),
        ([], [], [], "malformed"),
    ],
)
def test_check_tree(left, right, feature, message) -> None:
    args = (np.array(left), np.array(right), np.array(feature), 2)
    if message is None:
        check_tree(*args, what="t")
    else:
        with pytest.raises(ArtifactIntegrityError, match=message):
            check_tree(*args, what="t")


def test_detached_cycles_are_refused() -> None:
    # Node 0 is a leaf-less root with children 1, 2 (leaves); nodes 3 and 4 point at each
    # other and at leaves 5, 6: each node has one parent, yet 3..6 hang off no root.
    left = np.array([1, -1, -1, 4, 3, -1, -1])
    right = np.array([2, -1, -1, 5, 6, -1, -1])
    feature = np.zeros(7, dtype=np.int64)
    with pytest.raises(ArtifactIntegrityError, match="unreachable"):
        check_tree(left, right, feature, 1, what="t")
