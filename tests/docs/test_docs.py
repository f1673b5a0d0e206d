"""The user documentation stays true: generated references are current, relative links
resolve, and every spec shown in YAML validates against the spec models."""

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
