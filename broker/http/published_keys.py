"""The broker's public keys for each purpose, for anyone who verifies what the broker signed.

- ``/.well-known/jwks.json`` (``oauth.py``): access-token keys, a JWK Set;
- ``/v1/keys/log``: the audit log's checkpoint keys, each as base64 and as a C2SP signed-note
  verifier key (``origin+hexid+base64``), retired ones too (old checkpoints stay verifiable);
- ``/v1/keys/webhooks``: the ``whpk_`` keys (Standard Webhooks) that sign ``v1a`` webhooks.

Public keys only, no authentication, cacheable for five minutes. A verifier still pins a key it
obtained out of band (at enrolment): a compromised host could serve other keys here.
"""

from __future__ import annotations

from aiohttp import web

from broker.http.keys import PURPOSE_KEYS

CACHE = {"Cache-Control": "max-age=300"}


async def log_keys(request: web.Request) -> web.Response:
    return web.json_response(request.app[PURPOSE_KEYS].published_log(), headers=CACHE)


async def webhook_keys(request: web.Request) -> web.Response:
    return web.json_response(request.app[PURPOSE_KEYS].published_webhooks(), headers=CACHE)
