"""The sending agency's view of its notice: per role and jurisdiction, how far delivery got.

Senders see roles, never the persons behind them: institutional addressing. A notice the agency
may not read (another agency's) answers exactly like one that does not exist.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.domain.notice import DeliveryState
from broker.errors import AuthenticationFailed, NotFound
from broker.federation.agreements import PeerKind
from broker.federation.report import TIMES
from broker.service.auth import Agency, authenticate_agency
from broker.service.names import ack_deadline, names
from broker.service.release import release_status
from broker.state import View
from broker.store import Database, federation_repo, intake_repo, outbox_repo
from broker.store import deliveries_repo as repo

STATE_ORDER = ("pending", "delivered", "read", "acknowledged", "escalated")


async def read_status(
    db: Database,
    view: View,
    notice_id: str,
    *,
    method: str,
    target_uri: str,
    headers: Mapping[str, str],
    client_certificate: bytes | None,
    now: datetime,
    max_skew: int,
    request_id: str | None,
    language: str | None = None,
) -> dict[str, Any]:
    """GET /v1/notices/{id}/status: authenticate the signed request, answer the status, and
    record the nonce with the read (or the refusal) in one transaction: a replayed request is
    refused, and an unknown notice and another agency's look the same."""
    agency = authenticate_agency(
        view.directory,
        method=method,
        target_uri=target_uri,
        headers=headers,
        body=None,
        now=now,
        max_skew=max_skew,
        client_certificate=client_certificate,
    )
    event = AuditEvent(
        at=now,
        actor=f"agency:{agency.organisation}",
        action="notice.status_read",
        object=f"notice:{notice_id[:40]}",
        request=request_id,
    )
    try:
        body: dict[str, Any] | None = await notice_status(db, view, agency, notice_id, language)
    except NotFound:
        body = None
        event = replace(
            event, action="notice.status_refused", outcome="refused", reason="not_found"
        )
    await spend_nonce(db, agency, max_skew, [event])
    if body is None:
        raise NotFound("no such notice")
    return body


async def spend_nonce(
    db: Database, agency: Agency, max_skew: int, events: list[AuditEvent]
) -> None:
    """A signed read's nonce, spent with its audit events in one transaction; a replay is a 401."""
    try:
        await intake_repo.record_nonce(
            db,
            agency.signature.keyid,
            agency.signature.nonce,
            agency.nonce_expiry(max_skew),
            events,
        )
    except intake_repo.NonceReplayed as e:
        raise AuthenticationFailed(detail="nonce replayed") from e


async def notice_status(
    db: Database, view: View, agency: Agency, notice_id: str, language: str | None = None
) -> dict[str, Any]:
    notice = await intake_repo.get_notice(db, notice_id)
    if (
        notice is None
        or not view.authorizer.read_status(agency.organisation, notice.facts()).allowed
    ):
        raise NotFound("no such notice")
    deliveries = await repo.deliveries_of(db, notice_id)
    crossing = await federation_repo.crossing_of(db, notice_id)
    if crossing is not None and crossing.direction != "send":
        crossing = None  # a notice received from a peer: its sender reads it over there
    return {
        "id": notice.id,
        "channel": notice.channel,
        "jurisdiction": notice.jurisdiction,
        "kind": notice.kind,
        "status": notice.status,
        "marking": notice.marking,
        "exercise": notice.exercise,
        "created_at": _time(notice.created_at),
        "supersedes": notice.supersedes,
        "policy_hash": notice.policy_hash,
        **names(view, channel=notice.channel, jurisdiction=notice.jurisdiction, language=language),
        "ack_deadline": ack_deadline(view, notice.channel, notice.created_at),
        "roles": _by_role(view, deliveries, language) + _abroad_roles(view, crossing),
        "abroad": await _abroad(db, view, crossing, notice.jurisdiction),
        "release": await release_status(db, notice_id),  # two-person release, if required
        # Replies are encrypted to the agency's X25519 key: the broker passes them on unread.
        "replies": [
            {
                "role": r["role_id"],
                "created_at": _time(r["created_at"]),
                "key_id": r["key_id"],
                "wrap": _b64(r["wrap"]),
                "nonce": _b64(r["nonce"]),
                "ciphertext": _b64(r["ciphertext"]),
            }
            for r in await repo.replies_of(db, notice_id)
        ],
    }


