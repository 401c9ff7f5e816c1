"""What a focal point does: list their inbox, fetch a notice to decrypt, acknowledge it.

Invariants:
- access is decided by policy (Cedar ``read_notice``) on every request, from the roles the
  contact holds at that moment: an ended assignment ends access at once;
- a notice the contact may not read answers exactly like one that does not exist (404);
- the broker hands out ciphertext and this contact's own wrap only, never a data key;
- after ``expires_at`` (or the end of retention) a fetch answers 410 at once, before the shredder
  has destroyed anything;
- an acknowledgement is signed with the contact's Ed25519 key over the notice's content digest,
  so it proves the contact acknowledged exactly what the agency sent.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.domain.notice import NoticeFacts
from broker.errors import Gone, NotFound, NoticeInvalid
from broker.federation.replies import fits, reply_key, reply_keys
from broker.input import check_integer
from broker.policy.payload import Violation
from broker.service.acks import ack_events, reply_row, verify_ack
from broker.service.fetched import b64 as _b64
from broker.service.fetched import fetched_event, notice_answer
from broker.service.fetched import time_text as _time
from broker.service.live import STREAM_BACKLOG, BacklogReads, DeliveredMarks, Publisher, event_data
from broker.service.names import named_item
from broker.service.push import Hub
from broker.state import BrokerState, View
from broker.store import audit_repo, federation_repo
from broker.store import deliveries_repo as repo
from broker.store.deliveries_repo import InboxItem
from broker.trust.core import Binding


def _past_its_end(row: dict[str, Any], now: datetime) -> bool:
    """Expired or out of retention: gone at once, whether or not the shredder has run yet."""
    ends = [t for t in (row["expires_at"], row["retain_until"]) if t is not None]
    return any(t <= now for t in ends)


class Recipients:
    def __init__(
        self, state: BrokerState, hub: Hub, *, page_max: int, distributed: bool = False
    ) -> None:
        self.state = state
        self.hub = hub
        self.page_max = page_max
        self.distributed = distributed  # PostgreSQL: every process learns of deliveries by NOTIFY
        self.publisher = Publisher(state, hub)
        self.marks = DeliveredMarks(state)
        self.backlogs = BacklogReads(state.engine, STREAM_BACKLOG)

    async def close(self) -> None:
        await self.publisher.close()
        await self.marks.close()
        await self.backlogs.close()

    def visible(
        self, view: View, contact: str, items: list[InboxItem], now: datetime
    ) -> list[InboxItem]:
        """The items whose notices the contact may read now (one Cedar batch)."""
        roles: dict[str, list[str]] = defaultdict(list)
        facts: dict[str, NoticeFacts] = {}
        for item in items:
            roles[item.notice_id].append(item.role)
            facts[item.notice_id] = item.facts()
        ids = list(facts)
        decisions = view.authorizer.read_notices(contact, [(facts[i], roles[i]) for i in ids], now)
        allowed = {i for i, d in zip(ids, decisions, strict=True) if d.allowed}
        return [item for item in items if item.notice_id in allowed]

    async def inbox(
        self,
        view: View,
        contact: str,
        now: datetime,
        *,
        request_id: str | None = None,
        cursor: str | None,
        limit: int,
        state: str | None,
        channel: str | None,
        language: str | None = None,
    ) -> dict[str, Any]:
        limit = max(1, min(limit, self.page_max))
        before = _cursor(cursor)
        items = await repo.inbox(
            self.state.engine, contact, before=before, limit=limit, state=state, channel=channel
        )
        shown = self.visible(view, contact, items, now)
        await self.delivered(contact, shown, "inbox", now, request_id=request_id)
        next_cursor = _b64(f"d:{items[-1].delivery_id}".encode()) if len(items) == limit else None
        return {
            "items": [
                {
                    **event_data(i),
                    **named_item(view, i, language),
                    "delivery_id": i.delivery_id,
                    "state": "delivered" if i.state == "pending" else i.state,
                }
                for i in shown
            ],
            "next_cursor": next_cursor,
        }

    async def fetch(
        self,
        view: View,
        contact: str,
        notice_id: str,
        now: datetime,
        *,
        request_id: str | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        copy = await repo.recipient_copy(self.state.engine, notice_id, contact)
        if copy is None or not copy[1] or not self.visible(view, contact, copy[1], now):
            await self._refused(
                contact, "notice.fetch_refused", notice_id, "not_found", now, request_id
            )
            raise NotFound("no such notice")
        row, deliveries, wrap = copy
        if row["ciphertext"] is None or wrap is None or _past_its_end(row, now):
            await self._refused(contact, "notice.fetch_refused", notice_id, "gone", now, request_id)
            raise Gone("this notice has been destroyed at the end of its retention")
        fetched = fetched_event(contact, notice_id, row, deliveries, wrap, now, request_id)
        await repo.mark_read(self.state.engine, notice_id, contact, now, [fetched])
        answer = notice_answer(view, notice_id, row, deliveries, wrap, now, language)
        crossing = await federation_repo.crossing_of(self.state.engine, notice_id)
        if crossing is None or crossing.direction != "receive":
            return answer
        channel = view.policies.channels.get(row["channel"])
        if channel is not None and channel.replies:  # the key its own country bound to it
            answer["reply_key"] = reply_key(_reply_keys(view, crossing, row, now))
        return answer | origin_of(crossing)

    async def acknowledge(
        self,
        view: View,
        contact: str,
        notice_id: str,
        body: Any,
        now: datetime,
        *,
        request_id: str | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        copy = await repo.recipient_copy(self.state.engine, notice_id, contact)
        if copy is None or not copy[1] or not self.visible(view, contact, copy[1], now):
            await self._refused(
                contact, "delivery.ack_refused", notice_id, "not_found", now, request_id
            )
            raise NotFound("no such notice")
        row, deliveries, _ = copy
        verify_ack(view, contact, notice_id, row, body, now)
        reply, abroad = await self._reply(view, row, contact, deliveries, body, now)
        earlier = min((d.acked_at for d in deliveries if d.acked_at), default=None)
        if earlier is not None:  # acknowledged before: the first acknowledgement stands
            return {"id": notice_id, "acknowledged_at": _time(earlier)}
        events = ack_events(
            contact,
            notice_id,
            row,
            deliveries,
            body,
            reply,
            now,
            request_id,
            peer=(abroad.peer, abroad.peer_notice_id) if abroad is not None else None,
        )
        await repo.acknowledge(
            self.state.engine, notice_id, contact, body["signature"], now, reply, events
        )
        return {"id": notice_id, "acknowledged_at": _time(now)}

    async def _reply(
        self,
        view: View,
        row: dict[str, Any],
        contact: str,
        deliveries: list[InboxItem],
        body: dict[str, Any],
        now: datetime,
    ) -> tuple[dict[str, Any] | None, federation_repo.CrossingRecord | None]:
        """The reply row, and the crossing it goes back over when the notice came from a peer:
        then sealed to a key the sending country binds to the agency, and within what one
        report carries back (``federation/replies.py``)."""
        crossing = await federation_repo.crossing_of(self.state.engine, row["id"])
        abroad = crossing if crossing is not None and crossing.direction == "receive" else None
        foreign = (
            {k.key_id for k in _reply_keys(view, abroad, row, now)} if abroad is not None else None
        )
        reply = reply_row(view, row, contact, deliveries, body.get("reply"), now, foreign)
        if (
            reply is not None
            and abroad is not None
            and not fits(await repo.replies_of(self.state.engine, row["id"]), reply)
        ):
            raise NoticeInvalid(
                [Violation("/reply", "the replies to this notice are over what crosses back")]
            )
        return reply, abroad

    async def delivered(
        self,
        contact: str,
        items: list[InboxItem],
        via: str,
        now: datetime,
        *,
        request_id: str | None = None,
    ) -> None:
        """Mark shown deliveries delivered; each first delivery is an audit event, recorded with
        the request (inbox page or stream) that showed it, whichever round commits the mark."""
        by_id = {i.delivery_id: i for i in items if i.delivered_at is None}

        def events(changed: list[int]) -> list[AuditEvent]:
            return [
                AuditEvent(
                    at=now,
                    actor=f"contact:{contact}",
                    action="delivery.delivered",
                    object=f"notice:{by_id[i].notice_id}",
                    channel=by_id[i].channel,
                    details={"role": by_id[i].role, "via": via},
                    request=request_id,
                )
                for i in changed
            ]

        await self.marks.mark(list(by_id), now, events)

    async def _refused(
        self,
        contact: str,
        action: str,
        notice_id: str,
        reason: str,
        now: datetime,
        request_id: str | None,
    ) -> None:
        await audit_repo.append_events(
            self.state.engine,
            [
                AuditEvent(
                    at=now,
                    actor=f"contact:{contact}",
                    action=action,
                    object=f"notice:{notice_id[:40]}",
                    outcome="refused",
                    reason=reason,
                    request=request_id,
                )
            ],
        )

    async def announce(self, notice_id: str) -> None:
        """After a commit: push its deliveries, unless LISTEN/NOTIFY carries them to every process."""
        if not self.distributed:
            self.publisher.enqueue({"notice": notice_id})

    async def announce_deliveries(self, ids: list[int]) -> None:
        if not self.distributed:
            self.publisher.enqueue({"deliveries": ids})

    async def relay(self, payload: dict[str, Any]) -> None:
        """Push what a notification (or a local commit) names to this process's live clients."""
        self.publisher.enqueue(payload)

    async def catch_up(self) -> None:
        """After the listener reconnects: push what may have committed while it was away."""
        contacts = self.hub.contacts()
        answers = await repo.deliveries_after_each(
            self.state.engine, [(c, self.hub.high_water) for c in contacts], STREAM_BACKLOG
        )
        self.publisher.publish(sorted((i for a in answers for i in a), key=lambda i: i.delivery_id))


