"""JSON Web Tokens: contact assertions in (RFC 7523 style), access tokens out (RFC 9068 style).

Verification follows RFC 8725:
- a fixed algorithm list (EdDSA for our own tokens), never the token's word for it: ``none`` and
  HMAC tokens keyed with a public key are refused by construction;
- ``typ`` checked (``at+jwt`` for access tokens), ``aud`` and ``iss`` checked, ``exp`` required,
  ``nbf``/``iat`` honoured with a small leeway;
- a size cap and a nesting-depth cap before any parsing;
- ``exp``, ``nbf`` and ``iat`` are finite numbers (never NaN, infinite or boolean) or refused;
- time comes from the caller (``now``), so tests can move it; PyJWT's own clock is not used.
Any failure raises ``TokenInvalid`` with a reason for the audit log, never for the caller.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.errors import NestingTooDeep
from broker.input import check_json_depth

MAX_TOKEN_BYTES = 4096
MAX_TOKEN_DEPTH = 8  # nesting levels of a token's header or claims; ours and OIDC's use 2 or 3
LEEWAY_SECONDS = 30
ACCESS_TYP = "at+jwt"
# RFC 9068 §4 / RFC 7515 §4.1.9: "at+jwt" or "application/at+jwt", compared without case.
ACCESS_TYPS = frozenset({"at+jwt", "application/at+jwt"})
OUR_ALGORITHMS = ["EdDSA"]


class TokenInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unverified_header(token: str) -> dict[str, Any]:
    """The header, after the size cap; only to pick the key, never trusted for the algorithm."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenInvalid("token too large")
    _check_depth(token)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"malformed token: {e}") from e
    return dict(header)


def _check_depth(token: str) -> None:
    """Refuse a header or claims set nested deeper than ``MAX_TOKEN_DEPTH``, before PyJWT parses."""
    for segment in token.split(".")[:2]:
        try:
            decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError):
            continue  # not base64url: PyJWT refuses it as malformed
        try:
            check_json_depth(decoded, MAX_TOKEN_DEPTH)
        except NestingTooDeep as e:
            raise TokenInvalid("token JSON nested too deep") from e


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def unverified_claims(token: str) -> dict[str, Any]:
    """Claims without verification: only to choose between our contacts and an external issuer."""
    unverified_header(token)
    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"malformed token: {e}") from e


def _decode(
    token: str,
    key: Any,
    *,
    algorithms: Sequence[str],
    audience: str,
    issuer: str | None,
    required: Sequence[str],
) -> dict[str, Any]:
    unverified_header(token)
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=list(algorithms),
            audience=audience,
            issuer=issuer,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": list(required),
            },
        )
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"token rejected: {type(e).__name__}: {e}") from e
    return dict(claims)


def _check_times(claims: dict[str, Any], now: datetime, *, max_ahead: int | None) -> None:
    t = now.timestamp()
    exp = claims.get("exp")
    if not _finite(exp):
        raise TokenInvalid("exp missing or not a finite number")
    if exp <= t - LEEWAY_SECONDS:
        raise TokenInvalid("token expired")
    if max_ahead is not None and exp > t + max_ahead + LEEWAY_SECONDS:
        raise TokenInvalid("exp too far in the future")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if not _finite(value):
            raise TokenInvalid(f"{name} is not a finite number")
        if value > t + LEEWAY_SECONDS:
            raise TokenInvalid(f"{name} is in the future")


def verify_assertion(
    token: str, public_key: bytes, *, audience: str, now: datetime, max_lifetime: int
) -> dict[str, Any]:
    """A contact's signed assertion: iss = sub = the contact, aud = this broker. ``jti`` is
    optional (RFC 7523 §3); when present it is 8 to 128 characters. The caller makes the assertion
    single-use (its jti, or without one its own digest, is recorded like a request nonce)."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    claims = _decode(
        token,
        key,
        algorithms=OUR_ALGORITHMS,
        audience=audience,
        issuer=None,
        required=["iss", "sub", "aud", "exp"],
    )
    if claims["iss"] != claims["sub"]:
        raise TokenInvalid("iss and sub differ")
    if "jti" in claims and (
        not isinstance(claims["jti"], str) or not 8 <= len(claims["jti"]) <= 128
    ):
        raise TokenInvalid("jti must be 8 to 128 characters")
    _check_times(claims, now, max_ahead=max_lifetime)
    return claims


def make_assertion(
    private: Ed25519PrivateKey,
    *,
    contact: str,
    kid: str,
    audience: str,
    now: datetime,
    lifetime: int = 120,
) -> str:
    """What a recipient client sends to /v1/token."""
    t = int(now.timestamp())
    claims = {
        "iss": contact,
        "sub": contact,
        "aud": audience,
        "iat": t,
        "exp": t + lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid, "typ": "JWT"})


def issue_access_token(
    private: Ed25519PrivateKey,
    *,
    kid: str,
    issuer: str,
    subject: str,
    now: datetime,
    lifetime: int,
    proof: str,
) -> str:
    """An access token for ``subject``; ``proof`` names what proved it (``key:<id>`` of the
    contact's Ed25519 key, or ``oidc``), so every later request can check that proof still holds."""
    t = int(now.timestamp())
    claims = {
        PROOF_CLAIM: proof,
        "iss": issuer,
        "aud": issuer,
        "sub": subject,
        # RFC 9068 §2.2: the client the token was issued to; a contact's own client is the
        # contact (the assertion's iss), so it names the same contact as sub.
        "client_id": subject,
        "iat": t,
        "nbf": t,
        "exp": t + lifetime,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid, "typ": ACCESS_TYP})


PROOF_CLAIM = "liaison_proof"


def verify_access_token(
    token: str, public: Ed25519PublicKey, *, issuer: str, now: datetime, max_lifetime: int
) -> dict[str, Any]:
    header = unverified_header(token)
    if str(header.get("typ", "")).lower() not in ACCESS_TYPS:
        raise TokenInvalid("not an access token (typ)")
    claims = _decode(
        token,
        public,
        algorithms=OUR_ALGORITHMS,
        audience=issuer,
        issuer=issuer,
        required=["iss", "aud", "sub", "exp", "iat", PROOF_CLAIM],
    )
    _check_times(claims, now, max_ahead=max_lifetime)
    return claims


def verify_external(
    token: str,
    jwks: jwt.PyJWKSet,
    *,
    issuer: str,
    audience: str,
    algorithms: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    """An ID or access token from a trusted external OIDC issuer, with keys from its JWKS."""
    kid = unverified_header(token).get("kid")
    try:
        key = jwks[str(kid)]
    except KeyError as e:
        raise TokenInvalid("unknown key id for the external issuer") from e
    claims = _decode(
        token,
        key,
        algorithms=algorithms,
        audience=audience,
        issuer=issuer,
        required=["iss", "aud", "sub", "exp"],
    )
    _check_times(claims, now, max_ahead=None)
    return claims


def load_jwks(text: str) -> jwt.PyJWKSet:
    try:
        check_json_depth(text.encode(), MAX_TOKEN_DEPTH)
        return jwt.PyJWKSet.from_json(text)
    except NestingTooDeep as e:
        raise TokenInvalid("unusable JWKS: nested too deep") from e
    except (jwt.PyJWTError, ValueError) as e:
        raise TokenInvalid(f"unusable JWKS: {e}") from e


def public_jwk(public: Ed25519PublicKey, kid: str) -> dict[str, str]:
    """An Ed25519 verification key as a JWK (RFC 7517, OKP per RFC 8037), for a JWKS."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    }
