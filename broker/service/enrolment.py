"""Enrolment without key files: a one-time code, keys made on the official's device, approval.

1. ``invite``: an administrator issues a code for a contact of the directory; the store keeps
   only its SHA-256 (the code has 60 random bits, so the hash cannot be searched).
2. ``Enrolment.submit``: the web page sends the code with the two public keys it made; the code
   is consumed and the keys wait as *pending*. The answer carries the keys' short fingerprint,
   which the official reads to the administrator over the phone.
3. ``approve``: the administrator gives the fingerprint they heard; the keys become the
   contact's (a directory revision, audited with the bindings) and the contact's earlier
   Ed25519 and X25519 keys are revoked, so a lost device's keys stop working and the rekeyer
   re-wraps the contact's open notices for the new encryption key.

Attackers (THREATS.md) and what holds against each:
- anyone on the network guesses codes: every refusal looks the same (unknown, used and expired
  codes alike, 401), and refusals are rate-limited per source and broker-wide; past the limit
  nothing more is written, so audit writes stay bounded;
- the broker's host swaps the pending keys in the store: approval recomputes the fingerprint
  from the stored keys, never from a stored fingerprint, so the administrator's fingerprint
  (from the official's screen) does not match and nothing is approved.
Time is passed in.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.keys import fingerprint as key_digits
from broker.directory.present import diff, to_document
from broker.domain.directory import Directory, KeyStatus, KeyType, PublicKey
from broker.errors import AuthenticationFailed, Conflict, NotFound, TooManyAttempts
from broker.service.directory import key_bindings
from broker.store import Database
from broker.store import enrolment_repo as repo

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_GROUPS = 3  # XXXX-XXXX-XXXX: 12 characters, 60 random bits
DEFAULT_EXPIRY = timedelta(hours=72)
MAX_EXPIRY = timedelta(days=30)
WINDOW = timedelta(minutes=15)  # refused attempts are counted over this window
MAX_REFUSED_PER_SOURCE = 5  # refused codes per source and window; then 429
MAX_REFUSED_TOTAL = 100  # refused codes per window, from anywhere (bounds audit writes)
FINGERPRINT_CONTEXT = b"liaison-enrol-v1\n"


@dataclass(frozen=True, slots=True)
class Invitation:
    contact: str
    code: str
    expires_at: datetime


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(4 * CODE_GROUPS))
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalise_code(text: str) -> str:
    """The code as issued, from what a person typed: case, spaces, dashes, O/0 and I/L/1."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    cleaned = cleaned.translate(str.maketrans("OIL", "011"))
    return "-".join(cleaned[i : i + 4] for i in range(0, len(cleaned), 4))


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def fingerprint(signing_public: bytes, encryption_public: bytes) -> str:
    """16 hex digits over both public keys, in four groups: short enough to read aloud."""
    digest = hashlib.sha256(FINGERPRINT_CONTEXT + signing_public + encryption_public).hexdigest()
    upper = digest[:16].upper()
    return "-".join(upper[i : i + 4] for i in range(0, 16, 4))


def normalise_fingerprint(text: str) -> str:
    cleaned = "".join(ch for ch in text.upper() if ch in "0123456789ABCDEF")
    return "-".join(cleaned[i : i + 4] for i in range(0, len(cleaned), 4))


async def invite(
    db: Database,
    directory: Directory,
    contact: str,
    *,
    expires: timedelta,
    actor: str,
    now: datetime,
) -> Invitation:
    """A new one-time code for ``contact``; NotFound when the directory has no such contact."""
    if contact not in directory.contacts:
        raise NotFound(f"no contact {contact} in the directory")
    if not timedelta(minutes=5) <= expires <= MAX_EXPIRY:
        raise Conflict("a code must be valid for 5 minutes to 30 days")
    code = new_code()
    expires_at = (now + expires).replace(microsecond=0)
    event = AuditEvent(
        at=now,
        actor=actor,
        action="enrolment.invited",
        object=f"contact:{contact}",
        details={"contact": contact, "expires_at": expires_at.isoformat()},
    )
    await repo.add_code(
        db,
        contact=contact,
        code_hash=code_hash(code),
        now=now,
        expires_at=expires_at,
        actor=actor,
        event=event,
    )
    return Invitation(contact, code, expires_at)


