"""Continuity: is every role some channel routes to held, by someone a notice can reach?

Pure functions over a directory snapshot and the channels, time passed in:
- ``routed_roles``: the roles whose kind a channel's recipient rules or escalation chain names
  (at a jurisdiction level the rule allows);
- ``report``: per jurisdiction, each routed role with its holder, deputies, and what is wrong
  (vacant, held only by a deputy, nobody acting with a usable encryption key, keys or
  assignments ending within ``horizon``, notices past their acknowledgement deadline, with
  exercise and test notices apart);
- ``apply_warnings``: what a new directory would break that the old one did not — a routed role
  left vacant or keyless, keys removed or revoked with no replacement, a role kind no channel (and no existing role)
  knows. ``liaison directory apply`` refuses on any of them without ``--force``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from broker.domain.directory import AssignmentKind, Directory, KeyStatus, KeyType, Role
from broker.policy.channel import Channel

HORIZON = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Overdue:
    """A notice delivered through a role that nobody acknowledged through it by its deadline."""

    notice_id: str
    role: str
    channel: str
    deadline: datetime
    exercise: str | None = None  # an exercise or test notice: reported apart, never as real


@dataclass(frozen=True)
class RoleState:
    role: str
    title: str
    kind: str
    channels: list[str]
    holders: list[str]
    deputies: list[str]
    acting: list[str]
    acting_names: list[str]
    problems: list[str] = field(default_factory=list)
    ending: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    # The same, as data for a page that words it in the reader's language and shows names:
    # ``flags`` are codes of ``problems``; ``ending_items`` and ``overdue_items`` carry the names.
    holder_names: list[str] = field(default_factory=list)
    deputy_names: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    ending_items: list[dict[str, str]] = field(default_factory=list)
    overdue_items: list[dict[str, str]] = field(default_factory=list)
    # Exercise and test notices past their deadline: the same shapes, apart from the real ones
    # (``overdue`` counts only real notices), each item with its ``exercise`` marking.
    exercise_overdue: list[str] = field(default_factory=list)
    exercise_overdue_items: list[dict[str, str]] = field(default_factory=list)


# The code of each problem (the words above are the CLI's; the page has its own, per language).
FLAGS = {
    "vacant": "vacant",
    "held only by a deputy": "deputy_only",
    "no one acting has a usable encryption key": "keyless",
}


def routed_kinds(channels: Mapping[str, Channel]) -> dict[str, set[str]]:
    """Role kind -> the channels that route to it (recipient rules and escalation chains)."""
    kinds: dict[str, set[str]] = {}
    for channel in channels.values():
        for rule in channel.recipients:
            for kind in rule.roles:
                kinds.setdefault(kind, set()).add(channel.id)
        for kind in channel.escalation:
            kinds.setdefault(kind, set()).add(channel.id)
    return kinds


def _channels_for(role: Role, directory: Directory, channels: Mapping[str, Channel]) -> list[str]:
    level = directory.jurisdictions[directory.jurisdiction_of_role(role.id)].level
    out = set()
    for channel in channels.values():
        for rule in channel.recipients:
            if role.kind in rule.roles and (not rule.levels or level in rule.levels):
                out.add(channel.id)
        if role.kind in channel.escalation:
            out.add(channel.id)
    return sorted(out)


def routed_roles(directory: Directory, channels: Mapping[str, Channel]) -> dict[str, list[str]]:
    """Role id -> the channels that may route to it."""
    out = {}
    for role in directory.roles.values():
        found = _channels_for(role, directory, channels)
        if found:
            out[role.id] = found
    return out


def _problems(directory: Directory, role_id: str, now: datetime) -> list[str]:
    acting, deputies = directory.acting_for(role_id, now)
    if not acting:
        return ["vacant"]
    problems = ["held only by a deputy"] if deputies else []
    if all(directory.encryption_key(a.contact, now) is None for a in acting):
        problems.append("no one acting has a usable encryption key")
    return problems


def _ending(directory: Directory, role_id: str, now: datetime, horizon: timedelta) -> list[str]:
    until = now + horizon
    out = []
    for a in directory.assignments_of(role_id):
        end = a.period.end
        if a.active_at(now) and end is not None and end <= until:
            out.append(f"assignment of {a.contact} ({a.kind.value}) ends {_z(end)}")
    for contact in sorted({a.contact for a in directory.assignments_of(role_id)}):
        for key in directory.keys_of(contact):
            end = key.valid.end if key.valid else None
            if key.type is KeyType.X25519 and key.usable_at(now) and end and end <= until:
                out.append(f"key {key.id} of {contact} ends {_z(end)}")
    return out


def _ending_items(
    directory: Directory, role_id: str, now: datetime, horizon: timedelta
) -> list[dict[str, str]]:
    """``_ending`` as data: what ends (an assignment or a key), whose, and when."""
    until = now + horizon
    out = []
    for a in directory.assignments_of(role_id):
        end = a.period.end
        if a.active_at(now) and end is not None and end <= until:
            out.append(_item("assignment", directory, a.contact, end, as_=a.kind.value))
    for contact in sorted({a.contact for a in directory.assignments_of(role_id)}):
        for key in directory.keys_of(contact):
            end = key.valid.end if key.valid else None
            if key.type is KeyType.X25519 and key.usable_at(now) and end and end <= until:
                out.append(_item("key", directory, contact, end, key=key.id))
    return out


def _item(
    what: str, directory: Directory, contact_id: str, end: datetime, **extra: str
) -> dict[str, str]:
    contact = directory.contacts.get(contact_id)
    named = {"what": what, "contact": contact_id, "name": contact.name if contact else contact_id}
    return {**named, "ends": _z(end), **{k.rstrip("_"): v for k, v in extra.items()}}


def _name(directory: Directory, contact_id: str) -> str:
    contact = directory.contacts.get(contact_id)
    return f"{contact.name} ({contact_id})" if contact else contact_id


def _z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def role_state(
    directory: Directory,
    role_id: str,
    channels: list[str],
    now: datetime,
    overdue: Iterable[Overdue] = (),
    horizon: timedelta = HORIZON,
) -> RoleState:
    role = directory.roles[role_id]
    assignments = [a for a in directory.assignments_of(role_id) if a.active_at(now)]
    acting, _ = directory.acting_for(role_id, now)
    problems = _problems(directory, role_id, now)
    holders = [a.contact for a in assignments if a.kind is AssignmentKind.HOLDER]
    deputies = [a.contact for a in assignments if a.kind is AssignmentKind.DEPUTY]
    real = [o for o in overdue if o.exercise is None]
    drills = [o for o in overdue if o.exercise is not None]
    return RoleState(
        role=role_id,
        title=role.title,
        kind=role.kind,
        channels=channels,
        holders=holders,
        deputies=deputies,
        acting=[a.contact for a in acting],
        acting_names=[_name(directory, a.contact) for a in acting],
        problems=problems,
        ending=_ending(directory, role_id, now, horizon),
        overdue=[f"{o.notice_id} on {o.channel}, due {_z(o.deadline)}" for o in real],
        holder_names=[_plain_name(directory, c) for c in holders],
        deputy_names=[_plain_name(directory, c) for c in deputies],
        flags=[FLAGS[p] for p in problems],
        ending_items=_ending_items(directory, role_id, now, horizon),
        overdue_items=[
            {"notice": o.notice_id, "channel": o.channel, "due": _z(o.deadline)} for o in real
        ],
        exercise_overdue=[
            f"{o.notice_id} on {o.channel} ({o.exercise}), due {_z(o.deadline)}" for o in drills
        ],
        exercise_overdue_items=[
            {
                "notice": o.notice_id,
                "channel": o.channel,
                "due": _z(o.deadline),
                "exercise": str(o.exercise),
            }
            for o in drills
        ],
    )


def _plain_name(directory: Directory, contact_id: str) -> str:
    contact = directory.contacts.get(contact_id)
    return contact.name if contact else contact_id


def report(
    directory: Directory,
    channels: Mapping[str, Channel],
    now: datetime,
    *,
    overdue: Iterable[Overdue] = (),
    jurisdiction: str | None = None,
    language: str | None = None,
) -> list[dict[str, Any]]:
    """Per jurisdiction (under ``jurisdiction`` when given), each routed role and its state;
    names and titles in ``language`` (broker.titles), else the directory's default text."""
    within = None
    if jurisdiction is not None:
        within = {jurisdiction, *(j.id for j in directory.descendants(jurisdiction))}
    late: dict[str, list[Overdue]] = {}
    for o in overdue:
        late.setdefault(o.role, []).append(o)
    groups: dict[str, list[dict[str, Any]]] = {}
    for role_id, found in sorted(routed_roles(directory, channels).items()):
        jid = directory.jurisdiction_of_role(role_id)
        if within is None or jid in within:
            state = role_state(directory, role_id, found, now, late.get(role_id, ()))
            item = asdict(state) | {"title": directory.roles[role_id].title_in(language)}
            groups.setdefault(jid, []).append(item)
    return [
        {
            "jurisdiction": jid,
            "name": directory.jurisdictions[jid].name_in(language),
            "level": directory.jurisdictions[jid].level,
            "roles": roles,
        }
        for jid, roles in sorted(groups.items())
    ]


