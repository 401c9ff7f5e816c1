"""Access tokens for contacts: exchange a signed assertion (or a trusted OIDC token) for a token.

Invariants: an assertion is accepted only when signed by a usable Ed25519 key of the contact it
names (``iss`` = ``sub`` = the key's owner), addressed to this broker, short-lived, and used once
(its ``jti`` is recorded like a request nonce). Every refusal is the same ``AuthenticationFailed``.
A token names a contact and what proved it (the key, or the external issuer); every request that
bears it is checked against the directory as it is then: the contact still listed, the key still
usable, at least one assignment still running — a revoked key or an ended assignment ends the
token at once, not at its expiry. What the contact may read is decided by policy on each request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from broker.audit.events import AuditEvent
from broker.config import Settings
from broker.crypto.keys import Signer, Verifier
from broker.crypto.tokens import (
    PROOF_CLAIM,
    TokenInvalid,
    issue_access_token,
    load_jwks,
    unverified_claims,
    unverified_header,
    verify_access_token,
    verify_assertion,
    verify_external,
)
from broker.domain.directory import Directory, KeyType
from broker.errors import AuthenticationFailed, ConfigError, JwksUnavailable
from broker.logs import get_logger
from broker.service.ports import JwksFetcher
from broker.service.refusals import Refusals
from broker.store import Database, audit_repo
from broker.store import intake_repo as repo

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The same assertion as client authentication (RFC 7523 §2.2, OpenID Connect private_key_jwt),
# with the client-credentials grant: what OpenID-certified client libraries send.
CLIENT_CREDENTIALS = "client_credentials"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
log = get_logger("liaison.tokens")


@dataclass(frozen=True, slots=True)
class Bearer:
    """Who a valid access token speaks for, what proved it, and until when."""

    contact: str
    key: str | None  # the contact's Ed25519 key whose assertion obtained it; None: external issuer
    expires_at: datetime


def still_entitled(directory: Directory, bearer: Bearer, now: datetime) -> bool:
    """Does what the token was issued on still hold at ``now``? (Pure: no I/O.)"""
    if bearer.expires_at <= now or bearer.contact not in directory.contacts:
        return False
    if bearer.key is not None:
        key = directory.keys.get(bearer.key)
        if (
            key is None
            or key.owner != bearer.contact
            or key.type is not KeyType.ED25519
            or not key.usable_at(now)
        ):
            return False
    return bool(directory.roles_held(bearer.contact, now))


@dataclass(frozen=True)
class TokenKeys:
    """The tokens ring: ``private``/``kid`` sign; ``verifying`` (kid -> public key, the active
    key included) are the only keys a presented token is checked against, chosen by its kid."""

    private: Signer
    kid: str
    verifying: Mapping[str, Verifier] = field(default_factory=dict)

    def key_for(self, kid: object) -> Verifier:
        if kid == self.kid:
            return self.private.public_key()
        key = self.verifying.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("no token key with this kid")
        return key


class TokenService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        keys: TokenKeys,
        refusals: Refusals,
        fetch_jwks: JwksFetcher,
    ) -> None:
        self.db = db
        self.fetch_jwks = fetch_jwks
        self.refusals = refusals
        self.settings = settings
        self.keys = keys
        self.issuer = settings.public_url
        self.audiences = {self.issuer, f"{self.issuer}/v1/token"}
        oidc = settings.oidc
        self.oidc_jwks: Any = None  # without keys, external tokens are refused (fail closed)
        if oidc.issuer and oidc.jwks_file:
            try:
                self.oidc_jwks = load_jwks(
                    settings.path(oidc.jwks_file).read_text(encoding="utf-8")
                )
            except (OSError, TokenInvalid) as e:
                raise ConfigError(f"[oidc] jwks_file cannot be used: {e}") from e

    async def refresh_jwks(self) -> None:
        """Fetch the external issuer's JWKS from ``oidc.jwks_url``; keep the last good set on failure."""
        oidc = self.settings.oidc
        if not (oidc.issuer and oidc.jwks_url):
            return
        try:
            text = await self.fetch_jwks(
                oidc.jwks_url,
                timeout_seconds=oidc.jwks_timeout_seconds,
                max_bytes=oidc.jwks_max_bytes,
            )
            self.oidc_jwks = load_jwks(text)
        except (JwksUnavailable, TokenInvalid) as e:
            log.warning("jwks_refresh_failed", reason=str(e))

    async def exchange(
        self,
        directory: Directory,
        assertion: str,
        now: datetime,
        *,
        source: str = "-",
        request_id: str | None = None,
        as_client: bool = False,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """An access token for the contact the assertion proves, or AuthenticationFailed.
        ``as_client``: the assertion authenticates the client (RFC 7523 §2.2), so only a contact's
        own key counts, never an external issuer's token; ``client_id``, when the client named
        itself beside its assertion, must be that contact.

        The assertion's audience must be the broker's public URL (or its token endpoint), never
        a URL taken from the request. ``source`` (the peer) is for counting refusals.
        """
        try:
            contact, proof = await self._contact_from(
                directory, assertion, now, request_id, as_client=as_client, client_id=client_id
            )
        except TokenInvalid as e:
            refused = AuditEvent(
                at=now,
                actor="unknown",
                action="token.refused",
                object="token:-",
                outcome="refused",
                reason="authentication_failed",
                details={"detail": e.reason},
                request=request_id,
            )
            failure = AuthenticationFailed(detail=e.reason)
            await self.refusals.refused(refused, source, failure)
            raise failure from e
        lifetime = self.settings.limits.token_lifetime_seconds
        token = issue_access_token(
            self.keys.private,
            kid=self.keys.kid,
            issuer=self.issuer,
            subject=contact,
            now=now,
            lifetime=lifetime,
            proof=proof,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "contact": contact,
            # The page speaks the contact's language from the directory unless its reader chose.
            "language": known.language if (known := directory.contacts.get(contact)) else "en",
            # The page checks at sign-in that the encryption key it was given is one of these.
            "encryption_key_ids": [
                k.id
                for k in directory.keys_of(contact)
                if k.type is KeyType.X25519 and k.usable_at(now)
            ],
        }

    async def _contact_from(
        self,
        directory: Directory,
        assertion: str,
        now: datetime,
        request_id: str | None,
        *,
        as_client: bool = False,
        client_id: str | None = None,
    ) -> tuple[str, str]:
        """The contact the assertion proves, and the proof (``key:<id>`` or ``oidc``)."""
        oidc = self.settings.oidc
        if (
            not as_client
            and self.oidc_jwks is not None
            and unverified_claims(assertion).get("iss") == oidc.issuer
        ):
            claims = verify_external(
                assertion,
                self.oidc_jwks,
                issuer=oidc.issuer,
                audience=oidc.audience,
                algorithms=[a.strip() for a in oidc.algorithms.split(",") if a.strip()],
                now=now,
            )
            contact = claims.get(oidc.contact_claim)
            if not isinstance(contact, str) or contact not in directory.contacts:
                raise TokenInvalid("the external token names no known contact")
            await audit_repo.append_events(
                self.db, [_issued(now, contact, {"via": "oidc", "issuer": oidc.issuer}, request_id)]
            )
            return contact, "oidc"
        kid = unverified_header(assertion).get("kid")
        key = directory.keys.get(str(kid))
        if key is None or key.type is not KeyType.ED25519 or not key.usable_at(now):
            raise TokenInvalid("unknown or unusable key")
        if key.owner not in directory.contacts:
            raise TokenInvalid("the key is not a contact's")
        claims = self._verify_assertion(assertion, key.public, now)
        if claims["sub"] != key.owner:
            raise TokenInvalid("the assertion names another contact than the key's owner")
        if client_id is not None and client_id != key.owner:
            raise TokenInvalid("client_id names another contact than the assertion")
        try:
            expires = datetime.fromtimestamp(float(claims["exp"]), tz=now.tzinfo) + timedelta(
                seconds=60
            )
            await repo.record_nonce(
                self.db,
                f"jti:{key.id}",
                _one_time_id(assertion, claims),
                expires,
                [_issued(now, key.owner, {"via": "assertion", "key": key.id}, request_id)],
            )
        except repo.NonceReplayed as e:
            raise TokenInvalid("assertion already used") from e
        return key.owner, f"key:{key.id}"

    def _verify_assertion(self, assertion: str, public: bytes, now: datetime) -> dict[str, Any]:
        max_lifetime = self.settings.limits.assertion_max_seconds
        last: TokenInvalid | None = None
        for audience in sorted(self.audiences):  # the broker URL or its token endpoint
            try:
                return verify_assertion(
                    assertion, public, audience=audience, now=now, max_lifetime=max_lifetime
                )
            except TokenInvalid as e:
                last = e
        raise last or TokenInvalid("no audience matched")

    def contact_for(self, directory: Directory, authorization: str | None, now: datetime) -> str:
        """The contact an ``Authorization: Bearer`` header names, or AuthenticationFailed."""
        return self.bearer_for(directory, authorization, now).contact

    def bearer_for(self, directory: Directory, authorization: str | None, now: datetime) -> Bearer:
        """The bearer of a valid token that is still entitled now, or AuthenticationFailed."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:  # RFC 9110 §11.1: schemes ignore case
            raise AuthenticationFailed(detail="no bearer token")
        try:
            claims = verify_access_token(
                token,
                self.keys.key_for(unverified_header(token).get("kid")),
                issuer=self.issuer,
                now=now,
                max_lifetime=self.settings.limits.token_lifetime_seconds,
            )
        except TokenInvalid as e:
            raise AuthenticationFailed(detail=e.reason) from e
        bearer = _bearer(claims, now)
        if bearer is None or not still_entitled(directory, bearer, now):
            raise AuthenticationFailed(detail="the token's contact, key or assignments ended")
        return bearer


def _one_time_id(assertion: str, claims: dict[str, Any]) -> str:
    """What makes an assertion single-use: its jti, or without one (RFC 7523 makes it optional)
    the SHA-256 of the assertion itself, so the same assertion never buys a second token."""
    jti = claims.get("jti")
    return (
        jti if isinstance(jti, str) else "sha256:" + hashlib.sha256(assertion.encode()).hexdigest()
    )


def _bearer(claims: dict[str, Any], now: datetime) -> Bearer | None:
    contact, proof, exp = claims.get("sub"), claims.get(PROOF_CLAIM), claims.get("exp")
    if not isinstance(contact, str) or not isinstance(proof, str) or not isinstance(exp, int):
        return None
    if proof == "oidc":
        key = None
    elif proof.startswith("key:"):
        key = proof.removeprefix("key:")
    else:
        return None
    return Bearer(contact, key, datetime.fromtimestamp(exp, tz=now.tzinfo))


def _issued(
    now: datetime, contact: str, details: dict[str, Any], request_id: str | None
) -> AuditEvent:
    return AuditEvent(
        at=now,
        actor=f"contact:{contact}",
        action="token.issued",
        object=f"contact:{contact}",
        details=details,
        request=request_id,
    )
