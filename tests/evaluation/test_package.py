"""The public surface of forgeml.evaluation and the package data it needs."""

from __future__ import annotations

import inspect
from importlib import resources

import forgeml.evaluation as evaluation


def test_public_names_are_exactly_all():
    public = {
        name
        for name, value in vars(evaluation).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(evaluation.__all__)
    for name in evaluation.__all__:
        assert getattr(evaluation, name).__doc__, name


def test_evaluate_name_is_the_function():
    # The module evaluate.py and the function evaluate share a name; the package
    # attribute must be the function.
    assert callable(evaluation.evaluate) and not inspect.ismodule(evaluation.evaluate)


def test_templates_ship_as_package_data():
    templates = resources.files("forgeml.evaluation").joinpath("templates")
    assert templates.joinpath("report.html.j2").is_file()
    assert templates.joinpath("report.css").is_file()
