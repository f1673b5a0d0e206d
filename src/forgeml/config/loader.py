"""Load ``forgeml.yaml`` (or a dict) into a validated :class:`Spec`.

One loader for every caller: the CLI, the Python API and the tests. YAML is read with
``yaml.safe_load`` only. ``${VAR}`` in string values expands from the environment (so a
registry URL can carry a password without writing it to the file). Dotted overrides such as
``tuning.budget.trials=5`` are applied before validation, so they are validated too.

>>> spec = load_spec({"name": "churn", "task": "classification", "target": "churned"},
...                  overrides=["tuning.budget.trials=5", "seed=7"])
>>> (spec.tuning.budget.trials, spec.seed)
(5, 7)
>>> load_spec({"name": "churn", "task": "clasification", "target": "y"})
Traceback (most recent call last):
...
forgeml.errors.ConfigError: spec: task: expected 'classification' or 'regression', got 'clasification'
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from forgeml.config.spec import Spec
from forgeml.errors import ConfigError

__all__ = ["dump_spec", "format_validation_error", "load_spec", "parse_overrides"]

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_spec(
    source: str | Path | Mapping[str, Any] | Spec,
    overrides: Iterable[str] = (),
) -> Spec:
    """Read, override and validate a spec; raise :class:`ConfigError` naming the field path."""
    if isinstance(source, Spec):
        if not overrides:
            return source
        raw: dict[str, Any] = source.model_dump(mode="json", exclude_unset=True)
        origin, base_dir = "spec", source.base_dir
    elif isinstance(source, Mapping):
        raw, origin, base_dir = dict(source), "spec", Path.cwd()
    else:
        path = Path(source)
        raw, origin, base_dir = _read_yaml(path), str(path), path.resolve().parent
    raw = _expand_env(raw, origin)
    for key, value in parse_overrides(overrides):
        _set_dotted(raw, key, value)
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin, model=Spec)) from exc
    spec.base_dir = base_dir
    return spec


def dump_spec(spec: Spec) -> str:
    """The spec as YAML, without defaults the user did not set (``forgeml init`` writes it)."""
    data = spec.model_dump(mode="json", exclude_unset=True, exclude={"base_dir"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: spec file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read spec file: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from exc
    if data is None:
        raise ConfigError(f"{path}: spec file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _expand_env(value: Any, origin: str) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{origin}: environment variable ${{{name}}} is not set")
            return os.environ[name]

        return _ENV_VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, origin) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, origin) for v in value]
    return value


def parse_overrides(overrides: Iterable[str]) -> list[tuple[str, Any]]:
    """Parse ``key.path=value`` strings; values are read as YAML (scalars, lists), else as text."""
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}': expected key.path=value")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text  # not YAML: the literal text is the value (validated like any other)
        parsed.append((key, value))
    return parsed


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override '{key}': '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "list", "str"):
            continue  # pydantic's internal validator names in the location
        elif part.startswith(("function-", "literal[", "union[", "tagged-union")):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _known_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names valid at ``loc`` (for did-you-mean hints), best effort."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        field = current.model_fields.get(part)
        if field is None:
            break
        annotation = field.annotation
        args = getattr(annotation, "__args__", ()) or ()
        candidates = [annotation, *args]
        for arg in list(candidates):
            candidates.extend(getattr(arg, "__args__", ()) or ())
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items() if name != "base_dir"]
    return []


def format_validation_error(
    exc: ValidationError, origin: str, model: type[BaseModel] | None = None
) -> str:
    """One line per problem, joined by '; ', each starting with the field path."""
    messages = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        path = _path(loc)
        if kind == "extra_forbidden":
            name = str(loc[-1])
            known = _known_fields(model, loc[:-1]) if model else []
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            messages.append(f"{path}: unknown field{hint}")
        elif kind == "missing":
            messages.append(f"{path}: required field is missing")
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            messages.append(f"{path}: expected {expected}, got {error['input']!r}")
        else:
            msg = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            shown = f", got {value!r}" if isinstance(value, str | int | float) else ""
            messages.append(f"{path}: {msg[0].lower()}{msg[1:]}{shown}")
    # A union member failing produces near-duplicates; keep the first of each path.
    seen: dict[str, str] = {}
    for message in messages:
        seen.setdefault(message.split(":", 1)[0], message)
    return f"{origin}: " + "; ".join(seen.values())
