"""What the delivery drivers and the outbox exchange: plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookResult:
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    error: str | None = None
    retry_after: float | None = None  # seconds, when the receiver asked for a pause

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """An answer no retry changes (for a peer broker's: the crossing itself is refused)."""
        return self.status in REFUSED_FOR_GOOD


# The request itself is refused: malformed, forbidden by the receiver's agreement or policy,
# unknown there, in conflict, too large. 401 is not among them (a peer that does not know this
# broker's key yet may be given it), nor 408, 425 and 429 (they ask for later).
REFUSED_FOR_GOOD = frozenset({400, 403, 404, 405, 409, 410, 413, 415, 422})


@dataclass(frozen=True)
class WitnessAnswer:
    """A witness's answer to ``add-checkpoint`` (c2sp.org/tlog-witness), its body bounded."""

    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    content_type: str = ""
    text: str = ""
    error: str | None = None


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # none | starttls | tls
    sender: str
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
