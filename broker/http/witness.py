"""The witness this broker runs for its peers' logs (c2sp.org/tlog-witness) and its key.

``POST /v1/witness/add-checkpoint``: the specification's body and answers (the cosignature
lines; 409 ``text/x.tlog.size`` with the size cosigned last; 404, 403, 400, 422 and a fork's
409 as problem+json). No authentication beyond the checkpoint's signature, as specified — except that
under mutual TLS (``server.client_ca``) the client certificate must be one the file of the
peer whose log it is pins (``tls_client_sha256``), else the one 401.
``GET /v1/keys/witness``: the name and ``cosignature/v1`` verifier key it cosigns with.
"""

from __future__ import annotations

import base64

from aiohttp import web

from broker.audit.tlog_witness import MAX_BODY, SIZE_TYPE
from broker.errors import CheckpointConflict, CheckpointRequestInvalid
from broker.http.keys import CLOCK, SETTINGS, WITNESS
from broker.http.middleware import REQUEST_ID
from broker.http.tls import require_client_certificate

CACHE = {"Cache-Control": "max-age=300"}


async def add_checkpoint(request: web.Request) -> web.Response:
    certificate = require_client_certificate(request, request.app[SETTINGS])
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise CheckpointRequestInvalid("the request is too large")
    try:
        lines = await request.app[WITNESS].add_checkpoint(
            body, request.app[CLOCK].now(), request[REQUEST_ID], certificate
        )
    except CheckpointConflict as e:
        return web.Response(status=409, text=f"{e.size}\n", content_type=SIZE_TYPE)
    return web.Response(text=lines, content_type="text/plain", charset="utf-8")


async def witness_key(request: web.Request) -> web.Response:
    witness = request.app[WITNESS]
    public = witness.key.public_key().public_bytes_raw()
    return web.json_response(
        {
            "name": witness.name,
            "vkey": witness.vkey,
            "public_key": base64.b64encode(public).decode(),
        },
        headers=CACHE,
    )
