"""The operators table (`guard.admin.operators`) on SQLite and PostgreSQL: the registry backends call these."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from guard.forget.registry import OPERATOR_COLUMNS, Operator, operator_from_row

if TYPE_CHECKING:  # psycopg is imported only when PostgreSQL is used (a SQLite guard runs without it)
    import psycopg


def sqlite_add(db: sqlite3.Connection, operator: Operator) -> bool:
    try:
        with db:
            db.execute(
                f"INSERT INTO operators ({OPERATOR_COLUMNS}) VALUES (?, ?, ?, ?, NULL)",
                (operator.name, operator.role, operator.token_sha256, operator.created_at),
            )
    except sqlite3.IntegrityError:  # the name or the token is taken
        return False
    return True


def sqlite_revoke(db: sqlite3.Connection, name: str, at: float) -> Operator | None:
    with db:
        cur = db.execute("UPDATE operators SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (at, name))
    if not cur.rowcount:
        return None
    row = db.execute(f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = ?", (name,)).fetchone()
    return operator_from_row(row)


def sqlite_list(db: sqlite3.Connection, token_sha256: str | None = None) -> list[Operator]:
    if token_sha256 is None:
        rows = db.execute(f"SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY created_at, name").fetchall()
    else:
        rows = db.execute(
            f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE token_sha256 = ?", (token_sha256,)
        ).fetchall()
    return [operator_from_row(r) for r in rows]


async def pg_add(conn: psycopg.AsyncConnection[Any], operator: Operator) -> bool:
    cur = await conn.execute(
        f"INSERT INTO forget_operators ({OPERATOR_COLUMNS}) VALUES (%s, %s, %s, %s, NULL) ON CONFLICT DO NOTHING",
        (operator.name, operator.role, operator.token_sha256, operator.created_at),
    )
    return cur.rowcount == 1


async def pg_revoke(conn: psycopg.AsyncConnection[Any], name: str, at: float) -> Operator | None:
    cur = await conn.execute(
        "UPDATE forget_operators SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL "
        f"RETURNING {OPERATOR_COLUMNS}",
        (at, name),
    )
    row = await cur.fetchone()
    return None if row is None else operator_from_row(row)


async def pg_list(conn: psycopg.AsyncConnection[Any], token_sha256: str | None = None) -> list[Operator]:
    if token_sha256 is None:
        cur = await conn.execute(f"SELECT {OPERATOR_COLUMNS} FROM forget_operators ORDER BY created_at, name")
    else:
        cur = await conn.execute(
            f"SELECT {OPERATOR_COLUMNS} FROM forget_operators WHERE token_sha256 = %s", (token_sha256,)
        )
    return [operator_from_row(r) for r in await cur.fetchall()]
