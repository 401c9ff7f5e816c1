"""Auditors' use of the log: events, checkpoints, proofs and exports — never notice contents.

Every read by an auditor is itself an audit event. Access is a Cedar decision (``read_audit``)
made on each request from the roles the contact holds at that moment.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.audit.merkle import consistency_proof, inclusion_proof
from broker.audit.verify import FORMAT
from broker.crypto.keys import Signer, fingerprint
from broker.crypto.note import sign_note
from broker.errors import Forbidden, NotFound
from broker.policy.payload import Violation
from broker.service.notices import QUERY_INVALID, NoticeInvalid
from broker.state import BrokerState
from broker.store import audit_repo
from broker.store.audit_repo import EventFilter


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AuditService:
    def __init__(self, state: BrokerState, signer: Signer, *, page_max: int) -> None:
        self.state = state
        self.signer = signer
        self.public = signer.public_key().public_bytes_raw()
        # Stable for the life of the signing key, whatever URL the broker is reached at.
        self.origin = f"liaison.invalid/audit/{fingerprint(self.public)}"
        self.page_max = page_max

    def _sign(self, text: str) -> str:
        return sign_note(text, self.origin, self.signer)

    async def checkpoint(self, now: datetime) -> tuple[int, str]:
        """Sign the log as it stands (a no-op when that size is signed already)."""
        return await audit_repo.create_checkpoint(self.state.engine, self.origin, self._sign, now)

    def authorize(self, contact: str, now: datetime) -> None:
        decision = self.state.view.authorizer.read_audit(contact, now)
        if not decision.allowed:
            raise Forbidden("only auditors read the audit log")

    async def events(
        self, contact: str, where: EventFilter, *, after: int, limit: int, now: datetime
    ) -> dict[str, Any]:
        self.authorize(contact, now)
        limit = max(1, min(limit, self.page_max))
        rows = await audit_repo.read_events(self.state.engine, where, after=after, limit=limit)
        await self._record(
            contact,
            "audit.read",
            now,
            {
                "filter": {k: str(v) for k, v in vars(where).items() if v},
                "after": after,
                "returned": len(rows),
            },
        )
        return {
            "events": [json.loads(body) for _, body in rows],
            "next_cursor": str(rows[-1][0]) if len(rows) == limit else None,
        }

    async def latest_checkpoint(
        self, contact: str, now: datetime, *, fresh: bool
    ) -> dict[str, Any]:
        self.authorize(contact, now)
        if fresh:
            size, note = await self.checkpoint(now)
        else:
            stored = await audit_repo.checkpoints(self.state.engine)
            size, note = stored[-1] if stored else await self.checkpoint(now)
        await self._record(contact, "audit.checkpoint_read", now, {"size": size})
        return {
            "origin": self.origin,
            "key_name": self.origin,
            "public_key": _b64(self.public),
            "size": size,
            "note": note,
        }

    async def inclusion(self, contact: str, seq: int, size: int, now: datetime) -> dict[str, Any]:
        self.authorize(contact, now)
        current = await audit_repo.size(self.state.engine)
        if not 1 <= seq <= size <= current:
            raise NoticeInvalid(
                [Violation("/seq", f"need 1 <= seq <= size <= {current}")], QUERY_INVALID
            )
        leaves = await audit_repo.leaves(self.state.engine, size)
        entry = await audit_repo.event_leaf(self.state.engine, seq)
        if entry is None:
            raise NotFound("no such event")
        await self._record(
            contact, "audit.proof_read", now, {"kind": "inclusion", "seq": seq, "size": size}
        )
        return {
            "seq": seq,
            "tree_size": size,
            "leaf_index": seq - 1,
            "leaf_hash": _b64(entry[1]),
            "event": json.loads(entry[0]),
            "proof": [_b64(h) for h in inclusion_proof(seq - 1, leaves)],
        }

    async def consistency(
        self, contact: str, first: int, second: int, now: datetime
    ) -> dict[str, Any]:
        self.authorize(contact, now)
        current = await audit_repo.size(self.state.engine)
        if not 1 <= first <= second <= current:
            raise NoticeInvalid(
                [Violation("/first", f"need 1 <= first <= second <= {current}")], QUERY_INVALID
            )
        leaves = await audit_repo.leaves(self.state.engine, second)
        await self._record(
            contact,
            "audit.proof_read",
            now,
            {"kind": "consistency", "first": first, "second": second},
        )
        return {
            "first": first,
            "second": second,
            "proof": [_b64(h) for h in consistency_proof(first, leaves)],
        }

    async def export(self, actor: str, now: datetime) -> AsyncIterator[bytes]:
        """The export: a header with every signed checkpoint (a fresh one last), then each event."""
        await audit_repo.append_events(
            self.state.engine,
            [AuditEvent(at=now, actor=actor, action="audit.exported", object="audit:log")],
        )
        await self.checkpoint(now)
        notes = [note for _, note in await audit_repo.checkpoints(self.state.engine)]
        header = {
            "format": FORMAT,
            "origin": self.origin,
            "key_name": self.origin,
            "public_key": _b64(self.public),
            "exported_at": now.isoformat().replace("+00:00", "Z"),
            "checkpoints": notes,
        }
        yield json.dumps(header).encode() + b"\n"
        size = int(notes[-1].split("\n")[1])
        count = 0
        async for body in audit_repo.all_bodies(self.state.engine):
            count += 1
            if count > size:
                break  # events after the fresh checkpoint belong to the next export
            yield body.encode() + b"\n"

    async def _record(
        self, contact: str, action: str, now: datetime, details: dict[str, Any]
    ) -> None:
        await audit_repo.append_events(
            self.state.engine,
            [
                AuditEvent(
                    at=now,
                    actor=f"contact:{contact}",
                    action=action,
                    object="audit:log",
                    decision="allow",
                    policies=("access/auditors-read-audit-log",),
                    details=details,
                )
            ],
        )
