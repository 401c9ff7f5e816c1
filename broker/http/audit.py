"""Auditor endpoints. Thin: parse, decide through the service, answer."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from broker.domain.notice import EXERCISE_FILTERS
from broker.errors import NoticeInvalid
from broker.http.keys import AUDIT, CLOCK, STATE, TOKENS
from broker.http.language import in_language, reader_language
from broker.http.middleware import REQUEST_ID
from broker.input import check_integer
from broker.policy.payload import Violation
from broker.service.notices import QUERY_INVALID

CURSOR = re.compile(r"[0-9]{1,64}")  # beyond 64 bits: 400 number_out_of_range
# A log's seq never passes 2**53 - 1 (its events are RFC 8785 JSON, whose integers stop there),
# so a larger cursor is none this broker issued, and could not be written into the audit.read
# event that records the request either.
MAX_SEQ = 2**53 - 1


def _contact(request: web.Request) -> str:
    return request.app[TOKENS].contact_for(
        request.app[STATE].view.directory,
        request.headers.get("Authorization"),
        request.app[CLOCK].now(),
    )


def _int(request: web.Request, name: str, default: int | None = None, minimum: int = 0) -> int:
    value = request.query.get(name)
    if value is None and default is not None:
        return default
    try:
        number = int(value or "")
    except ValueError as e:
        raise NoticeInvalid([Violation(f"/{name}", "must be a whole number")], QUERY_INVALID) from e
    if number < minimum:
        raise NoticeInvalid([Violation(f"/{name}", f"must be at least {minimum}")], QUERY_INVALID)
    return check_integer(number, f"/{name}")


def _cursor(request: web.Request) -> int:
    """The seq (or tree size) a page ended at (``cursor``), 0 when absent: digits only, as
    documented, and no larger than a log can reach."""
    if not CURSOR.fullmatch(request.query.get("cursor", "0")):
        raise NoticeInvalid(
            [Violation("/cursor", "not a cursor this broker issued")], QUERY_INVALID
        )
    after = _int(request, "cursor", 0)
    if after > MAX_SEQ:
        raise NoticeInvalid(
            [Violation("/cursor", "not a cursor this broker issued")], QUERY_INVALID
        )
    return after


def _time(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise NoticeInvalid(
            [Violation(f"/{name}", "must be an ISO 8601 time")], QUERY_INVALID
        ) from e
    if parsed.tzinfo is None:
        raise NoticeInvalid([Violation(f"/{name}", "needs a timezone")], QUERY_INVALID)
    return parsed


async def get_events(request: web.Request) -> web.Response:
    contact = _contact(request)
    q = request.query
    where = {
        "since": _time(request, "from"),
        "until": _time(request, "to"),
        "actor": q.get("actor"),
        "action": q.get("action"),
        "notice": q.get("notice"),
        "channel": q.get("channel"),
        "exercise": q.get("exercise"),
    }
    if where["exercise"] not in (None, *EXERCISE_FILTERS):
        raise NoticeInvalid(
            [Violation("/exercise", f"must be one of {', '.join(EXERCISE_FILTERS)}")],
            QUERY_INVALID,
        )
    hidden = q.get("hidden")
    if hidden not in (None, "leaves"):
        raise NoticeInvalid([Violation("/hidden", "must be 'leaves'")], QUERY_INVALID)
    if hidden and any(where.values()):
        # Leaf hashes of hidden events that match a filter would say that they match.
        raise NoticeInvalid([Violation("/hidden", "takes no filter")], QUERY_INVALID)
    page = await request.app[AUDIT].events(
        contact,
        where,
        after=_cursor(request),
        limit=_int(request, "limit", 200, minimum=1),
        now=request.app[CLOCK].now(),
        hidden_leaves=hidden == "leaves",
        request_id=request[REQUEST_ID],
    )
    return web.json_response(page)


async def get_checkpoint(request: web.Request) -> web.Response:
    contact = _contact(request)
    fresh = request.query.get("fresh", "").lower() in ("1", "true", "yes")
    return web.json_response(
        await request.app[AUDIT].latest_checkpoint(
            contact, request.app[CLOCK].now(), fresh=fresh, request_id=request[REQUEST_ID]
        )
    )


async def get_inclusion(request: web.Request) -> web.Response:
    contact = _contact(request)
    return web.json_response(
        await request.app[AUDIT].inclusion(
            contact,
            _int(request, "seq"),
            _int(request, "size"),
            request.app[CLOCK].now(),
            request_id=request[REQUEST_ID],
        )
    )


async def get_consistency(request: web.Request) -> web.Response:
    contact = _contact(request)
    return web.json_response(
        await request.app[AUDIT].consistency(
            contact,
            _int(request, "first"),
            _int(request, "second"),
            request.app[CLOCK].now(),
            request_id=request[REQUEST_ID],
        )
    )


async def get_checkpoints(request: web.Request) -> web.Response:
    contact = _contact(request)
    return web.json_response(
        await request.app[AUDIT].checkpoint_list(
            contact,
            request.app[CLOCK].now(),
            after=_cursor(request),
            limit=_int(request, "limit", 200, minimum=1),
            request_id=request[REQUEST_ID],
        )
    )


async def get_continuity(request: web.Request) -> web.Response:
    """``GET /v1/directory/continuity``: the continuity report, for auditors (their jurisdiction)."""
    contact = _contact(request)
    jurisdiction = request.query.get("jurisdiction") or None
    language = reader_language(request)
    report = await request.app[AUDIT].continuity(
        contact,
        request.app[CLOCK].now(),
        jurisdiction=jurisdiction,
        request_id=request[REQUEST_ID],
        language=language,
    )
    return in_language(web.json_response(report), language)
