"""OAuth 2.0 conventions around the token endpoint, so that stock OAuth clients work unpatched.

- Two grants take the same signed assertion: RFC 7523's jwt-bearer grant, and the
  client-credentials grant with the assertion as RFC 7523 §2.2 client authentication (OpenID
  Connect's ``private_key_jwt``, what OpenID-certified client libraries send).
- Refusals at ``/v1/token`` are RFC 6749 §5.2 errors: 400 with ``{"error", "error_description"}``
  — ``invalid_request`` (not a well-formed token request), ``unsupported_grant_type`` (another
  grant), and for every authentication failure ``invalid_grant`` (jwt-bearer) or
  ``invalid_client`` (client credentials), with one fixed description whatever the reason (the
  reason goes to the audit log only).
- ``/.well-known/oauth-authorization-server`` is the RFC 8414 metadata; ``/.well-known/jwks.json``
  publishes the access-token keys (RFC 7517), the signing one and those in overlap, so a
  resource server can verify access tokens.
- Every 401 elsewhere carries ``WWW-Authenticate: Bearer`` (RFC 6750 §3, RFC 9110 §11.6.1).
"""

from __future__ import annotations

from aiohttp import web

from broker.crypto.tokens import public_jwk
from broker.errors import AuthenticationFailed, TokenRequestInvalid
from broker.http.keys import SETTINGS, TOKENS
from broker.service.tokens import CLIENT_CREDENTIALS, GRANT_TYPE

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1
DESCRIPTIONS = {
    "invalid_request": "the token request is not a well-formed jwt-bearer or client-credentials grant",
    "unsupported_grant_type": f"the grant types are {GRANT_TYPE} and {CLIENT_CREDENTIALS}",
    "invalid_grant": "the assertion was not accepted",
    "invalid_client": "the client assertion was not accepted",
}
REALM = 'Bearer realm="liaison"'


def token_error(error: AuthenticationFailed, *, as_client: bool = False) -> web.Response:
    """The RFC 6749 §5.2 answer for a refused token request. A refused client assertion is
    ``invalid_client`` with 400, not 401: the client did not authenticate with a header."""
    refused = "invalid_client" if as_client else "invalid_grant"
    code = error.code if isinstance(error, TokenRequestInvalid) else refused
    return web.json_response(
        {"error": code, "error_description": DESCRIPTIONS[code]}, status=400, headers=NO_STORE
    )


def challenge(presented_bearer: bool) -> str:
    """The WWW-Authenticate value of a 401: ``invalid_token`` when a bearer token was shown."""
    return f'{REALM}, error="invalid_token"' if presented_bearer else REALM


async def metadata(request: web.Request) -> web.Response:
    """RFC 8414 authorization-server metadata, from the configured public URL (never Host)."""
    issuer = request.app[SETTINGS].public_url
    return web.json_response(
        {
            "issuer": issuer,
            "token_endpoint": f"{issuer}/v1/token",
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "grant_types_supported": [GRANT_TYPE, CLIENT_CREDENTIALS],
            # none: the jwt-bearer grant's assertion is the grant itself
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "response_types_supported": [],
            "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
            "service_documentation": f"{issuer}/openapi.json",
        }
    )


async def jwks(request: web.Request) -> web.Response:
    """The access-token keys as a JWK Set (RFC 7517; OKP Ed25519 per RFC 8037): the signing key
    first, then every key still in overlap (its tokens are accepted until it is removed)."""
    keys = request.app[TOKENS].keys
    signing = public_jwk(keys.private.public_key(), keys.kid)
    others = [public_jwk(key, kid) for kid, key in keys.verifying.items() if kid != keys.kid]
    return web.json_response({"keys": [signing, *others]}, headers={"Cache-Control": "max-age=300"})
