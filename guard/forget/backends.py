"""Which registry backend a DSN names. Outside both backends, so that neither imports the other."""

from __future__ import annotations

from pathlib import Path

from guard.forget.registry import Registry
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry


def open_registry(dsn: str | None, index_dir: Path, dim: int) -> Registry:
    """The registry named by `dsn`: PostgreSQL for postgresql:// (or postgres://), else SQLite in `index_dir`."""
    if dsn and dsn.startswith(("postgresql://", "postgres://")):
        from guard.forget.postgres import PostgresRegistry  # psycopg is imported only when PostgreSQL is used

        return PostgresRegistry(dsn, dim)
    if dsn and not dsn.startswith("sqlite:"):
        raise ValueError("registry DSN must be postgresql://… or sqlite:///path")
    path = Path(dsn.removeprefix("sqlite://")) if dsn else index_dir / REGISTRY_FILE
    return SqliteRegistry(path, dim)
