"""A recipient's live stream: the backlog from the store, then what the hub pushes, in id order.

Invariants:
- the subscription is taken before the backlog is read, so nothing committed falls between;
- ids are given out in commit order (``audit_repo.lock_head``): events at or below the position
  were sent from the store already, so there is no gap and no repeat, even after a process died
  between commit and push;
- the stream lives as long as the token that opened it is entitled: it ends at the token's
  expiry, and within ``delivery.stream_recheck_seconds`` (at once, when the directory change is
  picked up) of a revoked key or an ended assignment.
The transport is a ``write`` callable: the handler owns the HTTP response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from broker.clock import Clock
from broker.config import DeliverySettings
from broker.errors import TooManyStreams
from broker.logs import get_logger
from broker.service.live import event_data
from broker.service.push import Subscription
from broker.service.recipients import Recipients
from broker.service.tokens import Bearer, still_entitled
from broker.store import deliveries_repo as repo

log = get_logger("liaison.stream")
STREAM_BACKLOG = 500  # deliveries replayed per resume; a client far behind pages through the inbox
Write = Callable[[bytes], Awaitable[None]]


def subscribe(recipients: Recipients, contact: str, max_streams: int) -> Subscription:
    """A new subscription for ``contact``; ``TooManyStreams`` at the cap."""
    if recipients.hub.streams_of(contact) >= max_streams:
        raise TooManyStreams("this contact has as many live streams open as allowed")
    return recipients.hub.subscribe(contact)


async def serve(
    recipients: Recipients,
    clock: Clock,
    delivery: DeliverySettings,
    bearer: Bearer,
    subscription: Subscription,
    last: int,
    write: Write,
    request_id: str | None,
) -> None:
    """Send the backlog above ``last``, then each pushed event, until the token is no longer
    entitled or the subscription overflowed (the client reconnects with a new token)."""
    contact = bearer.contact
    sent = await send_backlog(recipients, clock, contact, last, write, request_id)
    while not subscription.overflowed.is_set():
        now = clock.now()
        if not still_entitled(recipients.state.view.directory, bearer, now):
            log.info("stream_ended", contact=contact, reason="token_no_longer_entitled")
            return
        wait = min(
            delivery.stream_heartbeat_seconds,
            delivery.stream_recheck_seconds,
            max(0.0, (bearer.expires_at - now).total_seconds()),
        )
        try:
            first = await asyncio.wait_for(subscription.queue.get(), timeout=wait)
        except TimeoutError:
            await write(b": keep-alive\n\n")
            continue
        events = [first]
        while not subscription.queue.empty():
            events.append(subscription.queue.get_nowait())
        # The publisher pushes in commit order and has already asked policy: send what is new,
        # in order. Anything at or below the position was sent from the store already.
        fresh = sorted((e for e in events if e.id > sent), key=lambda e: e.id)
        for event in fresh:
            await write(_frame(event.id, event.data))
        if fresh:
            sent = fresh[-1].id
            items = [e.item for e in fresh if e.item is not None]
            await recipients.delivered(contact, items, "push", clock.now(), request_id=request_id)


async def send_backlog(
    recipients: Recipients,
    clock: Clock,
    contact: str,
    after: int,
    write: Write,
    request_id: str | None,
) -> int:
    """Send the contact's deliveries above ``after`` from the store, in id order, when a stream
    opens or resumes; returns the new position."""
    state = recipients.state
    while True:
        items = await repo.deliveries_after(state.engine, contact, after, STREAM_BACKLOG)
        if not items:
            return after
        now = clock.now()
        shown = recipients.visible(state.view, contact, items, now)  # access ended: skipped
        for item in shown:
            await write(_frame(item.delivery_id, event_data(item)))
        await recipients.delivered(contact, shown, "push", now, request_id=request_id)
        after = items[-1].delivery_id
        if len(items) < STREAM_BACKLOG:
            return after


def _frame(event_id: int, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: notice\ndata: {json.dumps(data)}\n\n".encode()
