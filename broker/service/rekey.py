"""Key changes keep notices readable: a contact's active notices follow their new X25519 key.

When a directory revision replaces, retires or revokes a contact's encryption key (or a key's
validity period begins or ends), every active notice wrapped for that contact under another key
is re-wrapped for the contact's current key, from the broker's escrow wrap — as succession does.

Invariants:
- only a contact who may still read the notice now (policy ``read_notice``, through the roles it
  reached them by) gets a new wrap: a former holder whose key changes gets nothing;
- each re-wrap is one transaction with its audit events (``escrow.used`` with purpose
  ``notice.rewrapped``, then ``notice.rewrapped`` naming the old and the new key), and happens
  once for one change, whichever process runs it first;
- every path reads the wrap from the store: the inbox fetch, the live push (which carries no
  wrap; the client fetches) and ciphertext webhooks, which are sent again with the new wrap.
Time is passed in.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from itertools import groupby
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.envelope import unwrap, wrap
from broker.domain.directory import Directory, KeyType
from broker.logs import get_logger
from broker.service.announcements import rewrap_rows
from broker.service.intake_write import ESCROW
from broker.state import BrokerState, View
from broker.store import deliveries_repo, intake_repo
from broker.store import rekey_repo as repo

log = get_logger("liaison.rekey")


def current_keys(directory: Directory, now: datetime) -> dict[str, str]:
    """Each contact's encryption key in force at ``now`` (contacts without one are left out)."""
    out = {}
    for contact_id in directory.contacts:
        key = directory.encryption_key(contact_id, now)
        if key is not None:
            out[contact_id] = key.id
    return out


def _stale_keys(
    directory: Directory, current: dict[str, str], previous: dict[str, str]
) -> set[str]:
    """Encryption keys no longer in force: those the directory lists as retired, revoked or out
    of their validity, and those in force at the last run that are not now (removed ones too)."""
    in_force = set(current.values())
    listed = {k.id for k in directory.keys.values() if k.type is KeyType.X25519}
    return (listed | set(previous.values())) - in_force


def _boundaries(directory: Directory) -> list[datetime]:
    """The times at which some X25519 key's validity begins or ends."""
    return [
        t
        for k in directory.keys.values()
        if k.type is KeyType.X25519 and k.valid is not None
        for t in (k.valid.start, k.valid.end)
        if t is not None
    ]


class Rekeyer:
    """Re-wraps stale wraps; ``run`` is cheap when no key changed since its last run."""

    def __init__(self, state: BrokerState, escrow_private: bytes) -> None:
        self.state = state
        self.escrow_private = escrow_private
        self._seen: tuple[int, datetime] | None = None  # directory revision and time last run
        self._keys: dict[str, str] | None = None  # contact -> key in force at the last run
        self._lock = asyncio.Lock()

    async def run(self, now: datetime) -> int:
        """Re-wrap what a key change left behind; returns how many wraps were replaced."""
        async with self._lock:
            view = self.state.view
            if not self._due(view, now):
                return 0
            current = current_keys(view.directory, now)
            stale = _stale_keys(view.directory, current, self._keys or {})
            if self._keys is None:  # start-up: keys removed while no broker was running
                wrapped = await repo.wrapped_key_ids(self.state.engine, ESCROW)
                stale |= wrapped - set(current.values())
            done = await self._rewrap_all(view, stale, current, now) if stale else 0
            self._keys, self._seen = current, (view.directory_revision, now)
            return done

    def _due(self, view: View, now: datetime) -> bool:
        if self._seen is None or self._seen[0] != view.directory_revision:
            return True
        last = self._seen[1]
        return any(last < t <= now for t in _boundaries(view.directory))

    async def _rewrap_all(
        self, view: View, stale: set[str], current: dict[str, str], now: datetime
    ) -> int:
        held = [
            w
            for w in await repo.wraps_for_keys(self.state.engine, sorted(stale))
            if w.contact in current and w.key_id != current[w.contact]
        ]
        done = 0
        for notice_id, group in groupby(held, key=lambda w: w.notice_id):
            done += await self._rewrap_notice(view, notice_id, list(group), current, now)
        if done:
            log.info("notices_rewrapped", wraps=done)
        return done

    async def _rewrap_notice(
        self,
        view: View,
        notice_id: str,
        held: list[repo.HeldWrap],
        current: dict[str, str],
        now: datetime,
    ) -> int:
        db = self.state.engine
        notice = await intake_repo.get_notice(db, notice_id)
        wraps = await intake_repo.wraps_of(db, notice_id)
        if notice is None or ESCROW not in wraps:
            log.error("escrow_wrap_missing", notice_id=notice_id)
            return 0
        deliveries = await deliveries_repo.deliveries_of(db, notice_id)
        channel = view.policies.channels.get(notice.channel)
        data_key = unwrap(wraps[ESCROW][1], self.escrow_private)
        done = 0
        for w in held:
            roles = [d.role for d in deliveries if d.contact == w.contact]
            if (
                not roles
                or not view.authorizer.read_notices(w.contact, [(notice.facts(), roles)], now)[
                    0
                ].allowed
            ):
                continue  # no longer entitled: a former holder gets no new wrap
            new_key = view.directory.keys[current[w.contact]]
            outbox = (
                rewrap_rows(view, notice_id, channel, w.contact, new_key.id, now)
                if channel is not None
                else []
            )
            done += await repo.replace_wrap(
                db,
                w,
                key_id=new_key.id,
                sealed=wrap(data_key, new_key.public),
                audit=_events(notice_id, w, new_key.id, roles, now),
                outbox=outbox,
            )
        return done


def _events(
    notice_id: str, held: repo.HeldWrap, key_id: str, roles: list[str], now: datetime
) -> list[AuditEvent]:
    """The use of the escrow key, then the re-wrap with the old and the new key."""
    details: dict[str, Any] = {"recipient": held.contact, "key": key_id}
    return [
        AuditEvent(
            at=now,
            actor="broker",
            action="escrow.used",
            object=f"notice:{notice_id}",
            details={**details, "purpose": "notice.rewrapped"},
        ),
        AuditEvent(
            at=now,
            actor="broker",
            action="notice.rewrapped",
            object=f"notice:{notice_id}",
            decision="allow",
            details={
                "contact": held.contact,
                "from_key": held.key_id,
                "to_key": key_id,
                "roles": sorted(set(roles)),
                "reason": "key_changed",
            },
        ),
    ]
