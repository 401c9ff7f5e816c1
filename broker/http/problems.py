"""RFC 9457 problem details: the one place where error codes meet HTTP statuses.

Every error answer is ``application/problem+json`` with a stable ``type`` built from the error
code. Unexpected exceptions become a bare 500 with the request id; the traceback goes to the
log, never to the client.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broker.errors import LiaisonError

PROBLEM_BASE = "https://liaison.invalid/problems/"
CONTENT_TYPE = "application/problem+json"

STATUS: dict[str, int] = {
    "bad_request": 400,
    "authentication_failed": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "gone": 410,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "unknown_channel": 422,
    "unknown_jurisdiction": 422,
    "payload_invalid": 422,
    "supersedes_invalid": 422,
    "no_recipients": 422,
    "too_many_recipients": 422,
    "idempotency_conflict": 409,
    "routing_failed": 422,
    "too_many_streams": 429,
    "input_refused": 400,
    "nesting_too_deep": 400,
    "number_out_of_range": 400,
    "control_character": 400,
    "idempotency_key_invalid": 400,
    "header_too_large": 431,
    "store_unavailable": 503,
    "store_error": 503,
    "not_ready": 503,
    "internal_error": 500,
}

TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    request_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    status = status or STATUS.get(code, 500)
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request_id:
        body["instance"] = f"urn:liaison:request:{request_id}"
    body.update(extra or {})
    return web.Response(status=status, text=json.dumps(body), content_type=CONTENT_TYPE)


def from_error(error: LiaisonError, request_id: str | None) -> web.Response:
    """The client's view of an error: its code and safe message, never its ``detail``."""
    return problem(error.code, error.message, request_id=request_id, extra=error.extensions())


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def from_http(exc: web.HTTPException, request_id: str | None) -> web.Response:
    """aiohttp's own errors (no route, wrong method, body too large) as problem+json."""
    code = _HTTP_CODES.get(exc.status, "bad_request" if exc.status < 500 else "internal_error")
    detail = {
        404: "no such resource",
        405: "method not allowed here",
        413: "request body too large",
    }.get(exc.status, exc.reason)
    response = problem(code, detail, status=exc.status, request_id=request_id)
    if exc.status == 405 and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response
