"""The audit vocabulary of a posted notice: what the log records when one is accepted or refused.

Pure functions building ``AuditEvent`` lists. Invariants: never a subject, body, ciphertext or
wrap — only routing metadata, decisions and key ids; the request id is passed in by the caller,
never read from ambient context; ``notice.posted`` carries what the agency signed (content
digest and signature) so it can spot a key it never made.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from broker.audit.events import AuditEvent
from broker.errors import LiaisonError


class Reached(Protocol):
    """A recipient as routing chose it (``policy.route.Recipient``)."""

    @property
    def contact(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def deputy(self) -> bool: ...
    @property
    def policy_ids(self) -> tuple[str, ...]: ...


class Unreached(Protocol):
    """A role in scope that will not receive the notice (``policy.route.NotReached``)."""

    @property
    def role(self) -> str: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def policy_ids(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Posting:
    """What the log records of one accepted notice."""

    notice_id: str
    channel: str
    jurisdiction: str
    severity: str
    kind: str  # notice | update | cancel
    supersedes: str | None
    sender: str  # organisation
    sender_key: str
    content_digest: str
    signature: bytes
    policy_hash: str
    publish_policies: tuple[str, ...]
    recipients: Sequence[Reached]
    not_reached: Sequence[Unreached]
    wrap_keys: Mapping[str, str]  # recipient (or escrow) -> key id its wrap is for
    escrow_key: str
    exercise: str | None = None  # "exercise" | "test": in both leaves, so auditors can tell


def accepted(p: Posting, now: datetime, request_id: str | None) -> list[AuditEvent]:
    """Two leaves per notice: posted (by the agency) and routed (by the broker, every recipient
    and every role not reached in one event); a cancel adds one about the cancelled notice."""
    return [
        _posted(p, now, request_id),
        _routed(p, now, request_id),
        *_cancelled(p, now, request_id),
    ]


def _posted(p: Posting, now: datetime, request_id: str | None) -> AuditEvent:
    return AuditEvent(
        at=now,
        request=request_id,
        actor=f"agency:{p.sender}",
        action="notice.posted",
        object=f"notice:{p.notice_id}",
        channel=p.channel,
        decision="allow",
        policies=p.publish_policies,
        details={
            "jurisdiction": p.jurisdiction,
            "severity": p.severity,
            "kind": p.kind,
            "supersedes": p.supersedes,
            "sender_key": p.sender_key,
            # Key transparency: what the agency signed, so it can spot a key it never made.
            "content_digest": p.content_digest,
            "signature": base64.b64encode(p.signature).decode(),
            "policy_hash": p.policy_hash,
            "recipients": len({r.contact for r in p.recipients}),
            **_marked(p),
        },
    )


def _marked(p: Posting) -> dict[str, str]:
    """The exercise or test marking, only when there is one (real notices' leaves unchanged)."""
    return {} if p.exercise is None else {"exercise": p.exercise}


def _routed(p: Posting, now: datetime, request_id: str | None) -> AuditEvent:
    """Whom routing reached (each with its rule, policies and the key its wrap is for), which
    roles in scope it did not reach and why, and the escrow key: one leaf, in routing order.
    ``policies`` lists every receive policy that allowed a recipient, each once."""
    allowing = dict.fromkeys(policy for r in p.recipients for policy in r.policy_ids)
    return AuditEvent(
        at=now,
        request=request_id,
        actor="broker",
        action="notice.routed",
        object=f"notice:{p.notice_id}",
        channel=p.channel,
        decision="allow",
        policies=tuple(allowing),
        details={
            "recipients": [_recipient(p, r) for r in p.recipients],
            "not_reached": [_not_reached(n) for n in p.not_reached],
            "escrow_key": p.escrow_key,
            **_marked(p),
        },
    )


def _recipient(p: Posting, r: Reached) -> dict[str, object]:
    return {
        "contact": r.contact,
        "role": r.role,
        "jurisdiction": r.jurisdiction,
        "rule": r.rule,
        "deputy": r.deputy,
        "policies": list(r.policy_ids),
        "wrap_key": p.wrap_keys.get(r.contact),
    }


def _not_reached(n: Unreached) -> dict[str, object]:
    return {
        "role": n.role,
        "jurisdiction": n.jurisdiction,
        "rule": n.rule,
        "reason": n.reason,
        "decision": "deny" if n.reason == "denied_by_policy" else None,
        "policies": list(n.policy_ids),
    }


def _cancelled(p: Posting, now: datetime, request_id: str | None) -> list[AuditEvent]:
    if p.kind != "cancel" or p.supersedes is None:
        return []
    return [
        AuditEvent(
            at=now,
            request=request_id,
            actor=f"agency:{p.sender}",
            action="notice.cancelled",
            object=f"notice:{p.supersedes}",
            channel=p.channel,
            details={"by": p.notice_id},
        )
    ]


def refusal(
    now: datetime,
    actor: str,
    error: LiaisonError,
    headers: Mapping[str, str],
    request_id: str | None,
) -> AuditEvent:
    """The audit record of a refused post: the reason code and its detail, never the contents."""
    return AuditEvent(
        at=now,
        actor=actor,
        action="notice.refused",
        object="notice:-",
        outcome="refused",
        reason=error.code,
        details={"detail": error.detail or error.message, "keyid": claimed_keyid(headers)},
        request=request_id,
    )


def claimed_keyid(headers: Mapping[str, str]) -> str | None:
    """The keyid a request claims in Signature-Input (unverified: for the record only)."""
    value = headers.get("signature-input", "")
    start = value.find('keyid="')
    return value[start + 7 : value.find('"', start + 7)][:128] if start >= 0 else None