class Enrolment:
    """The broker's side of the enrolment page: codes in, pending keys out."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def submit(
        self,
        directory: Directory,
        code: str,
        signing_public: bytes,
        encryption_public: bytes,
        *,
        source: str,
        now: datetime,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Consume ``code`` and keep the keys as pending; AuthenticationFailed for any bad code."""
        await self._check_rate(source, now)
        print_ = fingerprint(signing_public, encryption_public)

        def event(contact: str) -> AuditEvent:
            return AuditEvent(
                at=now,
                actor=f"contact:{contact}",
                action="enrolment.submitted",
                object=f"contact:{contact}",
                details={"contact": contact, "fingerprint": print_, "source": source[:64]},
                request=request_id,
            )

        contact = await repo.consume_code(
            self.db,
            code_hash=code_hash(code),
            now=now,
            signing_public=signing_public,
            encryption_public=encryption_public,
            event_for=event,
        )
        if contact is None or contact not in directory.contacts:
            await self._refused(source, now, request_id)
            refused = AuthenticationFailed("the enrolment code was not accepted")
            refused.recorded = True  # audited above, within the rate limit
            raise refused
        person = directory.contacts[contact]
        return {
            "contact": contact,
            "name": person.name,
            "language": person.language,
            "fingerprint": print_,
            "state": "pending",
        }

    async def _check_rate(self, source: str, now: datetime) -> None:
        since = now - WINDOW
        if (
            await repo.refused_since(self.db, since, source) >= MAX_REFUSED_PER_SOURCE
            or await repo.refused_since(self.db, since) >= MAX_REFUSED_TOTAL
        ):
            raise TooManyAttempts("too many refused enrolment codes; try again later")

    async def _refused(self, source: str, now: datetime, request_id: str | None) -> None:
        event = AuditEvent(
            at=now,
            actor="unknown",
            action="enrolment.refused",
            object="enrolment:code",
            outcome="refused",
            reason="code_not_accepted",
            details={"source": source[:64]},
            request=request_id,
        )
        await repo.record_refusal(
            self.db, source=source, now=now, forget_before=now - WINDOW, event=event
        )


async def pending(db: Database) -> list[dict[str, Any]]:
    """Keys waiting for approval, with the fingerprint computed from the keys themselves."""
    return [
        {
            "id": p.id,
            "contact": p.contact,
            "fingerprint": fingerprint(p.signing_public, p.encryption_public),
            "submitted_at": p.submitted_at.isoformat(),
        }
        for p in await repo.pending(db)
    ]


async def approve(
    db: Database,
    directory: Directory,
    contact: str,
    heard: str,
    *,
    actor: str,
    now: datetime,
) -> tuple[int, list[str]]:
    """Bind the pending keys whose fingerprint is ``heard``: (revision, new key ids).

    Refused (Conflict, audited) when no pending keys of the contact have that fingerprint."""
    if contact not in directory.contacts:
        raise NotFound(f"no contact {contact} in the directory")
    wanted = normalise_fingerprint(heard)
    waiting = await repo.pending(db, contact)
    chosen = next(
        (p for p in waiting if fingerprint(p.signing_public, p.encryption_public) == wanted), None
    )
    if chosen is None:
        await repo.append_event(db, _refusal(contact, wanted, len(waiting), actor, now))
        raise Conflict(
            f"no pending keys of {contact} have the fingerprint {wanted or heard!r}; "
            "nothing was approved"
            if waiting
            else f"{contact} has no keys waiting for approval"
        )
    new = with_keys(directory, chosen, now)
    changes = diff(directory, new)
    document = json.dumps(to_document(new), sort_keys=True, default=str).encode()
    added = sorted(set(new.keys) - set(directory.keys))

    def events(revision: int) -> list[AuditEvent]:
        return [
            AuditEvent(
                at=now,
                actor=actor,
                action="directory.applied",
                object=f"directory:{revision}",
                details={
                    "content_hash": hashlib.sha256(document).hexdigest(),
                    "summary": changes.summary(),
                    "changes": changes.lines()[:50],
                    "keys": key_bindings(directory, new),
                    "reason": "enrolment_approved",
                },
            ),
            AuditEvent(
                at=now,
                actor=actor,
                action="enrolment.approved",
                object=f"contact:{contact}",
                details={"contact": contact, "fingerprint": wanted, "keys": added},
            ),
        ]

    revision = await repo.approve(
        db,
        chosen,
        new,
        content_hash=hashlib.sha256(document).hexdigest(),
        summary=f"enrolment of {contact}: {changes.summary()}",
        actor=actor,
        now=now,
        events_for=events,
    )
    if revision is None:
        raise Conflict(
            f"the pending keys of {contact} were decided meanwhile; nothing was approved"
        )
    return revision, added


def with_keys(directory: Directory, chosen: repo.Pending, now: datetime) -> Directory:
    """The directory with the pending keys bound to the contact and its earlier keys revoked."""
    contact = chosen.contact
    keys: list[PublicKey] = []
    for key in directory.keys.values():
        mine = key.owner == contact and key.type in (KeyType.ED25519, KeyType.X25519)
        keys.append(replace(key, status=KeyStatus.REVOKED) if mine else key)
    for kind, public in (
        (KeyType.ED25519, chosen.signing_public),
        (KeyType.X25519, chosen.encryption_public),
    ):
        key_id = f"{contact}.{kind.value}.{key_digits(public)}"
        if key_id in directory.keys:
            raise Conflict(f"key {key_id} is already in the directory; nothing was approved")
        keys.append(PublicKey(key_id, contact, kind, public))
    d = directory
    return Directory.build(
        list(d.jurisdictions.values()),
        list(d.organisations.values()),
        list(d.roles.values()),
        list(d.contacts.values()),
        list(d.assignments),
        keys,
        list(d.webhooks.values()),
    )


def _refusal(contact: str, wanted: str, waiting: int, actor: str, now: datetime) -> AuditEvent:
    return AuditEvent(
        at=now,
        actor=actor,
        action="enrolment.approval_refused",
        object=f"contact:{contact}",
        outcome="refused",
        reason="fingerprint_mismatch" if waiting else "nothing_pending",
        details={"contact": contact, "fingerprint": wanted},
    )
