"""Stock OAuth clients meet /v1/token without patches: authlib's AssertionSession gets a token
and uses it, refusals are RFC 6749 §5.2 errors it understands, the RFC 8414 metadata points to a
JWKS with which a JOSE library that is not ours (joserfc) verifies an issued token, and the
RFC 9068 conventions hold (client_id, typ variants, the scheme in any case)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from authlib.integrations.requests_client import AssertionSession
from authlib.oauth2.base import OAuth2Error
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet, OKPKey

from broker.crypto.keys import read_private_key
from tests.integration.intake_support import Broker, running_broker

CONTACT = "mk-kumanovo-pcve"
# joserfc warns that RFC 9864 deprecates the alg name "EdDSA" for "Ed25519"; the broker speaks
# "EdDSA" (PyJWT has no "Ed25519" name yet), so the warning is expected here, not an error.
pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def authlib_session(broker: Broker, key_file: str, contact: str) -> AssertionSession:
    """authlib's own jwt-bearer client, configured only with what any client must know: the
    token endpoint, who it is, its key and key id, and an assertion lifetime within the broker's
    documented 300-second cap (authlib's default is an hour)."""
    pair = read_private_key(broker.data / "keys" / key_file)
    key = OKPKey.import_key((broker.data / "keys" / key_file).read_bytes())
    return AssertionSession(
        token_endpoint=f"{broker.url}/v1/token",
        issuer=contact,
        subject=contact,
        audience=f"{broker.url}/v1/token",
        key=key,
        header={"alg": "EdDSA", "kid": pair.key_id(contact)},
        expires_in=300,
    )


async def test_authlib_assertion_session_gets_a_token_and_reads_the_inbox(broker: Broker) -> None:
    session = authlib_session(broker, f"{CONTACT}.pem", CONTACT)

    def use() -> tuple[int, dict[str, Any]]:
        response = session.get(f"{broker.url}/v1/inbox")  # fetches the token first, by itself
        return response.status_code, response.json()

    status, page = await asyncio.to_thread(use)
    assert status == 200 and "items" in page
    token = session.token
    assert token["token_type"] == "Bearer" and token["expires_in"] == 900
    # Again from scratch: a fresh assertion (no jti: authlib sends none) buys a fresh token.
    session.token = None
    status, _ = await asyncio.to_thread(use)
    assert status == 200 and session.token["access_token"] != token["access_token"]


async def test_a_refusal_is_an_oauth_error_authlib_raises(broker: Broker) -> None:
    # The mayor's key, presented as the focal point's: refused, as invalid_grant.
    session = authlib_session(broker, "mk-kumanovo-mayor.pem", CONTACT)
    session.default_timeout = 10
    with pytest.raises(OAuth2Error) as refused:
        await asyncio.to_thread(session.refresh_token)
    assert refused.value.error == "invalid_grant"
    async with aiohttp.ClientSession() as http:
        for data, error in (
            ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
            ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, "invalid_request"),
        ):
            async with http.post(f"{broker.url}/v1/token", data=data) as response:
                assert response.status == 400
                assert response.headers["Cache-Control"] == "no-store"
                assert (await response.json())["error"] == error
        async with http.post(
            f"{broker.url}/v1/token", data=b"x", headers={"Content-Type": "text/plain"}
        ) as response:
            assert (response.status, (await response.json())["error"]) == (400, "invalid_request")


async def test_an_assertion_without_jti_is_still_single_use(broker: Broker) -> None:
    """RFC 7523 makes jti optional; without one, the assertion itself is the one-time id."""
    pair = read_private_key(broker.data / "keys" / f"{CONTACT}.pem")
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": CONTACT, "sub": CONTACT, "aud": broker.url, "iat": now, "exp": now + 120},
        pair.private,  # type: ignore[arg-type]
        algorithm="EdDSA",
        headers={"kid": pair.key_id(CONTACT)},
    )
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{broker.url}/v1/token", data=grant) as response:
            assert response.status == 200
        async with http.post(f"{broker.url}/v1/token", data=grant) as response:
            assert (response.status, (await response.json())["error"]) == (400, "invalid_grant")


async def test_metadata_and_jwks_let_another_jose_library_verify_a_token(broker: Broker) -> None:
    status, meta = await get_json(f"{broker.url}/.well-known/oauth-authorization-server")
    assert status == 200
    assert meta["issuer"] == broker.url and meta["token_endpoint"] == f"{broker.url}/v1/token"
    assert meta["grant_types_supported"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    status, jwks = await get_json(meta["jwks_uri"])
    assert status == 200 and [k["kty"] for k in jwks["keys"]] == ["OKP"]
    session = authlib_session(broker, f"{CONTACT}.pem", CONTACT)
    token = (await asyncio.to_thread(session.refresh_token))["access_token"]
    verified = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["EdDSA"])
    claims = verified.claims
    jose_jwt.JWTClaimsRegistry(exp={"essential": True}).validate(claims)
    assert claims["sub"] == CONTACT and claims["client_id"] == CONTACT
    assert claims["iss"] == broker.url
    header = json.loads(jwt.utils.base64url_decode(token.split(".")[0]))
    assert header["typ"] == "at+jwt" and header["kid"] == jwks["keys"][0]["kid"]


async def test_typ_variants_and_the_scheme_in_any_case(broker: Broker) -> None:
    session = authlib_session(broker, f"{CONTACT}.pem", CONTACT)
    token = (await asyncio.to_thread(session.refresh_token))["access_token"]
    broker_key = broker.purpose_key("tokens")  # the key that signs access tokens
    claims = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    for typ in ("application/at+jwt", "AT+JWT"):
        variant = jwt.encode(
            claims,
            broker_key.private,  # type: ignore[arg-type]
            algorithm="EdDSA",
            headers={"typ": typ, "kid": kid},
        )
        status, _ = await get_json(
            f"{broker.url}/v1/inbox", headers={"Authorization": f"Bearer {variant}"}
        )
        assert status == 200, typ
    for scheme in ("bearer", "BEARER"):
        status, _ = await get_json(
            f"{broker.url}/v1/inbox", headers={"Authorization": f"{scheme} {token}"}
        )
        assert status == 200, scheme
    status, _ = await get_json(
        f"{broker.url}/v1/inbox", headers={"Authorization": f"Basic {token}"}
    )
    assert status == 401
