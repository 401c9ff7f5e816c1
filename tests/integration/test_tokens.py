"""POST /v1/token and bearer tokens: RFC 8725 attack cases. Every refused assertion gets the same
RFC 6749 §5.2 answer (400 ``invalid_grant``); every refused bearer token the same 401 with its
RFC 6750 challenge."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto.keys import read_private_key
from broker.crypto.tokens import make_assertion
from tests.integration.intake_support import Broker, running_broker

CONTACT = "mk-kumanovo-pcve"


@pytest.fixture
async def broker(demo_dir: Path, tmp_path: Path) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, f"sqlite+aiosqlite:///{tmp_path / 't.db'}") as running:
        yield running


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def exchange(
    broker: Broker, assertion: str, content_type: str = "json"
) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        if content_type == "form":
            request = http.post(
                f"{broker.url}/v1/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": assertion,
                },
            )
        else:
            request = http.post(f"{broker.url}/v1/token", json={"assertion": assertion})
        async with request as response:
            return response.status, await response.json(content_type=None)


async def inbox_with(broker: Broker, token: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{broker.url}/v1/inbox", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status


def claims(broker: Broker, **changes: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    base = {
        "iss": CONTACT,
        "sub": CONTACT,
        "aud": broker.url,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(12),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def test_a_valid_assertion_gets_a_short_lived_token_used_once(broker: Broker) -> None:
    pair = read_private_key(broker.data / "keys" / f"{CONTACT}.pem")
    token = jwt.encode(
        claims(broker), pair.private, algorithm="EdDSA", headers={"kid": pair.key_id(CONTACT)}
    )
    status, body = await exchange(broker, token, "form")
    assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert await inbox_with(broker, body["access_token"]) == 200
    status, body = await exchange(broker, token)  # the same jti again
    assert (status, body["error"]) == (400, "invalid_grant")


INVALID_GRANT = (
    400,
    {"error": "invalid_grant", "error_description": "the assertion was not accepted"},
)


async def test_attack_cases_all_get_the_same_invalid_grant(broker: Broker) -> None:
    pair = read_private_key(broker.data / "keys" / f"{CONTACT}.pem")
    kid = pair.key_id(CONTACT)
    key: Any = pair.private
    now = int(datetime.now(UTC).timestamp())
    public_raw = pair.public_raw
    header_none = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    cases = {
        "alg none": f"{header_none}.{b64url(json.dumps(claims(broker)).encode())}.",
        "HMAC keyed with the public key": jwt.encode(
            claims(broker), public_raw, algorithm="HS256", headers={"kid": kid}
        ),
        "expired": jwt.encode(
            claims(broker, exp=now - 600, iat=now - 700),
            key,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "not yet valid": jwt.encode(
            claims(broker, nbf=now + 600), key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "exp too far ahead": jwt.encode(
            claims(broker, exp=now + 3600), key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "wrong audience": jwt.encode(
            claims(broker, aud="https://other.example"),
            key,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "wrong issuer": jwt.encode(
            claims(broker, iss="mk-kumanovo-mayor"), key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "another contact's name": jwt.encode(
            claims(broker, iss="mk-kumanovo-mayor", sub="mk-kumanovo-mayor"),
            key,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "unknown key": jwt.encode(
            claims(broker),
            Ed25519PrivateKey.generate(),
            algorithm="EdDSA",
            headers={"kid": "nobody.ed25519.000000000000"},
        ),
        "wrong key for the kid": jwt.encode(
            claims(broker), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
        ),
        "an agency's key": jwt.encode(
            claims(broker, iss="mk-mvr", sub="mk-mvr"),
            read_private_key(broker.data / "keys" / "mk-mvr.pem").private,  # type: ignore[arg-type]
            algorithm="EdDSA",
            headers={"kid": read_private_key(broker.data / "keys" / "mk-mvr.pem").key_id("mk-mvr")},
        ),
        "jti too short": jwt.encode(
            claims(broker, jti="abc"), key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "oversized": jwt.encode(
            claims(broker, padding="x" * 5000), key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "garbage": "not.a.jwt",
    }
    for name, token in cases.items():
        assert await exchange(broker, token) == INVALID_GRANT, name


async def test_bearer_token_attacks_get_401(broker: Broker) -> None:
    pair = read_private_key(broker.data / "keys" / f"{CONTACT}.pem")
    good = make_assertion(
        pair.private,
        contact=CONTACT,
        kid=pair.key_id(CONTACT),
        audience=broker.url,  # type: ignore[arg-type]
        now=datetime.now(UTC),
    )
    token = (await exchange(broker, good))[1]["access_token"]
    header, _, signature = token.split(".")
    forged_payload = b64url(
        json.dumps(
            {**jwt.decode(token, options={"verify_signature": False}), "sub": "mk-kumanovo-mayor"}
        ).encode()
    )
    broker_key = broker.purpose_key("tokens")
    wrong_typ = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        broker_key.private,  # type: ignore[arg-type]
        algorithm="EdDSA",
        headers={"typ": "JWT"},
    )
    for bad in (f"{header}.{forged_payload}.{signature}", wrong_typ, good, token + "x", ""):
        assert await inbox_with(broker, bad) == 401
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{broker.url}/v1/inbox") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="liaison"'
        headers = {"Authorization": f"Bearer {token}x"}
        async with http.get(f"{broker.url}/v1/inbox", headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == (
                'Bearer realm="liaison", error="invalid_token"'
            )


async def test_a_trusted_oidc_issuer_can_vouch_for_a_contact(
    demo_dir: Path, tmp_path: Path
) -> None:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(issuer_key.public_key()))
    (demo_dir / "jwks.json").write_text(
        json.dumps({"keys": [{**jwk, "kid": "idp-1", "use": "sig", "alg": "ES256"}]})
    )
    env = {
        "LIAISON_OIDC_ISSUER": "https://idp.example",
        "LIAISON_OIDC_AUDIENCE": "liaison",
        "LIAISON_OIDC_JWKS_FILE": "jwks.json",
    }
    async with running_broker(
        demo_dir, f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", env=env
    ) as broker:
        now = datetime.now(UTC)
        base = {
            "iss": "https://idp.example",
            "aud": "liaison",
            "sub": "u-123",
            "liaison_contact": CONTACT,
            "exp": int((now + timedelta(minutes=5)).timestamp()),
        }
        status, body = await exchange(
            broker, jwt.encode(base, issuer_key, algorithm="ES256", headers={"kid": "idp-1"})
        )
        assert status == 200 and body["contact"] == CONTACT
        for bad in (
            {**base, "aud": "other"},
            {**base, "liaison_contact": "nobody"},
            {**base, "exp": int(now.timestamp()) - 600},
        ):
            status, _ = await exchange(
                broker, jwt.encode(bad, issuer_key, algorithm="ES256", headers={"kid": "idp-1"})
            )
            assert status == 400
        other = ec.generate_private_key(ec.SECP256R1())
        answer = await exchange(
            broker, jwt.encode(base, other, algorithm="ES256", headers={"kid": "idp-1"})
        )
        assert answer == INVALID_GRANT


async def test_the_issuer_jwks_can_come_from_a_url(demo_dir: Path, tmp_path: Path) -> None:
    from aiohttp import web

    from tests.support import LoopbackServer

    issuer_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(issuer_key.public_key()))

    async def serve_jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [{**jwk, "kid": "idp-2", "alg": "ES256"}]})

    jwks_app = web.Application()
    jwks_app.router.add_get("/jwks", serve_jwks)
    async with LoopbackServer(jwks_app) as idp:
        env = {
            "LIAISON_OIDC_ISSUER": "https://idp.example",
            "LIAISON_OIDC_AUDIENCE": "liaison",
            "LIAISON_OIDC_JWKS_URL": f"{idp.url}/jwks",
        }
        async with running_broker(
            demo_dir, f"sqlite+aiosqlite:///{tmp_path / 'u.db'}", env=env
        ) as broker:
            claims = {
                "iss": "https://idp.example",
                "aud": "liaison",
                "sub": "u-9",
                "liaison_contact": CONTACT,
                "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp()),
            }
            status, body = await exchange(
                broker, jwt.encode(claims, issuer_key, algorithm="ES256", headers={"kid": "idp-2"})
            )
            assert status == 200 and body["contact"] == CONTACT
            stranger = ec.generate_private_key(ec.SECP256R1())
            status, _ = await exchange(
                broker, jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "idp-2"})
            )
            assert status == 400
    env["LIAISON_OIDC_JWKS_URL"] = (
        "http://127.0.0.1:9/jwks"  # unreachable: no keys, so no external tokens
    )
    async with running_broker(
        demo_dir, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}", env=env
    ) as broker:
        answer = await exchange(
            broker, jwt.encode(claims, issuer_key, algorithm="ES256", headers={"kid": "idp-2"})
        )
        assert answer == INVALID_GRANT
