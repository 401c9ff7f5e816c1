"""Why the store is unavailable, told to the operator once per change rather than per request.

Invariants:
- every driver error the boundary converts gets one cause: ``disk_full``, ``read_only``,
  ``database_down``, ``timeout`` or ``error`` (anything else);
- the WARNING ``store_unavailable`` (with the cause and the driver's error class) is logged when
  the cause changes, and the WARNING ``store_recovered`` when a write succeeds again: a thousand
  refused posts during one outage make two log lines, not a thousand;
- nothing of a statement or its parameters is logged (they may hold ciphertext or keys), only the
  error's class and the cause drawn from it.
"""

from __future__ import annotations

import errno
import time
import weakref
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from broker.logs import get_logger
from broker.store import Database

log = get_logger("liaison.store")

DISK_FULL, READ_ONLY, DOWN, TIMEOUT, OTHER = (
    "disk_full",
    "read_only",
    "database_down",
    "timeout",
    "error",
)
# PostgreSQL SQLSTATEs: 53100 disk_full, 53xxx insufficient resources; 25006 read-only
# transaction; class 08 connection exceptions, 57P01-57P03 shutdown and start-up.
_SQLSTATES = {"53100": DISK_FULL, "25006": READ_ONLY, "57P01": DOWN, "57P02": DOWN, "57P03": DOWN}
_ERRNOS = {errno.ENOSPC: DISK_FULL, errno.EDQUOT: DISK_FULL, errno.EROFS: READ_ONLY}
_TEXTS = (
    ("disk is full", DISK_FULL),
    ("no space left", DISK_FULL),
    ("readonly database", READ_ONLY),
    ("read-only", READ_ONLY),
    ("database is locked", TIMEOUT),
    ("timeout", TIMEOUT),
    ("timed out", TIMEOUT),
    ("unable to open database", DOWN),
    ("connection", DOWN),
)


def error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps (a driver's ``orig``, a cause, a context), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return seen


def cause_of(error: BaseException) -> str:
    """The cause an operator acts on, from a driver error and what it wraps."""
    chain = error_chain(error)
    for e in chain:
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and (state in _SQLSTATES or state.startswith("08")):
            return _SQLSTATES.get(state, DOWN)
        if isinstance(e, OSError) and e.errno in _ERRNOS:
            return _ERRNOS[e.errno]
    for e in chain:
        text = str(e.args[0]).lower() if e.args else ""
        for needle, cause in _TEXTS:
            if needle in text:
                return cause
    if any(isinstance(e, TimeoutError) for e in chain):
        return TIMEOUT
    if any(isinstance(e, OSError) for e in chain):
        return DOWN
    return OTHER


@dataclass
class StoreHealth:
    """The last answer of one database: None when its last use succeeded, else the cause."""

    cause: str | None = None
    failed_at: float = 0.0  # time.monotonic() of the last failure

    def failed(self, error: BaseException) -> str:
        cause = cause_of(error)
        self.failed_at = time.monotonic()
        if cause != self.cause:
            log.warning(
                "store_unavailable", cause=cause, error=type(error_chain(error)[-1]).__name__
            )
            self.cause = cause
        return cause

    def succeeded(self, *, wrote: bool) -> None:
        """A read clears only the causes a read can disprove; a committed write clears all."""
        if self.cause is None or (not wrote and self.cause in (DISK_FULL, READ_ONLY)):
            return
        log.warning("store_recovered", was=self.cause)
        self.cause = None

    def write_failed_within(self, seconds: float) -> str | None:
        """The cause, when the last failure was a write the disk refused less than ``seconds`` ago."""
        if self.cause in (DISK_FULL, READ_ONLY) and time.monotonic() - self.failed_at < seconds:
            return self.cause
        return None


_HEALTH: weakref.WeakKeyDictionary[Engine, StoreHealth] = weakref.WeakKeyDictionary()


def health_of(db: Database) -> StoreHealth:
    """The health record of ``db`` (one per engine, for the life of the engine)."""
    engine = db.sync_engine
    record = _HEALTH.get(engine)
    if record is None:
        record = _HEALTH[engine] = StoreHealth()
    return record
