"""The request's first statement as its connection health check.

With CONN_HEALTH_CHECKS, Django checks a reused connection with a round trip of its own (SELECT 1)
before the first query of a request. A hot path whose first statement only reads can be that check
instead: it takes the check (`first_statement_checks`), runs, and if it fails on a connection the
server closed (`reused_connection_lost`), nothing was written, so it closes the connection and runs
again once on a new one. Ingest's first round trip and the per-request credentials-version read
(without Redis) do so.
"""

from django.db import connection


def first_statement_checks() -> bool:
    """Mark this request's health check done; returns whether the caller's statement is the check
    (a reused connection not yet checked in this request)."""
    unchecked = connection.connection is not None and connection.health_check_enabled
    unchecked = unchecked and not connection.health_check_done
    connection.health_check_done = True
    return unchecked


def reused_connection_lost(unchecked: bool) -> bool:
    """After an error of the checking statement: whether it met a reused connection the server had
    closed (so the statement may run again on a new connection)."""
    return unchecked and connection.connection is not None and connection.connection.closed
