"""RFC 9457 problem details: the one place where error classes meet HTTP statuses.

Every error answer is ``application/problem+json`` with a stable ``type`` built from the error
code; the status comes from the error's class (``STATUS``). Unexpected exceptions become a bare
500 with the request id; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker.errors import (
    AuthenticationFailed,
    BadRequest,
    CheckpointInconsistent,
    ConfigError,
    Conflict,
    Forbidden,
    Gone,
    GrantTypeUnsupported,
    HeaderTooLarge,
    InputRefused,
    LiaisonError,
    NoRecipients,
    NotFound,
    NoticeInvalid,
    RoutingError,
    SourceError,
    StoreError,
    SupersedesInvalid,
    TokenRequestInvalid,
    TooManyAttempts,
    TooManyRecipients,
    TooManyStreams,
    TrustRefused,
    UnsupportedMediaType,
)
from broker.http.json_body import json_response

PROBLEM_BASE = "https://liaison.invalid/problems/"
CONTENT_TYPE = "application/problem+json"

# Keyed by class: an error's status is that of the most specific class of its MRO listed here.
# Errors the caller cannot have caused (configuration, source files, trust metadata) are 500.
STATUS: dict[type[LiaisonError], int] = {
    ConfigError: 500,
    SourceError: 500,
    TrustRefused: 500,
    BadRequest: 400,
    InputRefused: 400,
    HeaderTooLarge: 431,
    AuthenticationFailed: 401,
    TokenRequestInvalid: 400,
    GrantTypeUnsupported: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    UnsupportedMediaType: 415,
    NoticeInvalid: 422,
    CheckpointInconsistent: 422,
    SupersedesInvalid: 422,
    NoRecipients: 422,
    TooManyRecipients: 422,
    RoutingError: 422,
    TooManyStreams: 429,
    TooManyAttempts: 429,
    StoreError: 503,
}


def status_of(error: type[LiaisonError]) -> int:
    """The status of the most specific class in ``STATUS`` that ``error`` is; 500 for none."""
    return next((STATUS[c] for c in error.__mro__ if c in STATUS), 500)


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
    status: int = 500,
    request_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
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
    return json_response(body, status=status, content_type=CONTENT_TYPE)


def from_error(error: LiaisonError, request_id: str | None) -> web.Response:
    """The client's view of an error: its code and safe message, never its ``detail``."""
    return problem(
        error.code,
        error.message,
        status=status_of(type(error)),
        request_id=request_id,
        extra=error.extensions(),
    )


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
