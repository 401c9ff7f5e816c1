"""Routing: from a notice's metadata and the directory, every recipient and the rule behind it.

Two independent checks must agree before anyone receives a notice: the channel's recipient rules
select candidate roles from the directory (jurisdiction scope, role kind), and Cedar must permit
``receive`` for each candidate. No rule, no candidate; no permit, no recipient. A selected role
that nobody can receive for (vacant, or a holder without a usable encryption key) is reported,
never dropped silently. Time is an argument; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from broker.domain.directory import Directory, Role
from broker.domain.notice import NoticeFacts
from broker.errors import UnknownChannel, UnknownJurisdiction
from broker.policy.channel import Channel, RecipientRule, Scope
from broker.policy.decide import Authorizer


@dataclass(frozen=True, slots=True)
class Recipient:
    contact: str
    role: str
    jurisdiction: str
    rule: str
    policy_ids: tuple[str, ...]
    key_id: str
    deputy: bool = False  # standing in for an absent or missing holder


@dataclass(frozen=True, slots=True)
class NotReached:
    """A role in scope that will not receive the notice, and why (a stable reason code)."""

    role: str
    jurisdiction: str
    reason: str  # denied_by_policy | vacant | no_encryption_key | not_selected | escalation_only
    detail: str
    rule: str | None = None
    policy_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    notice: NoticeFacts
    policy_hash: str
    recipients: tuple[Recipient, ...]
    not_reached: tuple[NotReached, ...] = ()

    @property
    def contacts(self) -> tuple[str, ...]:
        """Each recipient contact once, in routing order."""
        return tuple(dict.fromkeys(r.contact for r in self.recipients))


def check_notice(
    notice: NoticeFacts, directory: Directory, channels: dict[str, Channel]
) -> Channel:
    """The channel, after checking that channel and jurisdiction exist."""
    channel = channels.get(notice.channel)
    if channel is None:
        raise UnknownChannel("unknown channel", detail=notice.channel)
    if notice.jurisdiction not in directory.jurisdictions:
        raise UnknownJurisdiction("unknown jurisdiction", detail=notice.jurisdiction)
    return channel


def route(notice: NoticeFacts, authorizer: Authorizer, now: datetime) -> Route:
    """Every recipient of ``notice`` at ``now``, with the rule and policies that chose them."""
    directory, policies = authorizer.directory, authorizer.policies
    channel = check_notice(notice, directory, policies.channels)
    candidates = dict(_candidates(notice, channel, directory))  # role id -> rule, first rule wins
    recipients, not_reached = deliver_to(
        notice, [(role_id, rule.rule) for role_id, rule in candidates.items()], authorizer, now
    )
    return Route(notice, policies.hash, tuple(recipients), tuple(not_reached))


def deliver_to(
    notice: NoticeFacts,
    roles: Sequence[tuple[str, str]],
    authorizer: Authorizer,
    now: datetime,
) -> tuple[list[Recipient], list[NotReached]]:
    """Who receives ``notice`` at ``now`` through each (role id, rule name): the one decision
    every delivery path takes (first routing, updates, escalation, succession).

    Cedar decides ``receive`` for each role against the directory and policies in ``authorizer``
    (one batch); a permitted role reaches whoever acts for it at ``now`` (present holders, else
    deputies) with a usable encryption key. A former holder is never among them.
    """
    directory = authorizer.directory
    known = [(r, rule) for r, rule in roles if r in directory.roles]
    decisions = authorizer.receive(notice, [r for r, _ in known])
    recipients: list[Recipient] = []
    not_reached: list[NotReached] = []
    for (role_id, rule), decision in zip(known, decisions, strict=True):
        where = directory.jurisdiction_of_role(role_id)
        if not decision.allowed:
            detail = (
                ("forbidden by " + ", ".join(decision.policy_ids))
                if decision.policy_ids
                else "no policy permits this role to receive it"
            )
            not_reached.append(
                NotReached(role_id, where, "denied_by_policy", detail, rule, decision.policy_ids)
            )
            continue
        found, missing = _holders(directory, role_id, where, rule, decision.policy_ids, now)
        recipients += found
        not_reached += missing
    return recipients, not_reached


def candidate_roles(notice: NoticeFacts, channel: Channel, directory: Directory) -> list[str]:
    """The roles the channel's rules select for ``notice``, before any policy decision."""
    return [role_id for role_id, _ in _candidates(notice, channel, directory)]


def _candidates(
    notice: NoticeFacts, channel: Channel, directory: Directory
) -> Iterator[tuple[str, RecipientRule]]:
    seen: set[str] = set()
    for rule in channel.recipients:
        for role in _selected(notice, rule, directory):
            if role.id not in seen:
                seen.add(role.id)
                yield role.id, rule


def _selected(notice: NoticeFacts, rule: RecipientRule, d: Directory) -> Iterator[Role]:
    kinds = set(rule.roles)
    for role in _roles_in_scope(notice, rule.scope, d):
        level = d.jurisdictions[d.jurisdiction_of_role(role.id)].level
        if (not kinds or role.kind in kinds) and (not rule.levels or level in rule.levels):
            yield role


def _roles_in_scope(notice: NoticeFacts, scope: Scope, d: Directory) -> Iterator[Role]:
    if scope is Scope.ADDRESSED:
        addressed = set(notice.addressees)
        yield from (r for r in d.roles.values() if r.organisation in addressed)
        return
    if scope is Scope.REQUESTER:
        if notice.reply_to_role in d.roles:
            yield d.roles[notice.reply_to_role]
        return
    for jurisdiction in scope_jurisdictions(notice.jurisdiction, scope, d):
        yield from d.roles_in(jurisdiction)


def scope_jurisdictions(jurisdiction: str, scope: Scope, d: Directory) -> list[str]:
    """The jurisdictions a jurisdictional scope covers, for a notice addressed to ``jurisdiction``."""
    if scope is Scope.SAME:
        return [jurisdiction]
    if scope is Scope.WITHIN:
        return [jurisdiction, *(j.id for j in d.descendants(jurisdiction))]
    if scope is Scope.ABOVE:
        return [j.id for j in d.ancestors(jurisdiction)]
    return []


def _holders(
    d: Directory,
    role_id: str,
    where: str,
    rule: str,
    policy_ids: tuple[str, ...],
    now: datetime,
) -> tuple[list[Recipient], list[NotReached]]:
    acting, deputies = d.acting_for(role_id, now)
    if not acting:
        return [], [
            NotReached(
                role_id,
                where,
                "vacant",
                "no holder or deputy is assigned now",
                rule,
                policy_ids,
            )
        ]
    found: list[Recipient] = []
    missing: list[NotReached] = []
    for assignment in acting:
        key = d.encryption_key(assignment.contact, now)
        if key is None:
            missing.append(
                NotReached(
                    role_id,
                    where,
                    "no_encryption_key",
                    f"{assignment.contact} has no usable X25519 key",
                    rule,
                    policy_ids,
                )
            )
            continue
        found.append(
            Recipient(assignment.contact, role_id, where, rule, policy_ids, key.id, deputies)
        )
    return found, missing
