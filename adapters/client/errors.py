"""The errors the client SDKs raise: the broker refused a request or could not be reached, or a
notice did not verify.

    BrokerError
    ├── SenderError          (adapters.client.sender)
    └── RecipientError
        ├── VerificationFailed
        └── SentToPreviousKey
"""

from __future__ import annotations

from typing import Any

from broker.terminal import safe


class BrokerError(Exception):
    """``status`` is the HTTP status (None when unreachable); ``problem`` the RFC 9457 document.

    The message quotes what the broker (or a notice) said; it is escaped (``broker.terminal``)
    so that printing it cannot drive the terminal. ``problem`` keeps the raw document.
    """

    def __init__(
        self, message: str, *, status: int | None = None, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(safe(message))
        self.status = status
        self.problem = problem or {}


class RecipientError(BrokerError):
    """The broker refused the request, or could not be reached."""


class VerificationFailed(RecipientError):
    """The notice did not decrypt or did not verify: it must not be trusted or shown."""


class SentToPreviousKey(RecipientError):
    """The notice is wrapped for another key of this contact: their encryption key changed. It is
    not shown, but this is a routine key change, not tampering. The broker re-wraps active
    notices for the new key from its escrow wrap, so the new key opens them within a minute."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"this notice was sent to your previous key, or re-wrapped since for your new one: "
            f"it is wrapped for {key_id}, not for the key given. Open it with that key (a notice "
            "sent to your previous key is re-wrapped for your new key within a minute)"
        )
        self.key_id = key_id
