"""JSON bodies: a request's read as the API reads them, and responses serialized by orjson
(several times faster than ``json.dumps``).

The bytes differ from ``json.dumps``'s (no spaces, UTF-8 rather than ``\\u`` escapes) but read
back as the same document. What orjson cannot serialize faithfully — a lone surrogate (a member
name a client sent can carry one into a refusal's pointer), an integer beyond 64 bits, a key
that is not a string, a float that is not finite — goes to ``json.dumps`` as before, so no
answer turns into a 500 (tests/unit/test_json_fast.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from broker.errors import NoticeInvalid, UnsupportedMediaType
from broker.http.keys import SETTINGS
from broker.input import check_json_depth, check_no_nul
from broker.policy.payload import Violation


def dumps(data: Any) -> bytes:
    """``data`` as JSON bytes: orjson's, or ``json.dumps``'s when orjson would differ or fail."""
    try:
        encoded = orjson.dumps(data)
    except TypeError:  # lone surrogates, integers beyond 64 bits, non-string keys
        return json.dumps(data).encode()
    if b"null" in encoded and _has_non_finite(data):  # orjson writes NaN and Infinity as null
        return json.dumps(data).encode()
    return encoded


def _has_non_finite(data: Any) -> bool:
    if isinstance(data, float):
        return not math.isfinite(data)
    if isinstance(data, dict):
        return any(_has_non_finite(v) for v in data.values())
    if isinstance(data, list | tuple):
        return any(_has_non_finite(v) for v in data)
    return False


def json_response(
    data: Any,
    *,
    status: int = 200,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """As ``web.json_response``, with the same ``Content-Type`` (``; charset=utf-8``)."""
    return web.Response(
        body=dumps(data), status=status, content_type=content_type, charset="utf-8", headers=headers
    )


async def read_json(request: web.Request, not_json: str) -> Any:
    """A posted JSON document: ``application/json`` (else a 415 saying ``not_json``),
    nested no deeper than ``limits.max_json_depth``, parsed, and free of NUL characters."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(not_json)
    raw = await request.read()
    check_json_depth(raw, request.app[SETTINGS].limits.max_json_depth)
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise NoticeInvalid([Violation("", "not valid JSON")]) from e
    check_no_nul(body)
    return body
