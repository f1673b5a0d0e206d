"""Names, aliases and model references (``name@alias``, ``name@3``, ``name``).

Model names follow the spec's ``NAME_PATTERN``; aliases start with a lowercase letter, so an
all-digit alias cannot exist and ``churn@3`` always means version 3. Invalid input raises
:class:`~forgeml.errors.UsageError` naming what was wrong.

>>> parse_ref("churn@champion")
ModelRef(name='churn', alias='champion', version=None)
>>> parse_ref("churn@3").version
3
>>> parse_ref("churn@Champion")
Traceback (most recent call last):
...
forgeml.errors.UsageError: invalid model reference 'churn@Champion': alias 'Champion' must match ^[a-z][a-z0-9_-]{0,31}$
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from forgeml.config.spec import NAME_PATTERN
from forgeml.errors import UsageError

__all__ = [
    "ALIAS_PATTERN",
    "RUN_ID_PATTERN",
    "ModelRef",
    "check_alias",
    "check_model_name",
    "check_run_id",
    "did_you_mean",
    "parse_ref",
]

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
_RUN_ID = re.compile(RUN_ID_PATTERN)
_VERSION = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: at most one of ``alias`` and ``version`` is set; neither means
    "the champion, else the latest version"."""

    name: str
    alias: str | None = None
    version: int | None = None


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`UsageError`.

    >>> check_model_name("churn-v2")
    'churn-v2'
    >>> check_model_name("../etc")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: invalid model name '../etc': it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"invalid model name {name!r}: it must match {NAME_PATTERN}")
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias, else raise :class:`UsageError`.

    >>> check_alias("champion")
    'champion'
    >>> check_alias("3")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: invalid alias '3': it must match ^[a-z][a-z0-9_-]{0,31}$ (an alias starts with a lowercase letter)
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise UsageError(
            f"invalid alias {alias!r}: it must match {ALIAS_PATTERN}",
            hint="an alias starts with a lowercase letter",
        )
    return alias


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a valid run id, else raise :class:`UsageError`.

    >>> check_run_id("0f3a9c")
    '0f3a9c'
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise UsageError(f"invalid run id {run_id!r}: it must match {RUN_ID_PATTERN}")
    return run_id


def parse_ref(ref: str) -> ModelRef:
    """Parse ``name``, ``name@alias`` or ``name@<version>``.

    >>> parse_ref("churn")
    ModelRef(name='churn', alias=None, version=None)
    """
    if not isinstance(ref, str) or not ref:
        raise UsageError(f"invalid model reference {ref!r}: expected name, name@alias or name@3")
    name, sep, tail = ref.partition("@")
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid model reference {ref!r}: model name {name!r} must match {NAME_PATTERN}"
        )
    if not sep:
        return ModelRef(name)
    if _VERSION.fullmatch(tail):
        return ModelRef(name, version=int(tail))
    if not _ALIAS.fullmatch(tail):
        raise UsageError(
            f"invalid model reference {ref!r}: alias {tail!r} must match {ALIAS_PATTERN}"
        )
    return ModelRef(name, alias=tail)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word``, if any is close enough.

    >>> did_you_mean("chrun", ["churn", "fraud"])
    'churn'
    >>> did_you_mean("zzz", ["churn"]) is None
    True
    """
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None
