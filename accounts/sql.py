"""Raw SQL on the hot paths (ingest, budget evaluation, the per-request credentials read), as
server-side prepared statements.

Django's psycopg backend binds parameters client-side, so PostgreSQL parses and plans every
statement again; the ingest statements are few and fixed, so preparing them once per connection
saves that work (several milliseconds per batch for the write statement). They run on Django's own
connection, inside whatever transaction Django has open, and outside Django's query log.

A prepared statement gets a generic plan after a few executions, which PostgreSQL keeps until the
next ANALYZE of its tables. A lookup whose best plan depends on a table's size (an index probe on a
big ledger, a scan of an empty one) is therefore run unprepared (`prepare=False`), so it is planned
for the table as it is: prepared while the ledger was empty, the stored-key lookup kept scanning
the whole table as it grew, one 100-key filter per row.

`fetch_pipelined` sends several statements in one round trip (psycopg's pipeline mode): the
server runs them in order, each with its own snapshot, as if they had been sent one by one. When
they are the first statements of a transaction, psycopg sends its `BEGIN` ahead of them and waits
for the answer (a pipeline sync): a round trip of its own, before theirs.
"""

from collections.abc import Sequence

import psycopg
from django.db import connection


def fetch_all(sql: str, params, *, prepare: bool = True) -> list[tuple]:
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=prepare)
        return _rows(cursor)


def _rows(cursor: psycopg.Cursor) -> list[tuple]:
    # Whether the statement returns rows, from its result's column count: `cursor.description`
    # would build a Column object per column to say the same, on every statement of every batch.
    result = cursor.pgresult
    return cursor.fetchall() if result is not None and result.nfields else []


def fetch_one(sql: str, params, *, prepare: bool = True) -> tuple | None:
    rows = fetch_all(sql, params, prepare=prepare)
    return rows[0] if rows else None


def fetch_pipelined(statements: Sequence[tuple[str, object, bool]]) -> list[list[tuple]]:
    """The rows of each `(sql, params, prepare)` statement, in order, for one round trip to the server."""
    connection.ensure_connection()
    raw = connection.connection
    cursors = [psycopg.Cursor(raw) for _ in statements]
    try:
        with raw.pipeline():
            for cursor, (sql, params, prepare) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params, prepare=prepare)
        return [_rows(cursor) for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()