def apply_warnings(
    old: Directory, new: Directory, channels: Mapping[str, Channel], now: datetime
) -> list[str]:
    """What applying ``new`` would break that ``old`` had right; empty when nothing."""
    warnings = []
    routed = routed_roles(new, channels)
    for role_id in sorted(routed):
        after = set(_problems(new, role_id, now)) - {"held only by a deputy"}
        before = set(_problems(old, role_id, now)) if role_id in old.roles else set()
        for problem in sorted(after - before):
            warnings.append(f"role {role_id} ({new.roles[role_id].title}): {problem}")
    for role_id in sorted(set(routed_roles(old, channels)) - set(new.roles)):
        warnings.append(f"role {role_id} is removed, and channels route to it")
    removed = sorted(k for k in set(old.keys) - set(new.keys) if _unreplaced(old, new, k, now))
    if removed:
        warnings.append(f"{len(removed)} key(s) removed with no replacement: {_few(removed)}")
    revoked = sorted(
        k
        for k, key in new.keys.items()
        if key.status is KeyStatus.REVOKED
        and k in old.keys
        and old.keys[k].status != key.status
        and _unreplaced(old, new, k, now)
    )
    if revoked:
        warnings.append(f"{len(revoked)} key(s) revoked with no replacement: {_few(revoked)}")
    known = set(routed_kinds(channels)) | {r.kind for r in old.roles.values()}
    for role in sorted(new.roles.values(), key=lambda r: r.id):
        if role.kind not in known:
            warnings.append(f"role {role.id}: kind {role.kind!r} is one no channel knows")
    return warnings


def _unreplaced(old: Directory, new: Directory, key_id: str, now: datetime) -> bool:
    """Does the owner of ``key_id`` keep no usable key of its type? (Replacing a key is routine.)"""
    gone = old.keys[key_id]
    return not any(
        k.type is gone.type and k.usable_at(now) and k.id != key_id for k in new.keys_of(gone.owner)
    )


def _few(ids: list[str], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more
