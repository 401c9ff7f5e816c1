"""Request context and error translation.

Each request gets an id (``X-Request-Id`` echoed back, or a fresh one), bound into the structlog
context, and exactly one access log line. Errors leave as problem+json; nothing internal leaks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from broker.errors import LiaisonError
from broker.http.problems import from_error, from_http, problem
from broker.input import check_identifier
from broker.logs import get_logger
from broker.metrics import REQUEST_SECONDS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
log = get_logger("liaison.http")


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    if 8 <= len(given) <= 64 and given.replace("-", "").isalnum():
        return given
    return secrets.token_hex(8)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await _translated(request, handler, request_id)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as e:  # a redirect passes through: log and count its own status
        status = e.status
        raise
    finally:
        route = request.match_info.route.resource
        REQUEST_SECONDS.labels(
            request.method, route.canonical if route is not None else "unmatched", str(status)
        ).observe(time.perf_counter() - started)
        log.info(
            "request_handled",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        structlog.contextvars.clear_contextvars()


def _refuse_control_characters(request: web.Request) -> None:
    """Ids in the path and values in the query reach the store: no NUL or control character."""
    check_identifier(request.path, "path")
    for name, value in request.query.items():
        check_identifier(name + value, "query")


async def _translated(
    request: web.Request, handler: Handler, request_id: str
) -> web.StreamResponse:
    try:
        _refuse_control_characters(request)
        return await handler(request)
    except LiaisonError as e:
        # The reason (which check, never a secret) is for operators; the client gets the code only.
        log.info("request_refused", code=e.code, reason=e.detail)
        return from_error(e, request_id)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return from_http(e, request_id)
    except Exception:
        log.exception("request_failed")
        return problem(
            "internal_error", "the broker could not complete this request", request_id=request_id
        )
