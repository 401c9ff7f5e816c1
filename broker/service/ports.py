"""The ports through which the service layer reaches the outside; ``broker/app.py`` injects the
drivers (``adapters.delivery``), tests may inject their own. No driver is imported here."""

from __future__ import annotations

from typing import Protocol

from broker.domain.delivery import SmtpConfig, WebhookResult


class WebhookSender(Protocol):
    """Signs (with ``secret``, a ``whsec_`` text, or else the broker's key) and posts one event.
    Never raises for the receiver's failures: they come back in the ``WebhookResult``."""

    async def send(
        self,
        url: str,
        msg_id: str,
        timestamp: int,
        body: bytes,
        *,
        secret: str | None,
        seconds: float,
    ) -> WebhookResult: ...

    async def close(self) -> None: ...


class AlertMailer(Protocol):
    """Sends the content-free alert that a notice waits; ``errors.EmailFailed`` on failure."""

    async def send_alert(
        self,
        config: SmtpConfig,
        *,
        to: str,
        language: str,
        marking: str,
        exercise: str | None,
        inbox_url: str,
        msg_id: str,
    ) -> None: ...


class JwksFetcher(Protocol):
    """Fetches an issuer's JWKS text, bounded; ``errors.JwksUnavailable`` on any failure."""

    async def __call__(self, url: str, *, timeout_seconds: float, max_bytes: int) -> str: ...
