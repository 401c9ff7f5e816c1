"""Stock OAuth clients meet /v1/token without patches: authlib's AssertionSession gets a token
and uses it, refusals are RFC 6749 §5.2 errors it understands; idpyoidc (the IdentityPython
successor of the OpenID-certified oidcrp), given the broker's RFC 8414 metadata, gets a token
with private_key_jwt client credentials; the metadata points to a JWKS with which a JOSE
library that is not ours (joserfc) verifies an issued token, and the RFC 9068 conventions hold
(client_id, typ variants, the scheme in any case)."""

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
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptojwt.jwk.okp import OKPKey as CryptoJwtOKPKey
from cryptojwt.key_jar import KeyJar
from idpyoidc.client.oauth2 import Client as IdpyClient
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


async def idpy_client(broker: Broker, key_file: str, contact: str) -> IdpyClient:
    """idpyoidc's OAuth 2.0 client as its documentation sets one up: the client id, the client's
    own key in its key jar, private_key_jwt as its authentication, and the server's metadata,
    from which it takes the token endpoint and the signing algorithm. Its requests ask for an
    assertion lifetime within the broker's documented 300-second cap (idpyoidc's default is 600),
    as authlib's session above does. The metadata is the broker's RFC 8414 document given as the client's
    ``provider_info``: idpyoidc's own discovery refuses an empty ``response_types_supported``,
    and the broker, with no authorization endpoint, has no response type to list."""
    status, metadata = await get_json(f"{broker.url}/.well-known/oauth-authorization-server")
    assert status == 200
    pair = read_private_key(broker.data / "keys" / key_file)
    private = load_pem_private_key((broker.data / "keys" / key_file).read_bytes(), None)
    keyjar = KeyJar()
    keyjar.add_keys("", [CryptoJwtOKPKey(priv_key=private, kid=pair.key_id(contact), use="sig")])
    services = {
        "client_credentials": {
            "class": "idpyoidc.client.oauth2.client_credentials.CCAccessTokenRequest"
        },
    }
    config = {
        "client_id": contact,
        "provider_info": metadata,
        "client_authn_methods": ["private_key_jwt"],
    }
    # In a thread: the client fetches the metadata's jwks_uri as it starts, and the broker
    # answers on this test's event loop.
    return await asyncio.to_thread(IdpyClient, keyjar=keyjar, config=config, services=services)


async def test_an_openid_certified_client_library_gets_a_token_with_private_key_jwt(
    broker: Broker,
) -> None:
    client = await idpy_client(broker, f"{CONTACT}.pem", CONTACT)
    answer = await asyncio.to_thread(
        client.do_request, "client_credentials", authn_method="private_key_jwt", lifetime=300
    )
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 900, answer.to_dict()
    status, page = await get_json(
        f"{broker.url}/v1/inbox", headers={"Authorization": f"Bearer {answer['access_token']}"}
    )
    assert status == 200 and "items" in page
    # A second request signs a fresh assertion (its own jti) and buys a fresh token.
    again = await asyncio.to_thread(
        client.do_request, "client_credentials", authn_method="private_key_jwt", lifetime=300
    )
    assert again["access_token"] != answer["access_token"]


async def test_a_refused_client_assertion_is_invalid_client_for_the_certified_library(
    broker: Broker,
) -> None:
    # The mayor's key, presented by the focal point's client: the same one answer as any
    # refused client assertion, which the library reads as an RFC 6749 error response.
    client = await idpy_client(broker, "mk-kumanovo-mayor.pem", CONTACT)
    answer = await asyncio.to_thread(
        client.do_request, "client_credentials", authn_method="private_key_jwt", lifetime=300
    )
    assert answer.to_dict() == {
        "error": "invalid_client",
        "error_description": "the client assertion was not accepted",
        "status_code": 400,
    }


async def test_client_credentials_refusals_are_rfc_6749_errors(broker: Broker) -> None:
    pair = read_private_key(broker.data / "keys" / f"{CONTACT}.pem")
    now = int(time.time())
    claims = {"iss": CONTACT, "sub": CONTACT, "aud": f"{broker.url}/v1/token", "exp": now + 60}
    assertion = jwt.encode(
        {**claims, "jti": "c" * 16},
        pair.private,  # type: ignore[arg-type]
        algorithm="EdDSA",
        headers={"kid": pair.key_id(CONTACT)},
    )
    grant = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    cases = [
        ({**grant}, "invalid_request"),  # no client_assertion
        ({**grant, "client_assertion_type": "x", "client_assertion": assertion}, "invalid_request"),
        (
            {**grant, "client_assertion": assertion, "client_id": "mk-kumanovo-mayor"},
            "invalid_client",
        ),
        ({**grant, "client_assertion": assertion, "client_id": CONTACT}, None),
        ({**grant, "client_assertion": assertion}, "invalid_client"),  # the same one again
        ({"grant_type": "password", "assertion": assertion}, "unsupported_grant_type"),
    ]
    async with aiohttp.ClientSession() as http:
        for form, error in cases:
            async with http.post(f"{broker.url}/v1/token", data=form) as response:
                body = await response.json()
                if error is None:
                    assert response.status == 200 and body["contact"] == CONTACT
                else:
                    assert (response.status, body["error"]) == (400, error), form


async def test_a_refusal_is_an_oauth_error_authlib_raises(broker: Broker) -> None:
    # The mayor's key, presented as the focal point's: refused, as invalid_grant.
    session = authlib_session(broker, "mk-kumanovo-mayor.pem", CONTACT)
    session.default_timeout = 10
    with pytest.raises(OAuth2Error) as refused:
        await asyncio.to_thread(session.refresh_token)
    assert refused.value.error == "invalid_grant"
    async with aiohttp.ClientSession() as http:
        for data, error in (
            ({"grant_type": "password"}, "unsupported_grant_type"),
            ({"grant_type": "client_credentials"}, "invalid_request"),  # no client assertion
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
    assert meta["grant_types_supported"] == [
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "client_credentials",
    ]
    assert meta["token_endpoint_auth_methods_supported"] == ["none", "private_key_jwt"]
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
