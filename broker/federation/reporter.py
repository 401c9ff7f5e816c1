"""The receiving side reports back: each received notice's per-role state goes to its sender.

Pushed, not pulled: the report is a request this broker signs (RFC 9421, its broker key) and
POSTs to ``URL/v1/federation/status`` of the peer it received the notice from, from the same
outbox as a forward (a ``peer`` row, ``msg_id`` ``status:<peer's notice id>``, written in the
transaction that received the notice): retries with backoff, leases, dead letters and
``liaison outbox replay`` come with it, a peer outage delays a report and never loses it, and the
sender needs no poller, no credentials here, and learns of an acknowledgement when it happens.

What is sent is computed when it is sent (``report.snapshot`` of the deliveries as they are
then), so many changes make one report. Level-triggered: ``sweep`` (a worker) compares each open
received notice's current snapshot with the one the peer last accepted and queues the row again
when they differ — whatever changed the deliveries (a delivery, a read, an acknowledgement, an
escalation, a successor's delivery, a cancel), with no hook in each of those paths, and a change
that raced a send is caught by the next sweep. A dead-lettered row is queued again only by a
new change.

A notice the hub relayed has no deliveries here: its report is the one the next peer sent
(``relayed``), merged here as the sender of the relay, and the sweep passes each change back,
the replies it brought too (stored here sealed, as they came: the hub cannot open them). Once
the sending side has accepted a report carrying them, their sealed bytes are emptied here
(``reply.relay_body_dropped``, with a SHA-256 over them): the hub keeps that they passed, not
what it could never read, as it drops a relayed notice's body once the next peer holds it.

A report carries role ids, jurisdiction ids, states, counts and times: no contact, no person,
no key, no content (``report.py``; the sender refuses anything more) — and the recipients'
replies, sealed for the sending agency (``replies.py``): a reply is one more change of the
snapshot, so it travels as an acknowledgement does, through the same row, exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.keys import KeyPair
from broker.domain.delivery import WebhookResult
from broker.federation.forward import PeerPoster, signed_headers
from broker.federation.replies import crossing_replies
from broker.federation.report import digest, snapshot
from broker.logs import get_logger
from broker.state import BrokerState
from broker.store import deliveries_repo, federation_repo, intake_repo
from broker.store.outbox_repo import OutboxItem

log = get_logger("liaison.federation")

STATUS_PATH = "/v1/federation/status"
STATUS_PREFIX = "status:"  # the msg_id of a status row; a forward's is the notice id
SWEEP_LIMIT = 1000  # open received notices looked at per sweep, newest first


def status_row(notice_id: str, peer: str, peer_notice_id: str, now: datetime) -> dict[str, object]:
    """The outbox row that reports a received notice's status to ``peer``."""
    return {
        "notice_id": notice_id,
        "contact_id": None,
        "kind": "peer",
        "target": peer,
        "msg_id": STATUS_PREFIX + peer_notice_id,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def relayed(
    foreign: dict[str, Any] | None, status: str, replies: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A relayed notice's report: what the next peer reported (this broker has no roles in it),
    passed back as it was merged here, fields for fields, with the replies it brought (sealed
    for the sending agency, passed on as they came)."""
    if foreign is None:
        state: dict[str, Any] = {"status": status, "roles": []}
    else:
        state = {"status": foreign["status"], "roles": [dict(r) for r in foreign["roles"]]}
    if replies:
        state["replies"] = crossing_replies(replies)
    return state


def is_status(item: OutboxItem) -> bool:
    return item.kind == "peer" and item.msg_id.startswith(STATUS_PREFIX)


class StatusReporter:
    def __init__(
        self, state: BrokerState, poster: PeerPoster, broker_key: KeyPair, *, timeout_seconds: float
    ) -> None:
        self.state = state
        self.poster = poster
        self.broker_key = broker_key
        self.timeout_seconds = timeout_seconds

    async def current(self, notice_id: str) -> dict[str, object] | None:
        """The snapshot of a received notice now (None: it is gone)."""
        engine = self.state.engine
        notice = await intake_repo.get_notice(engine, notice_id)
        if notice is None:
            return None
        crossing = await federation_repo.crossing_of(engine, notice_id)
        if crossing is not None and crossing.relay_to is not None:
            # A reply the sending side already holds was emptied here: never sent again.
            replies = [
                r for r in await deliveries_repo.replies_of(engine, notice_id) if r["ciphertext"]
            ]
            return relayed(crossing.foreign_status, notice.status, replies)
        return snapshot(
            await deliveries_repo.deliveries_of(engine, notice_id),
            notice.status,
            await deliveries_repo.replies_of(engine, notice_id),
        )

    async def sweep(self, now: datetime) -> int:
        """Queue again every status row whose snapshot changed since the peer accepted one."""
        armed = 0
        engine = self.state.engine
        for report in await federation_repo.open_reports(engine, now, limit=SWEEP_LIMIT):
            if report.outbox_state not in ("sent", "dead"):
                continue  # queued: what is sent is read when it is sent
            state = await self.current(report.notice_id)
            if state is None:
                continue
            changed = digest(state)
            if (report.outbox_state == "sent" and changed != report.sent) or (
                report.outbox_state == "dead" and changed != report.armed
            ):
                await federation_repo.arm_report(engine, report, changed, now)
                armed += 1
        return armed

    async def attempt(self, item: OutboxItem, now: datetime) -> WebhookResult:
        """Send one report: the snapshot as it is now, signed, to the peer it came from."""
        peer = self.state.view.policies.peers.get(item.target)
        if peer is None or peer.url is None:
            return WebhookResult(410, f"peer {item.target} is no longer declared with a url")
        state = await self.current(item.notice_id)
        if state is None:
            return WebhookResult(410, "the notice is gone (shredded or removed)")
        peer_notice_id = item.msg_id.removeprefix(STATUS_PREFIX)
        changed = digest(state)
        report = {
            "notice_id": peer_notice_id,
            "reporter_notice_id": item.notice_id,
            "as_of": now.isoformat().replace("+00:00", "Z"),
            **state,
        }
        body = json.dumps(report, sort_keys=True).encode()
        url = peer.url.rstrip("/") + STATUS_PATH
        key = f"{peer_notice_id}:{changed[:16]}"
        headers = signed_headers(url, body, key, self.broker_key, now)
        result = await self.poster.post(url, headers, body, seconds=self.timeout_seconds)
        if result.delivered:
            await federation_repo.report_accepted(self.state.engine, item.notice_id, changed)
            log.info("notice_status_reported", notice_id=item.notice_id, peer=peer.id)
            if state.get("replies") and await self._relaying(item.notice_id):
                await self._drop_replies(item, state, peer.id, now)
        return result

    async def _relaying(self, notice_id: str) -> bool:
        crossing = await federation_repo.crossing_of(self.state.engine, notice_id)
        return crossing is not None and crossing.relay_to is not None

    async def _drop_replies(
        self, item: OutboxItem, state: dict[str, Any], to_peer: str, now: datetime
    ) -> None:
        """The hub passed replies on and the sending side accepted them: it keeps no sealed
        reply it cannot open (as it keeps no relayed notice body), only that they passed."""
        ids = [int(r["id"]) for r in state["replies"]]

        def event(count: int, digest: str) -> AuditEvent:
            return AuditEvent(
                now,
                "broker",
                "reply.relay_body_dropped",
                f"notice:{item.notice_id}",
                details={"to_peer": to_peer, "replies": count, "ciphertext_sha256": digest},
            )

        await federation_repo.drop_relayed_replies(self.state.engine, item.notice_id, ids, event)
