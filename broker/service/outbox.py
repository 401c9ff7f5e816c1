"""Webhooks and e-mail alerts: what each new delivery announces, and the worker that sends it.

Invariants:
- an announcement row is written in the transaction of the delivery it announces, so a 201
  means it will be attempted; it is retried with exponential backoff and jitter, Retry-After is
  honoured, and after ``max_attempts`` it is dead-lettered with an alert in the audit log;
- a 410 from an endpoint disables it (until the directory declares it anew); a peer broker's
  refusal of a crossing (``WebhookResult.refused``: 400, 403, 404, 409, 413, 422, …) is settled
  dead at once with its reason (``peer.refused``), since a retry would only repeat it;
- e-mail never carries content; a webhook carries metadata, or ciphertext with the contact's own
  wrap only where both the channel (TLP permitting) and the endpoint ask for it;
- sends run concurrently with a timeout each, so one slow receiver holds up no one else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from broker.audit.events import AuditEvent
from broker.config import Settings, resolve_secret
from broker.crypto.envelope import associated_data
from broker.domain.delivery import SmtpConfig, WebhookResult
from broker.errors import ConfigError, EmailFailed
from broker.logs import get_logger
from broker.metrics import OUTBOX_ROUNDS
from broker.policy.channel import Channel
from broker.service.announcements import announcement_rows
from broker.service.backoff import retry_delay
from broker.service.ports import AlertMailer, WebhookSender
from broker.state import BrokerState, View
from broker.store import deliveries_repo, intake_repo, outbox_repo
from broker.store.outbox_repo import OutboxItem

log = get_logger("liaison.outbox")

PeerAttempt = Callable[[OutboxItem, datetime], Awaitable[WebhookResult]]

ROUND_LIMIT = 200  # messages attempted in one round at most; the next round goes on


class Outbox:
    def __init__(
        self,
        state: BrokerState,
        settings: Settings,
        environ: Mapping[str, str],
        webhooks: WebhookSender,
        mailer: AlertMailer,
    ) -> None:
        self.state = state
        self.settings = settings
        self.environ = environ
        self.webhooks = webhooks  # owns its HTTP session: closed by ``close``
        self.mailer = mailer
        # Sends ``peer`` rows (notices forwarded across a border, broker/federation/forward.py).
        self.peers: PeerAttempt | None = None

    # -- what a delivery announces --------------------------------------------------------------
    def rows_for(
        self,
        view: View,
        notice_id: str,
        channel: Channel,
        recipients: list[tuple[str, str]],
        now: datetime,
    ) -> list[dict[str, Any]]:
        """Outbox rows for new recipients (contact, role) of a notice on ``channel``."""
        return announcement_rows(
            view, notice_id, channel, recipients, now, email=bool(self.settings.smtp.host)
        )

    # -- the worker -------------------------------------------------------------------------------
    async def close(self) -> None:
        await self.webhooks.close()

    async def tick(self, now: datetime) -> int:
        """Attempt every due announcement once; returns how many were attempted.

        ``concurrency`` senders take messages from a queue refilled a few at a time, each claim
        under a lease that covers one wait for a sender and one call: a broker killed mid-call
        leaves its messages to be retried a lease later, not a whole round's worth of calls
        later, and one slow receiver holds up no one else.
        """
        w = self.settings.webhooks
        smtp = self.settings.smtp
        per_call = max(w.timeout_seconds, smtp.timeout_seconds if smtp.host else 0)
        lease = timedelta(seconds=per_call * 2 + 5)
        senders = max(1, w.concurrency)
        started = time.monotonic()
        queue: list[OutboxItem] = []
        refill = asyncio.Lock()
        disabled: dict[str, str] = {}
        progress = {"attempted": 0, "exhausted": False}

        async def next_item() -> OutboxItem | None:
            async with refill:
                if not queue and not progress["exhausted"]:
                    room = ROUND_LIMIT - int(progress["attempted"])
                    elapsed = timedelta(seconds=time.monotonic() - started)
                    claimed = (
                        await outbox_repo.claim(
                            self.state.engine, now, limit=min(senders, room), lease=lease + elapsed
                        )
                        if room > 0
                        else []
                    )
                    if not claimed:
                        progress["exhausted"] = True
                    elif not progress["attempted"]:
                        disabled.update(await outbox_repo.disabled_endpoints(self.state.engine))
                    progress["attempted"] = int(progress["attempted"]) + len(claimed)
                    queue.extend(claimed)
                return queue.pop(0) if queue else None

        async def sender() -> None:
            while (item := await next_item()) is not None:
                try:
                    await self._attempt(item, now, disabled)
                except Exception:  # one bad message must not stop the others; it is retried
                    log.exception("outbox_attempt_failed", outbox_id=item.id)

        await asyncio.gather(*(sender() for _ in range(senders)))
        OUTBOX_ROUNDS.inc()
        return int(progress["attempted"])

    async def _attempt(self, item: OutboxItem, now: datetime, disabled: dict[str, str]) -> None:
        view = self.state.view
        meta = await intake_repo.notice_columns(
            self.state.engine,
            item.notice_id,
            [
                "id",
                "channel",
                "jurisdiction_id",
                "severity",
                "marking",
                "exercise",
                "kind",
                "status",
                "supersedes_id",
                "sender_id",
                "created_at",
                "policy_hash",
                "aead",
                "aead_nonce",
                "ciphertext",
            ],
        )
        if meta is None:
            return
        if item.contact_id is not None and not await self._entitled(view, item, now):
            await self._settle(
                item,
                now,
                "dead",
                item.attempts,
                "the recipient may no longer read this notice",
                f"{item.kind}.dropped",
                meta["channel"],
            )
            return
        if item.kind == "peer" and self.peers is not None:
            result = await self.peers(item, now)
            await self._record(
                item,
                now,
                meta["channel"],
                result.delivered,
                result.error,
                result.retry_after,
                refused=result.refused,  # the peer said no: retrying would only repeat it
            )
        elif item.kind == "webhook":
            await self._attempt_webhook(item, meta, view, now, disabled)
        else:
            error = await self._send_email(item, meta, view)
            await self._record(item, now, meta["channel"], error is None, error, None)

    async def _attempt_webhook(
        self,
        item: OutboxItem,
        meta: dict[str, Any],
        view: View,
        now: datetime,
        disabled: dict[str, str],
    ) -> None:
        hook = view.directory.webhooks.get(item.target)
        if hook is None or item.target in disabled:
            await self._settle(
                item,
                now,
                "dead",
                item.attempts,
                "endpoint removed or disabled",
                "webhook.dropped",
                meta["channel"],
            )
            return
        result = await self._send_webhook(item, hook, meta, view, now)
        await self._record(
            item,
            now,
            meta["channel"],
            result.delivered,
            result.error,
            result.retry_after,
            gone=result.status == 410,
            url=hook.url,
        )

    async def _entitled(self, view: View, item: OutboxItem, now: datetime) -> bool:
        """May the contact this message is for read its notice now? Asked at sending time,
        against the directory as it is then: a holder replaced, an assignment ended or a key
        revoked since the delivery was made gets no e-mail and no webhook."""
        notice = await intake_repo.get_notice(self.state.engine, item.notice_id)
        contact = str(item.contact_id)
        roles = [
            d.role
            for d in await deliveries_repo.deliveries_of(self.state.engine, item.notice_id)
            if d.contact == contact
        ]
        if notice is None or not roles:
            return False
        decision = view.authorizer.read_notices(contact, [(notice.facts(), roles)], now)[0]
        return decision.allowed

    async def _send_webhook(
        self, item: OutboxItem, hook: Any, meta: dict[str, Any], view: View, now: datetime
    ) -> WebhookResult:
        data = self._webhook_data(hook, meta)
        channel = view.policies.channels.get(meta["channel"])
        wants_ciphertext = (
            hook.content == "ciphertext"
            and channel is not None
            and channel.delivery.webhook == "ciphertext"
            and meta["ciphertext"] is not None
        )
        if wants_ciphertext and item.contact_id:
            encryption = await self._encryption(item.contact_id, meta, view, now)
            if encryption is not None:  # never a wrap for a revoked key
                data["encryption"] = encryption
        body = json.dumps(
            {
                "type": "liaison.notice",
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "data": data,
            },
            separators=(",", ":"),
        ).encode()
        try:
            secret = (
                resolve_secret(hook.secret_ref, self.settings, self.environ).decode()
                if hook.secret_ref
                else None
            )
        except ConfigError as e:
            return WebhookResult(None, f"secret unavailable: {e}")
        return await self.webhooks.send(
            hook.url,
            item.msg_id,
            int(now.timestamp()),
            body,
            secret=secret,
            seconds=self.settings.webhooks.timeout_seconds,
        )

    def _webhook_data(self, hook: Any, meta: dict[str, Any]) -> dict[str, Any]:
        """The metadata a webhook event carries: never the content."""
        return {
            "notice_id": meta["id"],
            "channel": meta["channel"],
            "jurisdiction": meta["jurisdiction_id"],
            "severity": meta["severity"],
            "marking": meta["marking"],
            "exercise": meta["exercise"],
            "kind": meta["kind"],
            "status": meta["status"],
            "supersedes": meta["supersedes_id"],
            "sender": meta["sender_id"],
            "created_at": meta["created_at"].isoformat().replace("+00:00", "Z"),
            "recipient": hook.owner,
            "notice_url": f"{self.settings.public_url}/v1/notices/{meta['id']}",
        }

    async def _encryption(
        self, contact_id: str, meta: dict[str, Any], view: View, now: datetime
    ) -> dict[str, Any] | None:
        """The ciphertext with the contact's own wrap, or None when its key is not usable now."""
        wraps = await intake_repo.wraps_of(self.state.engine, meta["id"])
        key_id, sealed = wraps.get(contact_id, ("", b""))
        key = view.directory.keys.get(key_id)
        if key is None or not key.usable_at(now):
            return None
        return {
            "aead": meta["aead"],
            "nonce": _b64(meta["aead_nonce"]),
            "ciphertext": _b64(meta["ciphertext"]),
            "aad": _b64(associated_data(meta["id"], meta["channel"], meta["policy_hash"])),
            "wrap": {"key_id": key_id, "sealed": _b64(sealed)},
        }

    async def _send_email(self, item: OutboxItem, meta: dict[str, Any], view: View) -> str | None:
        smtp = self.settings.smtp
        contact = view.directory.contacts.get(item.contact_id or "")
        try:
            password = (
                resolve_secret(smtp.password, self.settings, self.environ).decode()
                if smtp.password
                else None
            )
        except ConfigError as e:
            return f"password unavailable: {e}"
        config = SmtpConfig(
            smtp.host,
            smtp.port,
            smtp.security,
            smtp.from_address,
            smtp.username or None,
            password,
            float(smtp.timeout_seconds),
        )
        try:
            await self.mailer.send_alert(
                config,
                to=item.target,
                language=contact.language if contact else "en",
                marking=meta["marking"],
                exercise=meta["exercise"],
                # The notice in the web inbox (sign-in first): a page, not the JSON API.
                inbox_url=f"{self.settings.public_url}/ui/#/notice/{quote(item.notice_id, safe='')}",
                msg_id=item.msg_id,
            )
        except EmailFailed as e:
            return str(e)
        return None

    async def _record(
        self,
        item: OutboxItem,
        now: datetime,
        channel: str,
        ok: bool,
        error: str | None,
        retry_after: float | None,
        *,
        gone: bool = False,
        refused: bool = False,
        url: str = "",
    ) -> None:
        attempts = item.attempts + 1
        kind = item.kind
        if ok:
            await self._settle(
                item,
                now,
                "sent",
                attempts,
                None,
                _sent_action(item),
                channel,
            )
        elif gone:
            await self._settle(
                item,
                now,
                "dead",
                attempts,
                error,
                "webhook.disabled",
                channel,
                disable=(item.target, url),
            )
        elif refused:
            await self._settle(item, now, "dead", attempts, error, f"{kind}.refused", channel)
            log.warning("outbox_refused", outbox_id=item.id, kind=kind, target=item.target)
        elif attempts >= self.settings.webhooks.max_attempts:
            await self._settle(item, now, "dead", attempts, error, f"{kind}.dead_lettered", channel)
            log.warning("outbox_dead_lettered", outbox_id=item.id, kind=kind, target=item.target)
        else:
            w = self.settings.webhooks
            draw = random.random()  # noqa: S311 - jitter, not security
            delay = retry_delay(
                attempts, w.backoff_seconds, w.max_backoff_seconds, retry_after, draw
            )
            await outbox_repo.finish(
                self.state.engine,
                item,
                state="pending",
                attempts=attempts,
                next_at=now + timedelta(seconds=delay),
                error=error,
                now=now,
                events=[],
            )

    async def _settle(
        self,
        item: OutboxItem,
        now: datetime,
        state: str,
        attempts: int,
        error: str | None,
        action: str,
        channel: str,
        disable: tuple[str, str] | None = None,
    ) -> None:
        event = AuditEvent(
            at=now,
            actor="broker",
            action=action,
            object=f"notice:{item.notice_id}",
            channel=channel,
            outcome="ok" if state == "sent" else "failed",
            reason=None if state == "sent" else "undelivered",
            details={
                "target": item.target if item.kind != "email" else "email",
                "msg_id": item.msg_id,
                "attempts": attempts,
                "error": error,
            },
        )
        await outbox_repo.finish(
            self.state.engine,
            item,
            state=state,
            attempts=attempts,
            next_at=now,
            error=error,
            now=now,
            events=[event],
            disable=disable,
        )


def _sent_action(item: OutboxItem) -> str:
    """The audit action of a message sent: a ``peer`` row is a forward, or a status report
    (``msg_id`` ``status:<peer's notice id>``, broker/federation/reporter.py)."""
    if item.kind == "peer":
        return "notice.status_reported" if item.msg_id.startswith("status:") else "notice.forwarded"
    return {"email": "email.sent"}.get(item.kind, f"{item.kind}.delivered")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
