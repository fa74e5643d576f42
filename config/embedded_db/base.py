import contextlib
from pathlib import Path

import psycopg
from django.db.backends.postgresql import base as postgresql

from .server import ensure_server

_created_databases: set[tuple[str, str]] = set()


class DatabaseWrapper(postgresql.DatabaseWrapper):
    """PostgreSQL over the embedded server's Unix socket; creates the named database if missing."""

    def get_connection_params(self):
        options = dict(self.settings_dict.get("OPTIONS") or {})
        pgdata = Path(options.pop("pgdata"))
        socket_dir = ensure_server(pgdata)
        settings_dict = {**self.settings_dict, "OPTIONS": options, "HOST": socket_dir, "PORT": ""}
        original = self.settings_dict
        self.settings_dict = settings_dict
        try:
            params = super().get_connection_params()
        finally:
            self.settings_dict = original
        self._ensure_database(socket_dir, params.get("dbname") or "postgres", params.get("user") or "postgres")
        return params

    @staticmethod
    def _ensure_database(socket_dir: str, name: str, user: str) -> None:
        if name in {"postgres", "template1"} or (socket_dir, name) in _created_databases:
            return
        with psycopg.connect(host=socket_dir, dbname="postgres", user=user, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                # another process may create it between our check and our create
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f'CREATE DATABASE "{name}"')
        _created_databases.add((socket_dir, name))
