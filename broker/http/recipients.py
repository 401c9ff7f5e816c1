"""Recipient endpoints: token, inbox, notice, acknowledgement, live stream. Thin handlers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from broker.errors import AuthenticationFailed, NoticeInvalid, TooManyStreams, UnsupportedMediaType
from broker.http.keys import CLOCK, RECIPIENTS, SETTINGS, STATE, TOKENS
from broker.http.middleware import REQUEST_ID
from broker.http.notices import source
from broker.input import check_integer, check_json_depth, check_no_nul
from broker.logs import get_logger
from broker.policy.payload import Violation
from broker.service.live import event_data
from broker.service.tokens import GRANT_TYPE, still_entitled
from broker.store import notices_repo as repo

log = get_logger("liaison.stream")
STREAM_BACKLOG = 500  # deliveries replayed per resume; a client far behind pages through the inbox


def _contact(request: web.Request) -> str:
    view = request.app[STATE].view
    return request.app[TOKENS].contact_for(
        view.directory, request.headers.get("Authorization"), request.app[CLOCK].now()
    )


async def post_token(request: web.Request) -> web.Response:
    assertion = await _assertion(request)
    view = request.app[STATE].view
    answer = await request.app[TOKENS].exchange(
        view.directory,
        assertion,
        request.app[CLOCK].now(),
        source=source(request),
        request_id=request[REQUEST_ID],
    )
    response = web.json_response(answer)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _assertion(request: web.Request) -> str:
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        grant, assertion = form.get("grant_type"), form.get("assertion")
    elif request.content_type == "application/json":
        raw = await request.read()
        check_json_depth(raw, request.app[SETTINGS].limits.max_json_depth)
        try:
            body: Any = json.loads(raw)
        except ValueError as e:
            raise AuthenticationFailed(detail="token request is not JSON") from e
        body = body if isinstance(body, dict) else {}
        grant, assertion = body.get("grant_type"), body.get("assertion")
    else:
        raise AuthenticationFailed(detail="unsupported token request type")
    if grant not in (None, GRANT_TYPE) or not isinstance(assertion, str):
        raise AuthenticationFailed(detail="not a jwt-bearer grant")
    return assertion


async def get_inbox(request: web.Request) -> web.Response:
    contact = _contact(request)
    q = request.query
    try:
        limit = check_integer(int(q.get("limit", "50")), "/limit")
    except ValueError as e:
        raise NoticeInvalid([Violation("/limit", "must be a whole number")]) from e
    page = await request.app[RECIPIENTS].inbox(
        request.app[STATE].view,
        contact,
        request.app[CLOCK].now(),
        request_id=request[REQUEST_ID],
        cursor=q.get("cursor"),
        limit=limit,
        state=q.get("status"),
        channel=q.get("channel"),
    )
    return web.json_response(page)


async def get_notice(request: web.Request) -> web.Response:
    contact = _contact(request)
    body = await request.app[RECIPIENTS].fetch(
        request.app[STATE].view,
        contact,
        request.match_info["id"],
        request.app[CLOCK].now(),
        request_id=request[REQUEST_ID],
    )
    return web.json_response(body)


async def post_ack(request: web.Request) -> web.Response:
    contact = _contact(request)
    if request.content_type != "application/json":
        raise UnsupportedMediaType("acknowledgements are posted as application/json")
    raw = await request.read()
    check_json_depth(raw, request.app[SETTINGS].limits.max_json_depth)
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise NoticeInvalid([Violation("", "not valid JSON")]) from e
    check_no_nul(body)
    answer = await request.app[RECIPIENTS].acknowledge(
        request.app[STATE].view,
        contact,
        request.match_info["id"],
        body,
        request.app[CLOCK].now(),
        request_id=request[REQUEST_ID],
    )
    return web.json_response(answer)


async def get_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: metadata of each new delivery; resume with Last-Event-ID, no gap, no repeat.

    The stream lives as long as the token that opened it is entitled: it ends at the token's
    expiry, and within ``delivery.stream_recheck_seconds`` (at once, when the directory change
    is picked up) of a revoked key or an ended assignment. The client resumes with a new token.
    """
    app = request.app
    bearer = app[TOKENS].bearer_for(
        app[STATE].view.directory, request.headers.get("Authorization"), app[CLOCK].now()
    )
    contact = bearer.contact
    recipients, delivery = app[RECIPIENTS], app[SETTINGS].delivery
    last = _last_event_id(request)
    if recipients.hub.streams_of(contact) >= delivery.max_streams_per_contact:
        raise TooManyStreams("this contact has as many live streams open as allowed")
    subscription = recipients.hub.subscribe(
        contact
    )  # before the backlog query: nothing falls between
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        sent = await _send_after(request, response, contact, last)
        while not subscription.overflowed.is_set():
            now = app[CLOCK].now()
            if not still_entitled(app[STATE].view.directory, bearer, now):
                log.info("stream_ended", contact=contact, reason="token_no_longer_entitled")
                break
            wait = min(
                delivery.stream_heartbeat_seconds,
                delivery.stream_recheck_seconds,
                max(0.0, (bearer.expires_at - now).total_seconds()),
            )
            try:
                first = await asyncio.wait_for(subscription.queue.get(), timeout=wait)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            events = [first]
            while not subscription.queue.empty():
                events.append(subscription.queue.get_nowait())
            # The publisher pushes in commit order and has already asked policy: send what is
            # new, in order. Anything at or below the position was sent from the store already.
            fresh = sorted((e for e in events if e.id > sent), key=lambda e: e.id)
            for event in fresh:
                await _send(response, event.id, event.data)
            if fresh:
                sent = fresh[-1].id
                items = [e.item for e in fresh if e.item is not None]
                await recipients.delivered(
                    contact, items, "push", app[CLOCK].now(), request_id=request[REQUEST_ID]
                )
        return response  # ended or overflowed: the client reconnects (new token) and resumes
    finally:
        recipients.hub.unsubscribe(subscription)


async def _send_after(
    request: web.Request, response: web.StreamResponse, contact: str, after: int
) -> int:
    """Send the contact's deliveries above ``after`` from the store, in id order, when a stream
    opens or resumes; returns the new position. Ids are given out in commit order (see
    ``audit_repo.lock_head``), so what was committed before is here and nothing comes later
    below the position: no gap and no repeat, even after a process died between commit and push.
    """
    app = request.app
    recipients, engine = app[RECIPIENTS], app[STATE].engine
    while True:
        items = await repo.deliveries_after(engine, contact, after, STREAM_BACKLOG)
        if not items:
            return after
        now = app[CLOCK].now()
        shown = recipients.visible(app[STATE].view, contact, items, now)  # access ended: skipped
        for item in shown:
            await _send(response, item.delivery_id, event_data(item))
        await recipients.delivered(contact, shown, "push", now, request_id=request[REQUEST_ID])
        after = items[-1].delivery_id
        if len(items) < STREAM_BACKLOG:
            return after


async def _send(response: web.StreamResponse, event_id: int, data: dict[str, Any]) -> None:
    await response.write(f"id: {event_id}\nevent: notice\ndata: {json.dumps(data)}\n\n".encode())


def _last_event_id(request: web.Request) -> int:
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
    with contextlib.suppress(ValueError):
        return check_integer(max(0, int(value)), "Last-Event-ID")
    raise NoticeInvalid([Violation("/Last-Event-ID", "must be an event id this broker sent")])
