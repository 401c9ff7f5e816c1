"""The sending agency's list of its own notices, newest first, each with every role's state:
the agency view of the web inbox (``GET /v1/notices``). The same signed request as the status
read (RFC 9421, nonce recorded with the audit event); only notices the agency may read the
status of, so the list says no more than the status endpoint would."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.errors import NoticeInvalid
from broker.policy.payload import Violation
from broker.service.auth import authenticate_agency
from broker.service.names import ack_deadline, names
from broker.service.notices import QUERY_INVALID
from broker.service.status import _by_role, _time, spend_nonce
from broker.state import View
from broker.store import Database, sent_repo
from broker.store import deliveries_repo as repo

PAGE_MAX = 50


async def list_sent(
    db: Database,
    view: View,
    *,
    method: str,
    target_uri: str,
    headers: Mapping[str, str],
    client_certificate: bytes | None,
    now: datetime,
    max_skew: int,
    request_id: str | None,
    cursor: str | None,
    limit: int,
    language: str | None = None,
) -> dict[str, Any]:
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
    limit = max(1, min(limit, PAGE_MAX))  # the HTTP layer refuses others; a caller in code too
    stored = await sent_repo.sent_by(db, agency.organisation, before=_cursor(cursor), limit=limit)
    allowed = [
        n for n in stored if view.authorizer.read_status(agency.organisation, n.facts()).allowed
    ]
    replies = await sent_repo.reply_counts(db, [n.id for n in allowed])
    items = []
    for n in allowed:
        deliveries = await repo.deliveries_of(db, n.id)
        items.append(
            {
                "id": n.id,
                "channel": n.channel,
                "jurisdiction": n.jurisdiction,
                "severity": n.severity,
                "marking": n.marking,
                "exercise": n.exercise,
                "kind": n.kind,
                "status": n.status,
                "created_at": _time(n.created_at),
                **names(view, channel=n.channel, jurisdiction=n.jurisdiction, language=language),
                "ack_deadline": ack_deadline(view, n.channel, n.created_at),
                "roles": _by_role(view, deliveries, language),
                "replies": replies.get(n.id, 0),
            }
        )
    event = AuditEvent(
        at=now,
        actor=f"agency:{agency.organisation}",
        action="notice.sent_listed",
        object=f"organisation:{agency.organisation}",
        request=request_id,
        details={"count": len(items)},
    )
    await spend_nonce(db, agency, max_skew, [event])
    last = stored[-1] if len(stored) == limit else None
    return {"items": items, "next_cursor": _encode(last.created_at, last.id) if last else None}


def _encode(at: datetime, notice_id: str) -> str:
    return base64.urlsafe_b64encode(f"{_time(at)}|{notice_id}".encode()).decode()


def _cursor(value: str | None) -> tuple[datetime, str] | None:
    if not value:
        return None
    try:
        at, notice_id = base64.urlsafe_b64decode(value.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at.replace("Z", "+00:00")), notice_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise NoticeInvalid(
            [Violation("/cursor", "is not a cursor of this list")], QUERY_INVALID
        ) from e
