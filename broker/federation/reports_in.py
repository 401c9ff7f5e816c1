"""The sending side hears back: ``POST /v1/federation/status``, a peer's report on a notice.

Checked in this order; the first failure refuses, audited, and nothing is stored:
1. signed by a peer's pinned broker key (``peer_auth``) — otherwise one 401, whatever failed;
2. the report has the fields of ``report.parse_report`` and nothing else (no person, no
   contact, no content can be stored through it) — 400;
3. the notice it names was forwarded (or relayed, by the hub) from here **to that peer** — a report on a notice never
   forwarded, or forwarded to another peer, is one 403 (the same for both: a peer learns
   nothing of notices that are not its own), audited ``federation.report_refused`` with why;
4. the signature's nonce is new — a replayed report is a 401.
It is then merged (monotonic, ``report.merge``) into the view kept of the notice, in one
transaction with the nonce and one audit event per role that moved forward
(``notice.routed_abroad``, ``notice.delivered_abroad``, ``notice.read_abroad``,
``notice.acknowledged_abroad``, ``notice.escalated_abroad``), each with the peer, the peer's
notice id, the role and its jurisdiction. The agency reads it in its notice's status.

A report's ``replies`` (``federation/replies.py``) must each be sealed to an X25519 key this
directory gives the notice's sending agency — on the hub, for a notice it relayed, one the
agency's own country binds in the origin it came with — (400 otherwise); each reply id not seen before for
the notice becomes one reply row (contact ``peer:<id>``, the role it came from), in the same
transaction, audited ``reply.received_from_peer`` (peer, peer's notice id, its reply id, role).
The agency reads it where it reads a local reply: ``GET /v1/notices/{id}/status`` and
``liaison status``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.audit.events import AuditEvent
from broker.config import Limits
from broker.domain.directory import KeyType
from broker.errors import AuthenticationFailed, BadRequest, Forbidden, LiaisonError
from broker.federation.agreements import Peer
from broker.federation.peer_auth import authenticated_peer
from broker.federation.replies import new_replies, reply_keys, reply_row, reply_time
from broker.federation.report import merge, parse_report
from broker.input import parse_json
from broker.logs import get_logger
from broker.service.intake import IncomingRequest
from broker.service.refusals import Refusals
from broker.state import BrokerState
from broker.store import audit_repo, federation_repo, intake_repo
from broker.store.intake_repo import NonceReplayed

log = get_logger("liaison.federation")

NOT_YOURS = "no notice was forwarded to this peer under this id"


class ReportIntake:
    def __init__(self, state: BrokerState, *, limits: Limits, refusals: Refusals) -> None:
        self.state = state
        self.limits = limits
        self.refusals = refusals

    async def receive(self, request: IncomingRequest, now: datetime) -> dict[str, Any]:
        view = self.state.view
        peer, signature = await authenticated_peer(
            view, request, now, self.limits.clock_skew_seconds, self.refusals
        )
        report = _report(request.body)
        if not str(request.headers.get("idempotency-key", "")).startswith(report["notice_id"]):
            raise BadRequest("Idempotency-Key must begin with the notice id")
        await self._check_forwarded(peer, report, request, now)
        await self._check_reply_keys(report, now)
        nonce = {
            "key_id": f"peer:{peer.id}",
            "nonce": signature.nonce,
            "expires_at": datetime.fromtimestamp(signature.created, tz=UTC)
            + timedelta(seconds=2 * self.limits.clock_skew_seconds),
        }
        try:
            events = await federation_repo.record_report(
                self.state.engine,
                report["notice_id"],
                nonce,
                lambda stored: _merged(stored, report, peer, now, request.request_id),
            )
        except NonceReplayed as e:
            raise AuthenticationFailed(detail="nonce replayed") from e
        log.info("notice_status_received", notice_id=report["notice_id"], peer=peer.id)
        return {"notice_id": report["notice_id"], "changes": len(events)}

    async def _check_reply_keys(self, report: dict[str, Any], now: datetime) -> None:
        """Each reply is sealed to an X25519 key of the agency that sent the notice: one of this
        directory's; on the hub, for a notice it relayed, one the agency's own country binds
        in the origin the notice came with (the hub passes the sealed bytes on, unopened)."""
        if not report.get("replies"):
            return
        notice = await intake_repo.get_notice(self.state.engine, report["notice_id"])
        crossing = await federation_repo.crossing_of(self.state.engine, report["notice_id"])
        if notice is not None and crossing is not None and crossing.relay_to is not None:
            origin = (crossing.origin_root or b"", crossing.origin_bindings or b"")
            bound = reply_keys(
                self.state.view,
                crossing.peer,
                origin,
                notice.sender,
                now,
                country=crossing.origin_country,
            )
            allowed = {k.key_id for k in bound}
            if any(reply["key_id"] not in allowed for reply in report["replies"]):
                raise BadRequest("a reply is sealed to an X25519 key of the sending agency")
            return
        keys = self.state.view.directory.keys
        for reply in report["replies"]:
            key = keys.get(reply["key_id"])
            if (
                notice is None
                or key is None
                or key.owner != notice.sender
                or key.type is not KeyType.X25519
            ):
                raise BadRequest("a reply is sealed to an X25519 key of the sending agency")

    async def _check_forwarded(
        self, peer: Peer, report: dict[str, Any], request: IncomingRequest, now: datetime
    ) -> None:
        crossing = await federation_repo.crossing_of(self.state.engine, report["notice_id"])
        went_to = None if crossing is None else _went_to(crossing)
        if went_to == peer.id:
            return
        why = (
            "no such notice here"
            if crossing is None
            else f"forwarded to {went_to}, not {peer.id}"
            if went_to is not None
            else "a notice received here, not forwarded"
        )
        error = Forbidden(NOT_YOURS, reason=NOT_YOURS)
        event = AuditEvent(
            now,
            f"peer:{peer.id}",
            "federation.report_refused",
            f"notice:{report['notice_id']}",
            outcome="refused",
            decision="deny",
            reason=error.code,
            details={"why": why, "peer_notice_id": report["reporter_notice_id"]},
            request=request.request_id,
        )
        await audit_repo.append_events(self.state.engine, [event])
        raise error


def _went_to(crossing: federation_repo.CrossingRecord) -> str | None:
    """The peer a notice was sent to from here: forwarded, or relayed (the hub)."""
    return crossing.peer if crossing.direction == "send" else crossing.relay_to


def _report(body: bytes) -> dict[str, Any]:
    try:
        payload = parse_json(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("the body is not valid JSON") from e
    try:
        return parse_report(payload)
    except LiaisonError:
        raise
    except (TypeError, ValueError) as e:  # a wrong type deep in a field
        raise BadRequest("not a status report") from e


def _merged(
    stored: dict[str, Any] | None,
    report: dict[str, Any],
    peer: Peer,
    now: datetime,
    request_id: str | None,
) -> tuple[dict[str, Any], datetime, list[AuditEvent], list[dict[str, Any]]]:
    fresh = new_replies((stored or {}).get("reply_ids", ()), report.get("replies", ()))
    merged, transitions = merge(stored, report)
    obj = f"notice:{report['notice_id']}"
    events = [
        AuditEvent(
            now,
            f"peer:{peer.id}",
            f"notice.{t.state}_abroad",
            obj,
            details={
                "peer": peer.id,
                "peer_notice_id": report["reporter_notice_id"],
                "role": t.role,
                "jurisdiction": t.jurisdiction,
                "at": t.at,
            },
            request=request_id,
        )
        for t in transitions
    ]
    events += [
        AuditEvent(
            now,
            f"peer:{peer.id}",
            "reply.received_from_peer",
            obj,
            details={
                "peer": peer.id,
                "peer_notice_id": report["reporter_notice_id"],
                "peer_reply_id": r["id"],
                "role": r["role"],
                "to_key": r["key_id"],
                "bytes": len(base64.b64decode(r["ciphertext"])),
            },
            request=request_id,
        )
        for r in fresh
    ]
    rows = [reply_row(report["notice_id"], peer.id, r, reply_time(r)) for r in fresh]
    return merged, datetime.fromisoformat(merged["as_of"]), events, rows
