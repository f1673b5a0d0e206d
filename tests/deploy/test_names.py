"""Names that leave forgeml are valid where they go, for every model name forgeml accepts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeml.config.spec import NAME_PATTERN
from forgeml.deploy.names import app_name, label_value, parse_image
from forgeml.deploy.settings import ScalingOptions
from forgeml.errors import UsageError

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
model_names = st.from_regex(NAME_PATTERN, fullmatch=True)


@given(model_names)
def test_object_names_and_labels_are_valid(name: str) -> None:
    app = app_name(name)
    assert DNS_1035.match(app), app
    assert LABEL_VALUE.match(label_value(name)) and label_value(name)
    assert len(f"{app}-admin") <= 253  # the Secret name (a DNS-1123 subdomain)
    parse_image(ScalingOptions().for_model(name, 1).image)  # the default image is valid


@given(model_names, model_names)
def test_distinct_models_get_distinct_objects(a: str, b: str) -> None:
    if a != b:
        assert app_name(a) != app_name(b)


@pytest.mark.parametrize(
    "image",
    [
        "churn:1",
        "forgeml-churn:3",
        "ghcr.io/acme/ml/churn:2024.11.26",
        "localhost:5000/churn:v1",
        "registry.example.com/churn@sha256:" + "0" * 64,
        "registry.example.com/churn:3@sha256:" + "0" * 64,
        "[::1]:5000/churn:1",
    ],
)
def test_valid_images(image: str) -> None:
    assert str(parse_image(image)) == image


@given(st.text(min_size=1, max_size=30))
def test_images_with_shell_or_space_characters_are_refused(text: str) -> None:
    image = f"churn:1{text}"
    if re.search(r"[\s;&|$`'\"<>()\\]", text):
        with pytest.raises(UsageError):
            parse_image(image)
