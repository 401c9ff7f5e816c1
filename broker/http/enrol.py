"""``POST /v1/enrol``: the enrolment page sends a one-time code and the public keys it made.

Unauthenticated on purpose: the code is the credential. Every bad code gets the same 401
(unknown, used or expired alike) and refusals are rate-limited (429, ``service/enrolment.py``).
Only public keys arrive here; the private keys never leave the official's device.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from broker.errors import NoticeInvalid
from broker.http.json_body import json_response, read_json
from broker.http.keys import CLOCK, ENROLMENT, STATE
from broker.http.middleware import REQUEST_ID
from broker.http.notices import source
from broker.policy.payload import Violation

MAX_CODE_CHARS = 64


async def post_enrol(request: web.Request) -> web.Response:
    body = await _body(request)
    code = body.get("code")
    if not isinstance(code, str) or not 1 <= len(code) <= MAX_CODE_CHARS:
        raise NoticeInvalid([Violation("/code", f"a string of 1 to {MAX_CODE_CHARS} characters")])
    answer = await request.app[ENROLMENT].submit(
        request.app[STATE].view.directory,
        code,
        _public_key(body, "signing_key"),
        _public_key(body, "encryption_key"),
        source=source(request),
        now=request.app[CLOCK].now(),
        request_id=request[REQUEST_ID],
    )
    return json_response(answer, status=201, headers={"Cache-Control": "no-store"})


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request, "enrolment is posted as application/json")
    if not isinstance(body, dict):
        raise NoticeInvalid([Violation("", "must be a JSON object")])
    return body


def _public_key(body: dict[str, Any], name: str) -> bytes:
    """A raw 32-byte public key, base64 in the request."""
    value = body.get(name)
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise NoticeInvalid([Violation(f"/{name}", "a 32-byte public key in base64")])
    return raw
