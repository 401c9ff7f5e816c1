"""Background workers that outlive their failures, and say how they are in ``/metrics``.

Invariants:
- a worker never stops for good on an exception: every failure is logged (a WARNING with the
  worker, the failure count and the error; the traceback too when it is not a store outage,
  whose cause ``store.health`` logs once per change), then the job runs again after a backoff
  (``service/backoff.py``: 1 s doubling, with jitter, capped at ``RESTART_CAP_SECONDS``);
- ``liaison_worker_state{worker}`` is ``starting``, ``running`` or ``failing``,
  ``liaison_worker_last_success_timestamp_seconds`` the wall-clock time of the last run that
  ended well (for a long-running job: its last start), ``liaison_worker_failures_total`` counts
  every failure: an alert on a stale timestamp catches a worker that is stuck, not only one
  that raises;
- cancellation (shutdown) is never swallowed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from broker import metrics
from broker.errors import StoreError
from broker.logs import get_logger
from broker.service.backoff import retry_delay

log = get_logger("liaison.workers")
RESTART_BASE_SECONDS = 1.0
RESTART_CAP_SECONDS = 60.0


@dataclass
class Worker:
    """A job run every ``interval`` seconds (``first_delay`` before the first run; the interval
    when None). With ``long_running`` the job is one call that should never return (the NOTIFY
    listener): its return while ``stopping()`` is false counts as a failure too."""

    name: str
    interval: float
    job: Callable[[], Awaitable[object]]
    first_delay: float | None = None
    long_running: bool = False
    stopping: Callable[[], bool] = lambda: False
    failures: int = 0

    async def run(self) -> None:
        metrics.WORKER_STATE.labels(self.name).state("starting")
        await asyncio.sleep(self.interval if self.first_delay is None else self.first_delay)
        while not self.stopping():
            if await self._once():
                await asyncio.sleep(self.interval)
            else:
                await asyncio.sleep(self._backoff())

    async def _once(self) -> bool:
        """Run the job once; True when it ended well."""
        try:
            if self.long_running:
                self._succeeded()
            await self.job()
            if self.long_running and not self.stopping():
                raise RuntimeError(f"{self.name} returned while the broker runs")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # any failure is logged and the job restarted
            self._failed(e)
            return False
        if not self.long_running:
            self._succeeded()
        return True

    def _succeeded(self) -> None:
        if self.failures:
            log.warning("worker_recovered", worker=self.name, after_failures=self.failures)
        self.failures = 0
        metrics.WORKER_STATE.labels(self.name).state("running")
        metrics.WORKER_LAST_SUCCESS.labels(self.name).set(time.time())

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        metrics.WORKER_STATE.labels(self.name).state("failing")
        metrics.WORKER_FAILURES.labels(self.name).inc()
        store = isinstance(error, StoreError)
        log.warning(
            "worker_failed",
            worker=self.name,
            failures=self.failures,
            error=type(error).__name__,
            reason=getattr(error, "detail", None) or str(error)[:200],
            exc_info=None if store else error,
        )

    def _backoff(self) -> float:
        return retry_delay(
            self.failures,
            RESTART_BASE_SECONDS,
            RESTART_CAP_SECONDS,
            None,
            random.random(),  # noqa: S311 - jitter, not a secret
        )
