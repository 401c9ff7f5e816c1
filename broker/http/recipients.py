"""Recipient endpoints: token, inbox, notice, acknowledgement, live stream. Thin handlers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from broker.errors import (
    AuthenticationFailed,
    GrantTypeUnsupported,
    NestingTooDeep,
    NoticeInvalid,
    TokenRequestInvalid,
)
from broker.http import oauth
from broker.http.json_body import read_json
from broker.http.keys import CLOCK, RECIPIENTS, SETTINGS, STATE, TOKENS
from broker.http.language import in_language, reader_language
from broker.http.middleware import REQUEST_ID, count_refusal
from broker.http.notices import source
from broker.input import check_integer, check_json_depth
from broker.policy.payload import Violation
from broker.service import stream
from broker.service.tokens import CLIENT_ASSERTION_TYPE, CLIENT_CREDENTIALS, GRANT_TYPE


def _contact(request: web.Request) -> str:
    view = request.app[STATE].view
    return request.app[TOKENS].contact_for(
        view.directory, request.headers.get("Authorization"), request.app[CLOCK].now()
    )


async def post_token(request: web.Request) -> web.Response:
    """RFC 7523 jwt-bearer grant, or the client-credentials grant with the same signed assertion
    as RFC 7523 §2.2 client authentication (OpenID Connect's ``private_key_jwt``); refusals are
    RFC 6749 §5.2 errors (broker/http/oauth.py)."""
    as_client = False
    try:
        token_request = await _token_request(request)
        as_client = token_request.as_client
        view = request.app[STATE].view
        answer = await request.app[TOKENS].exchange(
            view.directory,
            token_request.assertion,
            request.app[CLOCK].now(),
            source=source(request),
            request_id=request[REQUEST_ID],
            as_client=as_client,
            client_id=token_request.client_id,
        )
    except AuthenticationFailed as e:
        if not e.recorded:
            await count_refusal(request, e)
        return oauth.token_error(e, as_client=as_client)
    return web.json_response(answer, headers=oauth.NO_STORE)


@dataclass(frozen=True)
class TokenRequest:
    assertion: str
    as_client: bool  # the assertion authenticates the client (client_credentials grant)
    client_id: str | None  # as the client named itself, if it did


async def _token_request(request: web.Request) -> TokenRequest:
    fields: Any
    if request.content_type == "application/x-www-form-urlencoded":
        fields = await request.post()
    elif request.content_type == "application/json":
        raw = await request.read()
        try:
            check_json_depth(raw, request.app[SETTINGS].limits.max_json_depth)
            fields = json.loads(raw)
        except (NestingTooDeep, ValueError) as e:
            raise TokenRequestInvalid(detail="token request is not JSON within limits") from e
        fields = fields if isinstance(fields, dict) else {}
    else:
        raise TokenRequestInvalid(detail="unsupported token request type")
    grant = fields.get("grant_type")
    if grant == CLIENT_CREDENTIALS:
        if fields.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise TokenRequestInvalid(detail="client credentials without a jwt-bearer assertion")
        assertion, client_id = fields.get("client_assertion"), fields.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise TokenRequestInvalid(detail="client_id is not a string")
        as_client = True
    elif grant in (None, GRANT_TYPE):
        assertion, client_id, as_client = fields.get("assertion"), None, False
    else:
        raise GrantTypeUnsupported(detail="neither a jwt-bearer nor a client-credentials grant")
    if not isinstance(assertion, str) or not assertion:
        raise TokenRequestInvalid(detail="no assertion")
    return TokenRequest(assertion, as_client, client_id)


INBOX_STATES = ("pending", "delivered", "read", "acknowledged", "escalated")
EVENT_ID = re.compile(r"[0-9]{1,64}")  # beyond 64 bits: 400 number_out_of_range


async def get_inbox(request: web.Request) -> web.Response:
    """The parameters are refused as the OpenAPI document describes them: 422, never ignored."""
    contact = _contact(request)
    q = request.query
    try:
        limit = int(q.get("limit", "50"))
    except ValueError as e:
        raise NoticeInvalid([Violation("/limit", "must be a whole number")]) from e
    if limit < 1:
        raise NoticeInvalid([Violation("/limit", "must be at least 1")])
    check_integer(limit, "/limit")
    if q.get("status") not in (None, *INBOX_STATES):
        raise NoticeInvalid([Violation("/status", "must be one of " + ", ".join(INBOX_STATES))])
    language = reader_language(request)
    page = await request.app[RECIPIENTS].inbox(
        request.app[STATE].view,
        contact,
        request.app[CLOCK].now(),
        request_id=request[REQUEST_ID],
        cursor=q.get("cursor"),
        limit=limit,
        state=q.get("status"),
        channel=q.get("channel"),
        language=language,
    )
    return in_language(web.json_response(page), language)


async def get_notice(request: web.Request) -> web.Response:
    contact = _contact(request)
    language = reader_language(request)
    body = await request.app[RECIPIENTS].fetch(
        request.app[STATE].view,
        contact,
        request.match_info["id"],
        request.app[CLOCK].now(),
        request_id=request[REQUEST_ID],
        language=language,
    )
    return in_language(web.json_response(body), language)


async def post_ack(request: web.Request) -> web.Response:
    contact = _contact(request)
    body = await read_json(request, "acknowledgements are posted as application/json")
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
    """Server-Sent Events: metadata of each new delivery; resume with Last-Event-ID, no gap, no
    repeat. The stream lives as long as the token that opened it is entitled (``service.stream``);
    the client resumes with a new token."""
    app = request.app
    bearer = app[TOKENS].bearer_for(
        app[STATE].view.directory, request.headers.get("Authorization"), app[CLOCK].now()
    )
    recipients, delivery = app[RECIPIENTS], app[SETTINGS].delivery
    last = _last_event_id(request)
    subscription = stream.subscribe(recipients, bearer.contact, delivery)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await stream.serve(
            recipients,
            app[CLOCK],
            delivery,
            bearer,
            subscription,
            last,
            response.write,
            request[REQUEST_ID],
        )
        return response  # ended or overflowed: the client reconnects (new token) and resumes
    finally:
        recipients.hub.unsubscribe(subscription)


def _last_event_id(request: web.Request) -> int:
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
    if EVENT_ID.fullmatch(value):
        return check_integer(int(value), "Last-Event-ID")
    raise NoticeInvalid([Violation("/Last-Event-ID", "must be an event id this broker sent")])
