"""The user documentation stays true: generated references are current, relative links
resolve, every spec shown in YAML validates against the spec models, and the model tables
of training.md match the adapters' parameters, defaults and search spaces."""

from __future__ import annotations

import functools
import importlib.util
import re
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from forgeml.config import load_spec
from forgeml.config.spec import Spec

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.glob("*.md"))

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)([^\n`]*)\n(.*?)^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MINIMAL = {"name": "docs", "task": "classification", "target": "y"}


@functools.cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _yaml_blocks() -> list[tuple[str, int, str]]:
    """``(page, line, text)`` of every fenced ```yaml block in the docs."""
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match.group(2).strip().lower() in ("yaml", "yml"):
                line = text.count("\n", 0, match.start()) + 1
                blocks.append((page.name, line, textwrap.dedent(match.group(3))))
    return blocks


def _spec_blocks() -> tuple[list[Any], list[Any]]:
    """YAML blocks that are whole specs (``name`` and ``task``), and partial ones whose
    keys are all top-level spec fields."""
    fields = set(Spec.model_fields) - {"base_dir"}
    full, partial = [], []
    for page, line, text in _yaml_blocks():
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            continue
        case = pytest.param(data, id=f"{page}:{line}")
        if "name" in data and "task" in data:
            full.append(case)
        elif data and set(data) <= fields:
            partial.append(case)
    return full, partial


FULL_SPECS, PARTIAL_SPECS = _spec_blocks()


def test_generated_references_are_up_to_date() -> None:
    stale = _generator().stale()
    assert not stale, (
        f"stale: {', '.join(p.name for p in stale)}; run `python docs/gen_reference.py`"
    )


@functools.cache
def _anchors(page: Path) -> set[str]:
    """The fragments GitHub gives the headings of ``page`` (duplicates get ``-1``, ...)."""
    anchor = _generator().github_anchor
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#* *$", text, re.MULTILINE):
        base = anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_to_files_that_exist(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    text = _INLINE_CODE.sub("", text)
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL or a mail address
        path, _, fragment = target.partition("#")
        linked = page.parent / path if path else page
        missing_anchor = bool(fragment) and linked.suffix == ".md" and linked.exists()
        if not linked.exists() or (missing_anchor and fragment not in _anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links: {broken}"


def test_docs_show_specs() -> None:
    assert len(FULL_SPECS) >= 3, "expected the guides to show whole specs"


def _with_env(data: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV.findall(yaml.safe_dump(data)):
        monkeypatch.setenv(name, "x")


@pytest.mark.parametrize("data", FULL_SPECS)
def test_full_specs_validate(data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _with_env(data, monkeypatch)
    load_spec(data)


@pytest.mark.parametrize("data", PARTIAL_SPECS)
def test_spec_snippets_validate(data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _with_env(data, monkeypatch)
    load_spec({**_MINIMAL, **data})


# -- the model tables of training.md ------------------------------------------------------

_SUBTYPES = {"classification": "binary", "regression": "regression"}
_NUMBER = re.compile(r"^-?[0-9][0-9_]*(?:\.[0-9]+)?(?:e-?[0-9]+)?$")


def _model_sections() -> list[tuple[str, str]]:
    """``(model name, section text)`` of each candidate in training.md's model tables."""
    text = (DOCS / "training.md").read_text(encoding="utf-8")
    text = text.split("## Candidates and search spaces", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^\*\*`([a-z_]+)`\*\*", text, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def _number(token: str) -> float | None:
    token = token.strip().strip("`")
    return float(token) if _NUMBER.match(token) else None


def _rows(section: str) -> list[tuple[list[str], list[str], str, str]]:
    """``(names, subtypes, default, search)`` of each parameter row of a model table."""
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Za-z_0-9]+)`", cells[0])
        qualifier = re.search(r"\((classification|regression)\)", cells[0])
        subtypes = [_SUBTYPES[qualifier.group(1)]] if qualifier else list(_SUBTYPES.values())
        rows.append((names, subtypes, cells[1], cells[2]))
    return rows


def _default_problems(adapter: Any, where: str, param: str, subtype: str, cell: str) -> list[str]:
    """A default cell ("100", "1 (classification), 2 (regression)", "1000 (rounds, ...)")
    against the adapter's numeric default; non-numeric defaults are not compared."""
    per_task = {
        _SUBTYPES[task]: value
        for value, task in re.findall(r"([^\s,()]+) \((classification|regression)\)", cell)
    }
    shown = per_task.get(subtype, cell.split(" ")[0].rstrip(","))
    expected = adapter.default_params(subtype).get(param)
    numeric = isinstance(expected, int | float) and not isinstance(expected, bool)
    if numeric and _number(shown) != float(expected):
        return [f"{where}: default {shown!r}, code {expected!r}"]
    return []


def _search_problems(adapter: Any, where: str, param: str, subtype: str, cell: str) -> list[str]:
    """A search cell ("fixed", "choices a, b", "int, log, 8 .. 256, step 50") against the
    adapter's search space; bounds given as formulas of n are not compared."""
    space = adapter.search_space(subtype, 10_000)
    if cell == "fixed":
        return [f"{where}: documented fixed, but searched"] if param in space else []
    if param not in space:
        conditional = "when n >" in cell
        return [] if conditional else [f"{where}: documented searched, but not in the space"]
    dim = space[param]
    if cell.startswith("choices"):
        listed = [c.strip().strip("`") for c in cell.removeprefix("choices").split(",")]
        actual = [str(c).lower() for c in dim.choices or []]
        return [f"{where}: choices {listed}, code {actual}"] if listed != actual else []
    bounds = re.search(r"([^\s,]+) \.\. ([^\s,]+)", cell)
    if bounds is None:
        return [f"{where}: cannot read the search space {cell!r}"]
    problems = [
        f"{where}: bound {token}, code {value}"
        for token, value in zip(bounds.groups(), (dim.low, dim.high), strict=True)
        if _number(token) is not None and _number(token) != value
    ]
    for flag, value in {"int": bool(dim.integer), "log": bool(dim.log)}.items():
        if (f"{flag}," in cell) != value:
            problems.append(f"{where}: '{flag}' is {value} in the code")
    step = re.search(r"step ([0-9.]+)", cell)
    if (float(step.group(1)) if step else None) != dim.step:
        problems.append(f"{where}: step {step.group(1) if step else None}, code {dim.step}")
    return problems


@pytest.mark.parametrize("name", [name for name, _ in _model_sections()])
def test_training_model_tables_match_the_adapters(name: str) -> None:
    from forgeml.models.catalog import ADAPTERS

    adapter = ADAPTERS[name]()  # its tables, without needing its library installed
    section = dict(_model_sections())[name]
    rows = _rows(section)
    also = re.search(r"Also accepted:(.*?)(?:\n\n|$)", section, re.DOTALL)
    documented = {n for names, _, _, _ in rows for n in names}
    documented |= set(re.findall(r"`([A-Za-z_0-9]+)`", also.group(1) if also else ""))
    known = set().union(*(adapter.known_params(s) for s in _SUBTYPES.values()))
    assert documented == known, f"{name}: documented {sorted(documented ^ known)} differ"
    problems = [
        problem
        for names, subtypes, default_cell, search_cell in rows
        for param in names
        for subtype in subtypes
        for check, cell in ((_default_problems, default_cell), (_search_problems, search_cell))
        for problem in check(adapter, f"{name}.{param} ({subtype})", param, subtype, cell)
    ]
    assert not problems, "\n".join(problems)
