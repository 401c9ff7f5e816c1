"""Auditors' use of the log: events, checkpoints, proofs and exports — never notice contents.

Every read by an auditor is itself an audit event. Access is a Cedar decision (``read_audit``)
made on each request from the roles the contact holds at that moment, and so is what the auditor
sees (``audit_jurisdiction``: ``broker/audit/visibility.py`` places each event): an event outside
their jurisdiction is not returned, matches no filter, and its inclusion proof is a 404 like an
event that does not exist. The checkpoint (size and root) and consistency proofs (hashes only)
are the whole log's. Hidden events can be asked for as leaf hashes in place, so that an
auditor's export still recomputes the chain and the signed root.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.audit.merkle import consistency_proof, inclusion_proof
from broker.audit.verify import FORMAT
from broker.audit.visibility import visible
from broker.config import AuditSettings
from broker.crypto.note import cosign_note, sign_note
from broker.crypto.purpose_keys import LogKeys
from broker.errors import Forbidden, NotFound, NoticeInvalid
from broker.policy.decide import AuditScope
from broker.policy.payload import Violation
from broker.service.continuity import continuity_report
from broker.service.notices import QUERY_INVALID
from broker.state import BrokerState
from broker.store import audit_repo
from broker.store.audit_repo import EventFilter
from broker.titles import pick

SCAN_BATCH = 1000  # events read from the store at a time (at most audit.scan_max_events a page)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _shown(body: str) -> dict[str, Any]:
    """An event as the API shows it: its fields, and ``leaf_data``, the exact leaf bytes (base64)
    that were hashed, so a client in any language recomputes the leaf hash from the answer."""
    event: dict[str, Any] = json.loads(body)
    event["leaf_data"] = _b64(body.encode())
    return event


class AuditService:
    def __init__(
        self,
        state: BrokerState,
        keys: LogKeys,
        *,
        page_max: int,
        scan_max: int = AuditSettings().scan_max_events,
        origin: str = "",
    ) -> None:
        self.state = state
        self.keys = keys
        self.public = keys.publics[0]  # the active log key
        # ``audit.origin`` when set; else the name fixed when the log's key ring was made (not
        # changed by a rotation, nor by the URL the broker is reached at), which for a data
        # directory from before key rings is the name of every log it wrote.
        self.origin = origin or keys.origin
        self.page_max = page_max
        self.scan_max = scan_max

    def _sign(self, text: str) -> str:
        """Signed by the active log key, and co-signed by each in overlap (pinned verifiers)."""
        note = sign_note(text, self.origin, self.keys.signers[0])
        for other in self.keys.signers[1:]:
            note = cosign_note(note, self.origin, other)
        return note

    async def checkpoint(self, now: datetime) -> tuple[int, str]:
        """Sign the log as it stands (a no-op when that size is signed already)."""
        return await audit_repo.create_checkpoint(self.state.engine, self.origin, self._sign, now)

    def authorize(self, contact: str, now: datetime) -> None:
        decision = self.state.view.authorizer.read_audit(contact, now)
        if not decision.allowed:
            raise Forbidden("only auditors read the audit log")

    def scope(self, contact: str, now: datetime) -> AuditScope:
        """The jurisdictions this auditor sees (Cedar ``audit_jurisdiction``), decided now."""
        return self.state.view.authorizer.audit_scope(contact, now)

    async def events(
        self,
        contact: str,
        filters: Mapping[str, Any],
        *,
        after: int,
        limit: int,
        now: datetime,
        hidden_leaves: bool = False,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """A page of the events this auditor sees. With ``hidden_leaves`` (and no filter), every
        other event is in its place as ``{"seq", "hidden": true, "leaf"}``: the chain and the
        Merkle root recompute, and nothing of its content is shown. ``filters`` are the fields
        of ``EventFilter`` (since, until, actor, action, notice, channel, exercise), None where
        unset."""
        where = EventFilter(**filters)
        self.authorize(contact, now)
        scope = self.scope(contact, now)
        limit = max(1, min(limit, self.page_max))
        shown, cursor = await self._page(where, after, limit, scope, hidden_leaves)
        await self._record(
            contact,
            "audit.read",
            now,
            {
                "filter": {k: str(v) for k, v in vars(where).items() if v},
                "after": after,
                "returned": len(shown),
                "hidden_leaves": hidden_leaves,
            },
            scope.policy_ids,
            request_id,
        )
        return {"events": shown, "next_cursor": cursor}

    async def _page(
        self, where: EventFilter, after: int, limit: int, scope: AuditScope, hidden_leaves: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Scan forward from ``after`` (at most ``scan_max`` rows per page, so that a sparse
        scope costs a bounded amount per request) until ``limit`` events are shown."""
        directory, shown, position, scanned = self.state.view.directory, [], after, 0
        while True:
            batch = min(SCAN_BATCH, self.scan_max - scanned)
            rows = await audit_repo.read_events(
                self.state.engine, where, after=position, limit=batch
            )
            for row in rows:
                position, scanned = row.seq, scanned + 1
                if visible(row.place, directory, scope.jurisdictions):
                    shown.append(_shown(row.body))
                elif hidden_leaves:
                    shown.append({"seq": row.seq, "hidden": True, "leaf": row.leaf.hex()})
                if len(shown) == limit:
                    return shown, str(row.seq)
            if len(rows) < batch:
                return shown, None
            if scanned >= self.scan_max:
                return shown, str(position)

    async def latest_checkpoint(
        self, contact: str, now: datetime, *, fresh: bool, request_id: str | None = None
    ) -> dict[str, Any]:
        self.authorize(contact, now)
        if fresh:
            size, note = await self.checkpoint(now)
        else:
            stored = await audit_repo.checkpoints(self.state.engine)
            size, note = stored[-1] if stored else await self.checkpoint(now)
        await self._record(
            contact, "audit.checkpoint_read", now, {"size": size}, request_id=request_id
        )
        return {
            "origin": self.origin,
            "key_name": self.origin,
            "public_key": _b64(self.public),
            "public_keys": [_b64(k) for k in self.keys.publics],
            "size": size,
            "note": note,
        }

    async def checkpoint_list(
        self,
        contact: str,
        now: datetime,
        *,
        after: int,
        limit: int,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Every signed checkpoint, by tree size, a page at a time (sizes after ``after``)."""
        self.authorize(contact, now)
        limit = max(1, min(limit, self.page_max))
        page = await audit_repo.checkpoint_page(self.state.engine, after=after, limit=limit + 1)
        more = len(page) > limit
        page = page[:limit]
        await self._record(
            contact,
            "audit.checkpoints_read",
            now,
            {"after": after, "returned": len(page)},
            request_id=request_id,
        )
        return {
            "origin": self.origin,
            "origins": await self._origins(),
            "public_key": _b64(self.public),
            "checkpoints": [
                {"size": size, "note": note, "signed_at": at.isoformat().replace("+00:00", "Z")}
                for size, note, at in page
            ],
            "next_cursor": str(page[-1][0]) if more else None,
        }

    async def continuity(
        self,
        contact: str,
        now: datetime,
        *,
        jurisdiction: str | None = None,
        request_id: str | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        """The continuity report (``liaison directory report``) for an auditor: only the
        jurisdictions their ``audit_jurisdiction`` scope holds, so an auditor sees the roles of
        their own country as they see its events, and nothing of another's. Audited as a read."""
        self.authorize(contact, now)
        scope = self.scope(contact, now)
        view = self.state.view
        if jurisdiction is not None and jurisdiction not in scope.jurisdictions:
            raise NotFound(f"no jurisdiction {jurisdiction!r} in the directory")  # as if absent
        channels = view.policies.channels
        groups = [
            g
            for g in await continuity_report(
                self.state.engine,
                view.directory,
                channels,
                now,
                jurisdiction=jurisdiction,
                language=language,
            )
            if g["jurisdiction"] in scope.jurisdictions
        ]
        await self._record(
            contact,
            "continuity.read",
            now,
            {"jurisdiction": jurisdiction or "", "returned": len(groups)},
            scope.policy_ids,
            request_id,
        )
        return {
            "generated_at": now.isoformat().replace("+00:00", "Z"),
            "directory_revision": view.directory_revision,
            "channels": {c.id: pick(c.title, c.titles, language) for c in channels.values()},
            # Every place this auditor sees, by name (the audit page's chart labels its groups).
            "jurisdiction_names": {
                j: view.directory.jurisdictions[j].name_in(language)
                for j in sorted(scope.jurisdictions)
                if j in view.directory.jurisdictions
            },
            "jurisdictions": groups,
        }

    async def _origins(self) -> list[str]:
        """The names the log's checkpoints were signed under, in order, the current one last."""
        return [*await audit_repo.other_origins(self.state.engine, self.origin), self.origin]

    async def inclusion(
        self, contact: str, seq: int, size: int, now: datetime, *, request_id: str | None = None
    ) -> dict[str, Any]:
        self.authorize(contact, now)
        current = await audit_repo.size(self.state.engine)
        if not 1 <= seq <= size <= current:
            raise NoticeInvalid(
                [Violation("/seq", f"need 1 <= seq <= size <= {current}")], QUERY_INVALID
            )
        entry = await audit_repo.event_leaf(self.state.engine, seq)
        scope = self.scope(contact, now)
        if entry is None or not visible(
            entry.place, self.state.view.directory, scope.jurisdictions
        ):
            raise NotFound("no such event")  # outside one's jurisdiction looks like not found
        leaves = await audit_repo.leaves(self.state.engine, size)
        await self._record(
            contact,
            "audit.proof_read",
            now,
            {"kind": "inclusion", "seq": seq, "size": size},
            scope.policy_ids,
            request_id,
        )
        return {
            "seq": seq,
            "tree_size": size,
            "leaf_index": seq - 1,
            "leaf_hash": _b64(entry.leaf),
            "event": _shown(entry.body),
            "proof": [_b64(h) for h in inclusion_proof(seq - 1, leaves)],
        }

    async def consistency(
        self,
        contact: str,
        first: int,
        second: int,
        now: datetime,
        *,
        request_id: str | None = None,
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
            request_id=request_id,
        )
        return {
            "first": first,
            "second": second,
            "proof": [_b64(h) for h in consistency_proof(first, leaves)],
        }

    async def export(
        self, actor: str, now: datetime, *, request_id: str | None = None
    ) -> AsyncIterator[bytes]:
        """The export: a header with every signed checkpoint (a fresh one last), then each event."""
        exported = AuditEvent(
            at=now, actor=actor, action="audit.exported", object="audit:log", request=request_id
        )
        await audit_repo.append_events(self.state.engine, [exported])
        await self.checkpoint(now)
        notes = [note for _, note in await audit_repo.checkpoints(self.state.engine)]
        header = {
            "format": FORMAT,
            "origin": self.origin,
            "origins": await self._origins(),
            "key_name": self.origin,
            "public_key": _b64(self.public),
            "public_keys": [_b64(k) for k in self.keys.publics],
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
        self,
        contact: str,
        action: str,
        now: datetime,
        details: dict[str, Any],
        scope_policies: tuple[str, ...] = (),
        request_id: str | None = None,
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
                    policies=("access/auditors-read-audit-log", *scope_policies),
                    details=details,
                    request=request_id,
                )
            ],
        )
