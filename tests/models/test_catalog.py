"""Looking adapters up by name, missing extras, parameters and input checks."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from forgeml.config.spec import SearchParam
from forgeml.errors import (
    ArtifactIntegrityError,
    ConfigError,
    DataError,
    MissingExtraError,
    UsageError,
)
from forgeml.models import available_names, builtin_names, get_adapter, load_estimator
from forgeml.models.catalog import ADAPTERS

SUBTYPES = ("binary", "multiclass", "regression")


def test_builtin_names_in_catalog_order() -> None:
    assert builtin_names() == ["lightgbm", "linear", "xgboost", "random_forest", "mlp"]


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError) as info:
        get_adapter("lgbm")
    assert str(info.value) == (
        "models.candidates: unknown model 'lgbm' (known: lightgbm, linear, xgboost, "
        "random_forest, mlp; did you mean 'lightgbm'?)"
    )


def test_unknown_model_without_a_close_name_uses_the_given_field() -> None:
    with pytest.raises(ConfigError) as info:
        get_adapter("svm", field="models.candidates[2]")
    message = str(info.value)
    assert message.startswith("models.candidates[2]: unknown model 'svm'")
    assert "did you mean" not in message
    assert info.value.exit_code == 2


@pytest.fixture
def no_xgboost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import xgboost`` fail as if the extra were not installed."""
    monkeypatch.setitem(sys.modules, "xgboost", None)


@pytest.mark.usefixtures("no_xgboost")
def test_missing_extra_names_the_extra() -> None:
    with pytest.raises(MissingExtraError) as info:
        get_adapter("xgboost")
    assert info.value.extra == "xgboost"
    assert "pip install 'forgeml[xgboost]'" in str(info.value)
    assert "the xgboost candidate" in str(info.value)
    assert not ADAPTERS["xgboost"].available()
    for subtype in SUBTYPES:
        assert "xgboost" not in available_names(subtype)
        assert available_names(subtype) == ["lightgbm", "linear", "random_forest"]


@pytest.mark.skipif(not ADAPTERS["xgboost"].available(), reason="xgboost is not installed")
def test_loading_an_xgboost_model_without_xgboost(
    splits, fit_model, save_meta, tmp_path, monkeypatch
) -> None:
    meta = save_meta(fit_model("xgboost", splits["binary"]), tmp_path)
    monkeypatch.setitem(sys.modules, "xgboost", None)
    with pytest.raises(MissingExtraError, match=r"forgeml\[xgboost\]"):
        load_estimator(tmp_path, meta)


def test_unknown_subtype_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="ranking"):
        available_names("ranking")


@pytest.mark.parametrize("meta", [{"adapter": "pickle"}, {"adapter": None}, {}, []])
def test_load_refuses_unknown_adapters(meta, tmp_path) -> None:
    with pytest.raises(ArtifactIntegrityError):
        load_estimator(tmp_path, meta)


def test_search_spaces_hold_their_defaults(adapter_name) -> None:
    """Tuning's first trial is the defaults: each searched default must lie in its range."""
    adapter = get_adapter(adapter_name)
    for subtype in SUBTYPES:
        defaults = adapter.default_params(subtype)
        assert set(defaults) <= adapter.known_params(subtype)
        for n_rows in (50, 455, 10_000, 2_000_000):
            space = adapter.search_space(subtype, n_rows)
            assert space and set(space) <= adapter.known_params(subtype)
            for key, param in space.items():
                assert isinstance(param, SearchParam)
                if key not in defaults or (defaults[key] is None and param.choices is None):
                    continue
                if param.choices is not None:
                    assert defaults[key] in param.choices, (adapter_name, key)
                else:
                    assert param.low <= defaults[key] <= param.high, (adapter_name, key, n_rows)


def test_unknown_parameter_is_a_config_error(adapter_name) -> None:
    adapter = get_adapter(adapter_name)
    with pytest.raises(
        ConfigError, match=r"^models.candidates\[0\].params: model .* has no parameter 'colour'"
    ):
        adapter.resolve_params({"colour": 3}, "binary", field="models.candidates[0].params")


