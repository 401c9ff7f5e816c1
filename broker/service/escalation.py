"""Escalation and succession: notices reach the next role, or the next holder, when they must.

- Escalation: a delivery that nobody acknowledged through its role within the channel's
  ``ack_deadline_hours`` is escalated to the next role kind of the channel's chain, in the same
  jurisdiction (level n escalates to chain[n]). The source delivery is marked escalated in the
  same transaction that adds the new one, so it escalates once. An exercise or test notice
  never escalates ("beyond the exercise" is any role kind the channel's chain adds): it stays
  with the roles routing chose, and the continuity report lists it overdue apart.
- Succession: when a role passes to a new holder (or a deputy stands in), each contact now acting
  for a role with an open notice (no one acknowledged it through that role) receives it;
  exercise and test notices too, since the new holder stands in the same, exercised role.
- Both re-wrap the notice's data key from the broker's escrow wrap for the new recipient; the
  escrow key is used for nothing else, and every use is logged with the notice and recipient.
Time is passed to ``tick``: tests drive it with a frozen clock.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.envelope import unwrap, wrap
from broker.domain.notice import NoticeFacts
from broker.domain.writes import KeyWrap, NewDelivery
from broker.logs import get_logger
from broker.metrics import ESCALATIONS
from broker.policy.route import deliver_to
from broker.service.intake import ESCROW, Announcements
from broker.service.recipients import Recipients
from broker.state import BrokerState, View
from broker.store import escalation_repo as repo
from broker.store import intake_repo, rows

log = get_logger("liaison.escalation")


@dataclass(frozen=True)
class NewRecipient:
    contact: str
    role: str
    jurisdiction: str
    rule: str
    level: int
    key_id: str
    policy_ids: tuple[str, ...] = ()
    deputy: bool = False


@dataclass(frozen=True)
class TickResult:
    escalated: int
    succeeded: int


class EscalationWorker:
    def __init__(
        self,
        state: BrokerState,
        recipients: Recipients,
        escrow_private: bytes,
        announcements: Announcements | None = None,
    ) -> None:
        self.state = state
        self.recipients = recipients
        self.escrow_private = escrow_private
        self.announcements = announcements

    async def tick(self, now: datetime) -> TickResult:
        view = self.state.view
        escalated = await self._escalate(view, now)
        succeeded = await self._succeed(view, now)
        ESCALATIONS.labels("escalation").inc(escalated)
        ESCALATIONS.labels("succession").inc(succeeded)
        return TickResult(escalated, succeeded)

    async def _escalate(self, view: View, now: datetime) -> int:
        chains = {
            c.id: c
            for c in view.policies.channels.values()
            if c.escalation and c.ack_deadline_hours
        }
        # Only what is past its deadline with a level left is read (the check below stays).
        cutoffs = {
            c.id: (now - timedelta(hours=c.ack_deadline_hours or 0), len(c.escalation))
            for c in chains.values()
        }
        due: dict[str, list[repo.OpenDelivery]] = defaultdict(list)
        for d in await repo.open_deliveries(self.state.engine, list(chains), cutoffs):
            channel = chains[d.channel]
            deadline = d.created_at + timedelta(hours=channel.ack_deadline_hours or 0)
            if not d.acked_role and d.level < len(channel.escalation) and deadline <= now:
                due[d.notice_id].append(d)
        added = 0
        for notice_id, sources in due.items():
            notice = await intake_repo.get_notice(self.state.engine, notice_id)
            if notice is None:
                continue
            channel = chains[sources[0].channel]
            roles: dict[str, tuple[str, int]] = {}  # role -> (rule, level), first source wins
            for source in sources:
                kind = channel.escalation[source.level]
                rule = f"channel/{channel.id}/escalation/{source.level + 1}"
                for role in view.directory.roles_in(source.jurisdiction):
                    if role.kind == kind:
                        roles.setdefault(role.id, (rule, source.level + 1))
            targets = self._acting(view, notice.facts(), roles, now)
            if not targets:
                # Nobody can receive the escalation now: keep the sources open, try next tick.
                log.warning(
                    "escalation_target_unreachable", notice_id=notice_id, channel=channel.id
                )
                continue
            added += await self._deliver(notice_id, targets, now, escalated=[s.id for s in sources])
        return added

    async def _succeed(self, view: View, now: datetime) -> int:
        added = 0
        open_roles: dict[str, dict[str, set[str]]] = defaultdict(dict)
        for (notice_id, role_id), contacts in (
            await repo.role_holders_of_open_notices(self.state.engine)
        ).items():
            open_roles[notice_id][role_id] = contacts
        for notice_id, roles in open_roles.items():
            acting = {
                role_id
                for role_id, contacts in roles.items()
                if role_id in view.directory.roles
                and not {a.contact for a in view.directory.acting_for(role_id, now)[0]} <= contacts
            }
            if not acting:
                continue
            notice = await intake_repo.get_notice(self.state.engine, notice_id)
            if notice is None:
                continue
            new = [
                r
                for r in self._acting(
                    view, notice.facts(), {role: ("succession", 0) for role in acting}, now
                )
                if r.contact not in roles[r.role]
            ]
            if new:
                added += await self._deliver(notice_id, new, now, escalated=[])
        return added

    def _acting(
        self,
        view: View,
        notice: NoticeFacts,
        roles: dict[str, tuple[str, int]],
        now: datetime,
    ) -> list[NewRecipient]:
        """Whoever acts for each role now, if policy lets that role receive the notice now."""
        found, missing = deliver_to(
            notice, [(role, rule) for role, (rule, _) in roles.items()], view.authorizer, now
        )
        for n in missing:
            log.warning("recipient_unreachable", notice_id=notice.id, role=n.role, reason=n.reason)
        return [
            NewRecipient(
                r.contact,
                r.role,
                r.jurisdiction,
                r.rule,
                roles[r.role][1],
                r.key_id,
                r.policy_ids,
                r.deputy,
            )
            for r in found
        ]

    async def _announcements(
        self, view: View, notice_id: str, new: list[NewRecipient], now: datetime
    ) -> list[dict[str, Any]]:
        """Webhook and e-mail rows for the new recipients, as for any delivery."""
        if self.announcements is None or not new:
            return []
        meta = await intake_repo.notice_columns(self.state.engine, notice_id, ["channel"])
        channel = view.policies.channels.get(meta["channel"]) if meta else None
        if channel is None:
            return []
        return self.announcements(view, notice_id, channel, [(r.contact, r.role) for r in new], now)

    async def _deliver(
        self, notice_id: str, new: list[NewRecipient], now: datetime, *, escalated: list[int]
    ) -> int:
        """Give ``new`` the notice: re-wrap its key from the escrow, add the deliveries (and mark
        ``escalated`` sources) in one transaction, then announce them."""
        view = self.state.view
        wraps = await intake_repo.wraps_of(self.state.engine, notice_id)
        if ESCROW not in wraps:
            log.error("escrow_wrap_missing", notice_id=notice_id)
            return 0
        new_wraps = self._rewrap(view, wraps, new)
        ids = await repo.add_recipients(
            self.state.engine,
            notice_id=notice_id,
            deliveries=rows.delivery_rows(notice_id, [_delivery(r) for r in new], now),
            wraps=rows.wrap_rows(notice_id, new_wraps),
            escalated=escalated,
            now=now,
            audit=_events(notice_id, new, new_wraps, escalated, now),
            outbox=await self._announcements(view, notice_id, new, now),
        )
        if ids:
            log.info(
                "notice_redelivered",
                notice_id=notice_id,
                recipients=len(ids),
                reason="escalation" if escalated else "succession",
            )
            await self.recipients.announce_deliveries(ids)
        return len(ids)

    def _rewrap(
        self, view: View, wraps: dict[str, tuple[str, bytes]], new: list[NewRecipient]
    ) -> list[KeyWrap]:
        """The data key, unwrapped from the escrow wrap, wrapped for each contact without one."""
        data_key = unwrap(wraps[ESCROW][1], self.escrow_private) if new else b""
        return [
            KeyWrap(r.contact, r.key_id, wrap(data_key, view.directory.keys[r.key_id].public))
            for r in new
            if r.contact not in wraps
        ]


def _delivery(r: NewRecipient) -> NewDelivery:
    return NewDelivery(
        r.contact, r.role, r.jurisdiction, r.rule, r.policy_ids, r.deputy, escalation_level=r.level
    )


def _events(
    notice_id: str,
    new: list[NewRecipient],
    new_wraps: list[KeyWrap],
    escalated: list[int],
    now: datetime,
) -> list[AuditEvent]:
    """Each use of the escrow key, then each new delivery with the rule that chose it."""
    action = "notice.escalated" if escalated else "notice.succeeded"
    return [
        AuditEvent(
            at=now,
            actor="broker",
            action="escrow.used",
            object=f"notice:{notice_id}",
            details={"recipient": w.recipient, "key": w.key_id, "purpose": action},
        )
        for w in new_wraps
    ] + [
        AuditEvent(
            at=now,
            actor="broker",
            action=action,
            object=f"notice:{notice_id}",
            decision="allow",
            policies=r.policy_ids,
            details={
                "role": r.role,
                "contact": r.contact,
                "jurisdiction": r.jurisdiction,
                "rule": r.rule,
                "level": r.level,
                "from_deliveries": list(escalated),
            },
        )
        for r in new
    ]
