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

import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from broker.clock import Clock
from broker.config import DeliverySettings
from broker.errors import TooManyStreams
from broker.logs import get_logger
from broker.service.live import STREAM_BACKLOG, event_data
from broker.service.push import Subscription
from broker.service.recipients import Recipients
from broker.service.tokens import Bearer, still_entitled

log = get_logger("liaison.stream")
Write = Callable[[bytes], Awaitable[None]]


def subscribe(recipients: Recipients, contact: str, delivery: DeliverySettings) -> Subscription:
    """A new subscription for ``contact``; ``TooManyStreams`` at the cap. The hub's one timer
    beats at the shorter of the heartbeat and the re-check interval."""
    if recipients.hub.streams_of(contact) >= delivery.max_streams_per_contact:
        raise TooManyStreams("this contact has as many live streams open as allowed")
    beat = min(delivery.stream_heartbeat_seconds, delivery.stream_recheck_seconds)
    return recipients.hub.subscribe(contact, beat)


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
    beat = min(delivery.stream_heartbeat_seconds, delivery.stream_recheck_seconds)
    sent = await send_backlog(recipients, clock, contact, last, write, request_id)
    while not subscription.overflowed:
        now = clock.now()
        if not still_entitled(recipients.state.view.directory, bearer, now):
            log.info("stream_ended", contact=contact, reason="token_no_longer_entitled")
            return
        left = (bearer.expires_at - now).total_seconds()
        await subscription.wait(left if left < beat else None)
        sent = await _send_pushed(recipients, clock, contact, subscription, sent, write, request_id)
        if subscription.beat:  # the hub's shared timer knocked
            subscription.beat = False
            await write(b": keep-alive\n\n")


async def _send_pushed(
    recipients: Recipients,
    clock: Clock,
    contact: str,
    subscription: Subscription,
    sent: int,
    write: Write,
    request_id: str | None,
) -> int:
    """Send what the hub queued; returns the new position. The publisher pushes in commit order
    and has already asked policy: send what is new, in order. Anything at or below the position
    was sent from the store already."""
    fresh = sorted((e for e in subscription.take() if e.id > sent), key=lambda e: e.id)
    if not fresh:
        return sent
    for event in fresh:
        await write(_frame(event.id, event.data))
    items = [e.item for e in fresh if e.item is not None]
    await recipients.delivered(contact, items, "push", clock.now(), request_id=request_id)
    return fresh[-1].id


async def send_backlog(
    recipients: Recipients,
    clock: Clock,
    contact: str,
    after: int,
    write: Write,
    request_id: str | None,
) -> int:
    """Send the contact's deliveries above ``after`` from the store, in id order, when a stream
    opens or resumes; returns the new position. Streams opening together share the read."""
    state = recipients.state
    while True:
        items = await recipients.backlogs.read(contact, after)
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
    """One server-sent event; its data one line of JSON (orjson: a broadcast frames thousands;
    ``json.dumps`` for a string orjson refuses). Neither writes a raw newline in a string."""
    try:
        body = orjson.dumps(data)
    except TypeError:
        body = json.dumps(data).encode()
    return b"id: %d\nevent: notice\ndata: %s\n\n" % (event_id, body)
