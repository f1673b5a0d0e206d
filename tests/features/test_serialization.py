"""The saved form: plain JSON types only, and clear errors for anything malformed."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from forgeml.config.spec import FeaturesSpec, TextSpec
from forgeml.errors import ArtifactIntegrityError
from forgeml.features import FeaturePipeline, FittedFeatures
from forgeml.tasks.info import TaskInfo

FRAME = pl.DataFrame(
    {
        "x": [1.0, None, 3.0, 4.0],
        "b": [True, False, None, True],
        "c": ["a", "b", "a", None],
        "h": [f"id{i}" for i in range(4)],
        "t": [dt.datetime(2024, 1, d) for d in (1, 2, 3, 4)],
        "doc": ["red fox", "lazy dog", "red dog", None],
    }
)
TYPES: dict[str, Any] = {
    "x": "float",
    "b": "bool",
    "c": "string",
    "h": "string",
    "t": "datetime",
    "doc": "text",
}


@pytest.fixture(scope="module")
def saved() -> dict[str, Any]:
    spec = FeaturesSpec(text=TextSpec(min_df=1))
    spec.categorical.onehot_max_cardinality = 3
    task = TaskInfo("classification", classes=(0, 1, 2))
    fitted = FeaturePipeline(spec, TYPES, task).fit(FRAME, np.array([0, 1, 2, 1]))
    return fitted.to_dict()


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_to_dict_is_plain_json_with_a_version(saved: dict[str, Any]) -> None:
    assert _plain(saved)
    assert saved["format"] == "forgeml.features" and saved["version"] == 1
    assert [b["kind"] for b in saved["blocks"]] == [
        "numeric",
        "numeric",
        "categorical",
        "categorical",
        "datetime",
        "text",
    ]
    again = FittedFeatures.from_dict(json.loads(json.dumps(saved, allow_nan=False)))
    assert again.to_dict() == saved


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(["format"], "sklearn"), r"\$\.format: expected 'forgeml.features'"),
        (_set(["version"], 2), r"\$\.version: this forgeml reads version 1 only"),
        (_set(["hash_version"], 0), r"\$\.hash_version"),
        (_set(["blocks"], {}), r"\$\.blocks: expected a list"),
        (_set(["blocks", 0, "scale"], KeyError), r"\$\.blocks\[0\]\.scale: missing"),
        (_set(["blocks", 0, "scale"], 0.0), r"blocks\[0\]\.scale: must be > 0"),
        (_set(["blocks", 0, "fill"], "1.0"), r"blocks\[0\]\.fill: expected a finite number"),
        (_set(["blocks", 0, "clip"], [3.0, 1.0]), r"blocks\[0\]\.clip"),
        (_set(["blocks", 1, "indicator"], 1), r"blocks\[1\]\.indicator: expected true/false"),
        (_set(["blocks", 2, "encoders"], ["onehot", "magic"]), r"blocks\[2\]\.encoders"),
        (
            _set(["blocks", 2, "categories"], ["a", "a"]),
            r"blocks\[2\]\.categories: contains duplicates",
        ),
        (_set(["blocks", 2, "counts"], [1]), r"blocks\[2\]\.counts"),
        (_set(["blocks", 3, "buckets"], 1), r"blocks\[3\]\.buckets"),
        (_set(["blocks", 3, "target", "table"], [[0.5]]), r"blocks\[3\]\.target\.table"),
        (
            _set(["blocks", 3, "target", "prior"], [float("nan")] * 3),
            r"target\.prior: contains a non-finite",
        ),
        (_set(["blocks", 4, "parts"], ["fortnight"]), r"blocks\[4\]\.parts: unknown datetime part"),
        (_set(["blocks", 5, "idf"], [1.0]), r"blocks\[5\]\.idf"),
        (_set(["blocks", 5, "kind"], "pickle"), r"blocks\[5\]\.kind: unknown block kind"),
        (_set(["blocks", 0, "column"], "c"), r"blocks\[0\]\.column: 'c' is not a numeric input"),
        (_set(["input_columns", "x"], "complex"), r"input_columns\.x: unknown column type"),
        (_set(["feature_names"], ["x"]), r"feature_names: do not match"),
        (_set(["blocks", 2], "oops"), r"blocks\[2\]: expected an object"),
    ],
)
def test_malformed_input_raises_integrity_error(
    saved: dict[str, Any], change: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = copy.deepcopy(saved)
    change(data)
    with pytest.raises(ArtifactIntegrityError, match=message):
        FittedFeatures.from_dict(data)


def test_not_a_dict() -> None:
    with pytest.raises(ArtifactIntegrityError, match="expected an object, got list"):
        FittedFeatures.from_dict([])  # type: ignore[arg-type]