async def _abroad(
    db: Database, view: View, crossing: federation_repo.CrossingRecord | None, jurisdiction: str
) -> dict[str, Any] | None:
    """A forwarded notice: the peer, the country it is for (through the hub: the one behind it),
    whether the peer has it yet, and its latest report."""
    if crossing is None:
        return None
    peer = view.policies.peers.get(crossing.peer)
    directory = view.directory
    country = (
        directory.country_of(jurisdiction) if jurisdiction in directory.jurisdictions else None
    )
    if country is None and peer is not None and peer.kind is PeerKind.NATIONAL:
        country = peer.countries[0]
    rows = [r for r in await outbox_repo.items(db, crossing.notice_id) if r["kind"] == "peer"]
    report = crossing.foreign_status or {}
    return {
        "peer": crossing.peer,
        "peer_title": peer.title if peer else crossing.peer,
        "agreement": crossing.agreement,
        "country": country,
        "forward": rows[0]["state"] if rows else "unknown",  # pending | sent | dead
        # Why a forward went dead: the peer's refusal with its reason, or the last failure.
        "forward_error": rows[0]["last_error"] if rows and rows[0]["state"] == "dead" else None,
        "peer_notice_id": report.get("reporter_notice_id"),
        "reported_at": report.get("as_of"),
        "status": report.get("status"),
    }


def _abroad_roles(
    view: View, crossing: federation_repo.CrossingRecord | None
) -> list[dict[str, Any]]:
    """The peer's roles, as it reported them: ids and states (its directory is not ours)."""
    if crossing is None or crossing.foreign_status is None:
        return []
    peer = view.policies.peers.get(crossing.peer)
    out = []
    for role in crossing.foreign_status["roles"]:
        jurisdiction = view.directory.jurisdictions.get(role["jurisdiction"])
        out.append(
            {
                "role": role["role"],
                "role_title": role["role"],
                "jurisdiction": role["jurisdiction"],
                "jurisdiction_name": jurisdiction.name if jurisdiction else None,
                "rule": None,
                "recipients": role["recipients"],
                "state": role["state"],
                **{name: role[name] for name in TIMES},
                "foreign": True,
                "peer": crossing.peer,
                "peer_title": peer.title if peer else crossing.peer,
            }
        )
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _by_role(
    view: View, deliveries: list[DeliveryState], language: str | None = None
) -> list[dict[str, Any]]:
    groups: dict[str, list[DeliveryState]] = {}
    for d in deliveries:
        groups.setdefault(d.role, []).append(d)
    out = []
    for role_id, items in groups.items():
        role = view.directory.roles.get(role_id)
        jurisdiction = view.directory.jurisdictions.get(items[0].jurisdiction)
        out.append(
            {
                "role": role_id,
                "role_title": role.title_in(language) if role else role_id,
                "jurisdiction": items[0].jurisdiction,
                "jurisdiction_name": jurisdiction.name_in(language) if jurisdiction else None,
                "rule": items[0].rule,
                "recipients": len(items),
                "state": max((d.state for d in items), key=STATE_ORDER.index),
                "delivered_at": _first(d.delivered_at for d in items),
                "read_at": _first(d.read_at for d in items),
                "acknowledged_at": _first(d.acked_at for d in items),
                "escalated_at": _first(d.escalated_at for d in items),
            }
        )
    return out


def _first(values: Any) -> str | None:
    present = [v for v in values if v is not None]
    return _time(min(present)) if present else None


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