def _cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.b64decode(cursor, validate=True).decode()
        if not text.startswith("d:"):
            raise ValueError(text)
        return check_integer(int(text[2:]), "/cursor")
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise NoticeInvalid([Violation("/cursor", "not a cursor this broker issued")]) from e


def _reply_keys(
    view: View, crossing: federation_repo.CrossingRecord, row: dict[str, Any], now: datetime
) -> list[Binding]:
    origin = (crossing.origin_root or b"", crossing.origin_bindings or b"")
    return reply_keys(
        view, crossing.peer, origin, row["sender_id"], now, country=crossing.origin_country
    )


def origin_of(crossing: federation_repo.CrossingRecord) -> dict[str, Any]:
    """For a notice received from a peer broker: the sending country's signed root and key
    bindings as they came, so the recipient's client checks the agency key against its own pin
    of that root (``broker/federation/origin.py``), never against this broker's word."""
    return {
        "origin": {
            "peer": crossing.peer,
            "peer_notice_id": crossing.peer_notice_id,
            # Relayed by the hub: the country whose directory ``root`` is (the client's pin).
            "country": crossing.origin_country,
            "agreement": crossing.agreement,
            "root": _b64(crossing.origin_root or b""),
            "bindings": _b64(crossing.origin_bindings or b""),
        }
    }
