"""The cause an operator reads from a store outage, and one warning per change of it."""

from __future__ import annotations

import errno
import sqlite3

import asyncpg
import pytest
import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

from broker.store.health import StoreHealth, cause_of


def _wrapped(error: BaseException) -> DBAPIError:
    """As SQLAlchemy hands a driver's error to the boundary."""
    return OperationalError("INSERT INTO notice ...", {"secret": "payload"}, error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (_wrapped(sqlite3.OperationalError("database or disk is full")), "disk_full"),
        (_wrapped(sqlite3.OperationalError("attempt to write a readonly database")), "read_only"),
        (_wrapped(sqlite3.OperationalError("database is locked")), "timeout"),
        (_wrapped(sqlite3.OperationalError("unable to open database file")), "database_down"),
        (_wrapped(asyncpg.exceptions.DiskFullError("could not extend file")), "disk_full"),
        (_wrapped(asyncpg.exceptions.ReadOnlySQLTransactionError("read-only")), "read_only"),
        (_wrapped(asyncpg.exceptions.CannotConnectNowError("starting up")), "database_down"),
        (_wrapped(asyncpg.exceptions.AdminShutdownError("terminating")), "database_down"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), "database_down"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (TimeoutError(), "timeout"),
        (_wrapped(sqlite3.OperationalError("no such table: notice")), "error"),
    ],
)
def test_each_driver_error_gets_the_cause_an_operator_acts_on(
    error: BaseException, cause: str
) -> None:
    assert cause_of(error) == cause


def test_an_outage_is_one_warning_per_change_and_a_read_does_not_clear_a_full_disk() -> None:
    health = StoreHealth()
    full = _wrapped(sqlite3.OperationalError("database or disk is full"))
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):
            health.failed(full)
        health.succeeded(wrote=False)  # reads still work on a full disk: no recovery yet
        assert health.cause == "disk_full" and health.write_failed_within(30) == "disk_full"
        health.failed(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
        health.succeeded(wrote=True)
        health.succeeded(wrote=True)
    assert [(e["event"], e.get("cause", e.get("was"))) for e in logs] == [
        ("store_unavailable", "disk_full"),
        ("store_unavailable", "database_down"),
        ("store_recovered", "database_down"),
    ]
    assert all(e["log_level"] == "warning" for e in logs)
    assert "payload" not in repr(logs) and "INSERT" not in repr(logs)  # no statement, no values
    assert health.cause is None and health.write_failed_within(30) is None