@pytest.mark.parametrize("reserved", ["seed", "random_state", "n_jobs", "num_threads", "objective"])
def test_forgeml_owned_parameters_are_refused(adapter_name, reserved) -> None:
    with pytest.raises(ConfigError, match="has no parameter"):
        get_adapter(adapter_name).resolve_params({reserved: 1}, "binary")


def test_parameter_values_must_be_scalars() -> None:
    with pytest.raises(ConfigError, match=r"params.C: expected a number"):
        get_adapter("linear").resolve_params({"C": [1.0, 2.0]}, "binary")
    resolved = get_adapter("linear").resolve_params({"C": np.float64(0.5)}, "binary")
    assert type(resolved["C"]) is float


def test_training_failures_are_training_errors(splits, fit_model) -> None:
    from forgeml.errors import TrainingError

    with pytest.raises(TrainingError, match="lightgbm"):
        fit_model("lightgbm", splits["binary"], params={"num_leaves": 1})


class TestInputs:
    def test_class_index_out_of_range(self, splits, fit_model) -> None:
        split = splits["multiclass"]
        with pytest.raises(DataError, match=r"outside 0\.\.2"):
            fit_model("linear", split, y=split.y_train + 1)

    def test_float_labels_for_classification(self, splits, fit_model) -> None:
        split = splits["binary"]
        with pytest.raises(DataError, match="integer class indices"):
            fit_model("linear", split, y=split.y_train.astype(float))

    def test_missing_regression_target(self, splits, fit_model) -> None:
        split = splits["regression"]
        y = split.y_train.copy()
        y[3] = np.nan
        with pytest.raises(DataError, match="missing or infinite"):
            fit_model("linear", split, y=y)

    def test_wrong_row_count(self, splits, fit_model) -> None:
        split = splits["binary"]
        with pytest.raises(DataError, match="shape"):
            fit_model("linear", split, y=split.y_train[:-1])

    @pytest.mark.parametrize("weights", [-1.0, np.nan, 0.0])
    def test_bad_sample_weights(self, splits, fit_model, weights) -> None:
        split = splits["binary"]
        bad = np.full(split.y_train.shape, weights)
        with pytest.raises(DataError, match="sample_weight"):
            fit_model("linear", split, sample_weight=bad)

    @pytest.mark.parametrize("name", ["linear", "random_forest"])
    def test_single_class(self, splits, fit_model, name) -> None:
        split = splits["binary"]
        with pytest.raises(DataError, match="single class"):
            fit_model(name, split, y=np.zeros_like(split.y_train))

    def test_wrong_feature_count_at_predict(self, adapter_name, fitted, splits) -> None:
        split = splits["binary"]
        with pytest.raises(DataError, match="expects 30 features, got 29"):
            fitted(adapter_name, "binary").predict(split.X_test[:, :-1])

    def test_eval_set_feature_count(self, splits, fit_model) -> None:
        split = splits["binary"]
        with pytest.raises(DataError, match="eval_set"):
            fit_model("lightgbm", split, eval_set=(split.X_test[:, :3], split.y_test))

    @pytest.mark.parametrize(
        ("subtype", "n_classes"), [("binary", 3), ("multiclass", 2), ("ranking", 2)]
    )
    def test_subtype_and_class_count_disagree(self, splits, subtype, n_classes) -> None:
        split = splits["binary"]
        with pytest.raises(UsageError):
            get_adapter("linear").fit(
                split.X_train, split.y_train, subtype=subtype, n_classes=n_classes,
                params={}, seed=0,
            )  # fmt: skip

    def test_negative_seed(self, splits, fit_model) -> None:
        with pytest.raises(UsageError, match="seed"):
            fit_model("linear", splits["binary"], seed=-1)

    def test_float64_and_list_inputs_are_converted(self, splits, fit_model, fitted) -> None:
        split = splits["binary"]
        est = fitted("linear", "binary")
        np.testing.assert_array_equal(
            est.predict(split.X_test.astype(np.float64).tolist()), est.predict(split.X_test)
        )
