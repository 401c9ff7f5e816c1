"""Request context and error translation.

Each request gets an id (``X-Request-Id`` echoed back, or a fresh one), bound into the structlog
context, and exactly one access log line. Errors leave as problem+json; nothing internal leaks.

Every answer but the web inbox's own files carries ``Cache-Control: no-store`` (problems too):
no proxy or browser cache keeps a ciphertext, a token or a status. A client that goes away
mid-answer (a closed stream) is a normal end, logged and counted as status 499
(``client_closed``), with no traceback. An authentication refusal that no service counted
(bearer tokens, missing certificates) is counted here, in summary (``service/refusals.py``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from broker.audit.events import AuditEvent
from broker.errors import AuthenticationFailed, LiaisonError, StoreUnavailable
from broker.http.keys import CLOCK, REFUSALS, STARTUP
from broker.http.oauth import challenge
from broker.http.problems import from_error, from_http, problem
from broker.input import check_identifier
from broker.logs import get_logger
from broker.metrics import REQUEST_SECONDS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_CLOSED = 499  # as nginx logs a client that closed the connection before the answer ended
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
        response.headers.setdefault("Cache-Control", "no-store")
        return response
    except ConnectionResetError:  # the client left, e.g. closed its stream: a normal end
        status = CLIENT_CLOSED
        return web.Response(status=CLIENT_CLOSED)  # never sent: aiohttp sees the closed socket
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
            **({"outcome": "client_closed"} if status == CLIENT_CLOSED else {}),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        structlog.contextvars.clear_contextvars()


def _refuse_control_characters(request: web.Request) -> None:
    """Ids in the path and values in the query reach the store: no NUL or control character."""
    check_identifier(request.path, "path")
    for name, value in request.query.items():
        check_identifier(name + value, "query")


PROBES = frozenset({"/healthz", "/readyz"})  # answered while the broker waits for its store


def _refuse_until_started(request: web.Request) -> None:
    """Until start-up has reached the store, every request but the probes gets 503."""
    startup = request.app.get(STARTUP)
    if startup is not None and not startup.ready and request.path not in PROBES:
        raise StoreUnavailable("the broker is starting", detail=startup.waiting_for)


async def _translated(
    request: web.Request, handler: Handler, request_id: str
) -> web.StreamResponse:
    try:
        _refuse_control_characters(request)
        _refuse_until_started(request)
        return await handler(request)
    except LiaisonError as e:
        # The reason (which check, never a secret) is for operators; the client gets the code only.
        log.info("request_refused", code=e.code, reason=e.detail)
        if isinstance(e, AuthenticationFailed) and not e.recorded:
            await count_refusal(request, e)
        response = from_error(e, request_id)
        if response.status == 401:  # RFC 9110 §11.6.1, RFC 6750 §3
            bearer = request.headers.get("Authorization", "")[:7].lower() == "bearer "
            response.headers["WWW-Authenticate"] = challenge(bearer)
        return response
    except ConnectionResetError:
        if _client_gone(request):  # only the client's own connection makes it a normal end
            raise
        log.exception("request_failed")
        return problem(
            "internal_error", "the broker could not complete this request", request_id=request_id
        )
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return from_http(e, request_id)
    except Exception:
        log.exception("request_failed")
        return problem(
            "internal_error", "the broker could not complete this request", request_id=request_id
        )


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def count_refusal(request: web.Request, error: AuthenticationFailed) -> None:
    refusals, clock = request.app.get(REFUSALS), request.app.get(CLOCK)
    if refusals is None or clock is None:  # the metrics listener counts nothing in the log
        return
    route = request.match_info.route.resource
    event = AuditEvent(
        at=clock.now(),
        actor="unknown",
        action="auth.refused",
        object=f"route:{route.canonical if route is not None else 'unmatched'}",
        outcome="refused",
        reason=error.code,
        details={"detail": error.detail or error.message},
        request=request[REQUEST_ID],
    )
    await refusals.refused(event, request.remote or "-", error)
