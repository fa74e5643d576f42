"""Raw SQL on the hot ingest path, as server-side prepared statements.

Django's psycopg backend binds parameters client-side, so PostgreSQL parses and plans every
statement again; the ingest statements are few and fixed, so preparing them once per connection
saves that work (several milliseconds per batch for the write statement). They run on Django's own
connection, inside whatever transaction Django has open.
"""

import psycopg
from django.db import connection


def fetch_all(sql: str, params) -> list[tuple]:
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description is not None else []


def fetch_one(sql: str, params) -> tuple | None:
    rows = fetch_all(sql, params)
    return rows[0] if rows else None
