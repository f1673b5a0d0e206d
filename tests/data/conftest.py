"""Helpers for the data-layer tests: real files and real databases built from real data."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest


def write_sql_table(url: str, table: str, frame: pl.DataFrame) -> None:
    """Create ``table`` at the SQLAlchemy ``url`` with ``frame``'s rows and typed columns."""
    import sqlalchemy as sa

    types = {
        pl.Int64: sa.BigInteger,
        pl.Float64: sa.Float,
        pl.String: sa.Text,
        pl.Boolean: sa.Boolean,
    }
    meta = sa.MetaData()
    columns = [sa.Column(name, types.get(dtype, sa.Text)()) for name, dtype in frame.schema.items()]
    sa_table = sa.Table(table, meta, *columns)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            meta.drop_all(conn)
            meta.create_all(conn)
            if frame.height:
                conn.execute(sa_table.insert(), frame.to_dicts())
    finally:
        engine.dispose()


@pytest.fixture
def sql_table() -> Callable[[str, str, pl.DataFrame], None]:
    return write_sql_table


@pytest.fixture
def memory_url() -> str:
    """A fresh folder on fsspec's in-memory filesystem (shared by the whole process)."""
    return f"memory://forgeml-tests/{uuid.uuid4().hex}"


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[..., Path]:
    """Write a file in ``tmp_path`` (text or bytes) and return its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write
