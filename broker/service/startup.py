"""Whether the broker has started, and why not yet: what /readyz and the request gate read.

Invariants:
- until ``started`` every API request is refused with 503 ``store_unavailable`` (problem+json),
  and /readyz is false with ``waiting_for`` as its reason; /healthz answers all along;
- ``on_ready`` callbacks run once, when the broker is ready and its socket listens
  (``liaison serve`` prints "listening" there, never before).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from broker import metrics


@dataclass
class Startup:
    ready: bool = False
    waiting_for: str | None = "starting"
    attempts: int = 0
    listening: bool = False  # the server's socket listens (``http.server.serve`` says so)
    port: int = 0  # the port bound (``http.server.serve``; the one chosen for port 0)
    on_ready: list[Callable[[], None]] = field(default_factory=list)
    _announced: bool = False

    def waiting(self, reason: str) -> None:
        self.attempts += 1
        self.waiting_for = reason

    def started(self) -> None:
        self.ready, self.waiting_for = True, None
        metrics.READY.set(1)
        self._announce()

    def listening_now(self) -> None:
        self.listening = True
        self._announce()

    def _announce(self) -> None:
        """The ``on_ready`` callbacks, once both have happened, in either order."""
        if self.ready and self.listening and not self._announced:
            self._announced = True
            for callback in self.on_ready:
                callback()
