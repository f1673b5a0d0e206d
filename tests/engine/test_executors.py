"""Executors: the local pool and the inline executor run the same work the same way."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from forgeml.engine import InlineExecutor, LocalExecutor, SharedHandle, get_executor
from forgeml.errors import ConfigError


def _total(handle: SharedHandle, key: str) -> float:
    return float(handle.load()[key].sum())


def _raise(message: str) -> None:
    raise ValueError(message)


@pytest.mark.parametrize("make", [lambda: InlineExecutor(), lambda: LocalExecutor(n_workers=2)])
def test_shared_arrays_reach_workers(make) -> None:
    dense = np.arange(12, dtype=np.float32).reshape(3, 4)
    sparse = sp.random(50, 20, density=0.1, format="csr", random_state=0, dtype=np.float32)
    with make() as executor:
        handle = executor.share({"dense": dense, "sparse": sparse})
        futures = [executor.submit(_total, handle, k) for k in ("dense", "sparse", "dense")]
        got = [f.result() for f in futures]
        failing = executor.submit(_raise, "bad config")
        with pytest.raises(ValueError, match="bad config"):
            failing.result()
    assert got == pytest.approx([dense.sum(), sparse.sum(), dense.sum()], rel=1e-6)


def test_local_executor_cleans_up_shared_files() -> None:
    import os

    executor = LocalExecutor(n_workers=2)
    handle = executor.share({"x": np.ones(3)})
    assert os.path.isdir(handle.ref)
    executor.close()
    assert not os.path.exists(handle.ref)


def test_get_executor_kinds() -> None:
    assert isinstance(get_executor("local", workers=1), InlineExecutor)
    with get_executor("local", workers=2) as ex:
        assert isinstance(ex, LocalExecutor) and ex.n_workers == 2
    with pytest.raises(ConfigError, match=r"engine\.kind"):
        get_executor("spark")
    ray = get_executor("ray", workers=1)  # starts no Ray until work is submitted
    assert ray.kind == "ray"
    ray.close()
