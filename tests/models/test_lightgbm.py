"""The LightGBM candidate: the text-format validator that stands between a file and LightGBM."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from forgeml.errors import ArtifactIntegrityError
from forgeml.models import load_estimator
from forgeml.models._artifacts import sha256_bytes
from forgeml.models.lightgbm_text import sanitize


@pytest.fixture(scope="module")
def model_text(splits, fit_model) -> str:
    est = fit_model("lightgbm", splits["multiclass"], params={"n_estimators": 4})
    return est.booster.model_to_string()


def _check(text: str, **overrides) -> str:
    kwargs = {"n_features": 13, "n_trees": 12, "objective": "multiclass", **overrides}
    return sanitize(text, **kwargs)


def test_real_models_pass_and_lose_only_what_lightgbm_may_misread(model_text) -> None:
    clean = _check(model_text)
    assert "tree_sizes" not in clean and "parameters:" not in clean
    assert clean.count("\nTree=") == 12


def _sub(pattern: str, replacement: str, text: str) -> str:
    out, n = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert n == 1, pattern
    return out


@pytest.mark.parametrize(
    ("pattern", "replacement", "message"),
    [
        (r"^end of trees$", "end of tree", "end of trees"),
        (r"^pandas_categorical:.*$", "", "incomplete"),
        (r"^(left_child=-?\d+)", r"\g<1>0", "child index out of range"),
        (r"^left_child=-?\d+", "left_child=-999", "child index out of range"),
        (r"^right_child=-?\d+", "right_child=0", "child index out of range"),
        (r"^split_feature=\d+", "split_feature=13", "feature index out of range"),
        (r"^decision_type=\d+", "decision_type=1", "decision_type"),
        (r"^num_cat=0", "num_cat=1", "categorical"),
        (r"^is_linear=0", "is_linear=1", "linear trees"),
        (r"^leaf_value=\S+", "leaf_value=nan", "malformed number list"),
        (r"^leaf_value=\S+", "leaf_value=1_0", "malformed number list"),
        (r"^threshold=\S+ ", "threshold=1e999 ", "non-finite"),
        (r"^num_leaves=\d+", "num_leaves=99", "values, expected"),
        (r"^Tree=1$", "Tree=7", "expected 'Tree=1'"),
        (r"^objective=.*$", "objective=regression", "objective"),
        (r"^max_feature_idx=12$", "max_feature_idx=40", "features"),
        (r"^version=v4$", "version=v9", "version"),
        (r"^label_index=0$", "label_index=0\nlinear_tree=1", "unexpected line"),
        (r"^num_class=3$", "num_class=3\nnum_class=3", "twice"),
        (r"^feature_infos=\S+", "feature_infos=1:2:3", "feature_infos"),
        (r"^shrinkage=.*$", "", "lacks shrinkage"),
    ],
)
def test_malformed_text_is_refused(model_text, pattern, replacement, message) -> None:
    with pytest.raises(ArtifactIntegrityError, match=message):
        _check(_sub(pattern, replacement, model_text))


def test_tree_count_must_match_the_metadata(model_text) -> None:
    with pytest.raises(ArtifactIntegrityError, match="12 trees, expected 9"):
        _check(model_text, n_trees=9)


def test_internal_child_index_colliding_with_a_leaf_is_refused(model_text) -> None:
    # The last internal node index is num_leaves - 2; num_leaves - 1 is out of range even
    # though it is also the renumbered id of leaf 0.
    block = model_text[model_text.index("Tree=0") :]
    n = int(re.search(r"num_leaves=(\d+)", block).group(1))
    bad = _sub(r"^(left_child=)-?\d+", rf"\g<1>{n - 1}", model_text)
    with pytest.raises(ArtifactIntegrityError, match="child index out of range"):
        _check(bad)


def test_a_lying_tree_sizes_line_is_harmless(splits, fitted, save_meta, tmp_path) -> None:
    est = fitted("lightgbm", "binary")
    meta = save_meta(est, tmp_path)
    (name,) = meta["files"]
    text = (tmp_path / name).read_text()
    data = _sub(r"^tree_sizes=.*$", "tree_sizes=1 2 3 999999", text).encode()
    (tmp_path / name).write_bytes(data)
    loaded = load_estimator(tmp_path, {**meta, "sha256": {name: sha256_bytes(data)}})
    split = splits["binary"]
    np.testing.assert_array_equal(loaded.predict(split.X_test), est.predict(split.X_test))


FUZZ = textwrap.dedent(
    """
    import random, re, sys
    import numpy as np, lightgbm as lgb
    from forgeml.errors import ArtifactIntegrityError
    from forgeml.models.lightgbm_text import sanitize

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    params = dict(objective="multiclass", num_class=3, verbosity=-1, seed=0, num_threads=1,
                  min_data_in_leaf=5)
    text = lgb.train(params, lgb.Dataset(X, y), 4).model_to_string()
    # Known crashers of LightGBM's own parser, then random mutations.
    cases = [
        text.replace("[force_row_wise: 0]", "[force_row_wise 0]"),
        text.replace("[feature_contri: ]", "[f\\nature_contri: ]"),
        re.sub(r"^tree_sizes=.*$", "tree_sizes=1 2 3", text, count=1, flags=re.M),
        text[: len(text) // 3],
    ]
    rand = random.Random(int(sys.argv[1]))
    for _ in range(int(sys.argv[2])):
        chars = list(text)
        for _ in range(rand.randint(1, 4)):
            at = rand.randrange(len(chars))
            kind = rand.randrange(4)
            if kind == 0:
                chars[at] = rand.choice("0123456789-.e= \\n~")
            elif kind == 1:
                del chars[at : at + rand.randint(1, 200)]
            elif kind == 2:
                chars.insert(at, rand.choice("0123456789 \\n-"))
            else:
                at = text.find("_child=", at)
                if at > 0:
                    chars[at + 7] = rand.choice("0123456789-")
        cases.append("".join(chars))
    loaded = refused = 0
    for case in cases:
        try:
            clean = sanitize(case, n_features=6, n_trees=12, objective="multiclass")
        except ArtifactIntegrityError:
            refused += 1
            continue
        out = lgb.Booster(model_str=clean).predict(X)
        assert out.shape == (300, 3)
        loaded += 1
    print(loaded, refused)
    """
)


def test_mutated_model_texts_never_reach_lightgbm_unchecked() -> None:
    """Random damage to a model text is refused or loads and predicts; never a crash.

    Runs in a child process: a crash there is a failed test, not a dead test session.
    """
    done = subprocess.run(
        [sys.executable, "-c", FUZZ, "1", "150"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    loaded, refused = map(int, done.stdout.split())
    assert refused > 0 and loaded > 0
