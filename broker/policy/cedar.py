"""Cedar: the schema of our entities, channel rules compiled to Cedar, and statement splitting.

Every policy, generated or hand-written, carries an ``@id`` annotation; decisions report those
ids, so the audit log can say which rule let a notice reach a role. Cedar denies by default: a
request no ``permit`` matches is refused, and any matching ``forbid`` wins over every ``permit``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from broker.domain.directory import Directory
from broker.policy.channel import Channel, RecipientRule, Scope

NS = "Liaison"

CEDAR_SCHEMA = """
namespace Liaison {
  entity Jurisdiction in [Jurisdiction] = { level: String };
  entity Organisation = { kind: String, jurisdiction: Jurisdiction };
  entity Role = { kind: String, jurisdiction: Jurisdiction, organisation: Organisation };
  entity Contact = { organisation: Organisation, role_kinds: Set<String>, roles: Set<Role> };
  entity Channel;
  entity Notice = {
    channel: Channel,
    jurisdiction: Jurisdiction,
    country: Jurisdiction,
    severity: String,
    sender: Organisation,
    addressees: Set<Organisation>,
    reply_to_roles: Set<Role>,
    recipient_roles: Set<Role>,
  };
  entity AuditLog;
  entity Operator;
  action publish appliesTo { principal: Organisation, resource: Notice };
  action receive appliesTo { principal: Role, resource: Notice };
  action read_status appliesTo { principal: Organisation, resource: Notice };
  action read_audit appliesTo { principal: Contact, resource: AuditLog };
  action audit_jurisdiction appliesTo { principal: Contact, resource: Jurisdiction };
  action read_notice appliesTo { principal: Contact, resource: Notice };
  // Reserved: nothing asks it (operators act on the broker host, each change audited). It stays
  // in the schema so that a data directory's older access.cedar that still permits it loads.
  action administer appliesTo { principal: Operator, resource: [Channel, Jurisdiction, AuditLog] };
}
"""


def uid(kind: str, ident: str) -> str:
    return f"{NS}::{kind}::{json.dumps(ident)}"


def ref(kind: str, ident: str) -> dict[str, Any]:
    return {"__entity": {"type": f"{NS}::{kind}", "id": ident}}


def _quoted(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


# -- channel rules compiled to Cedar ---------------------------------------------------------


def rule_policy_id(channel: str, rule: str) -> str:
    return f"channel/{channel}/receive/{rule}"


def publish_policy_id(channel: str) -> str:
    return f"channel/{channel}/publish"


def escalation_policy_id(channel: str) -> str:
    return f"channel/{channel}/escalation"


def compile_channel(channel: Channel) -> list[Statement]:
    """The Cedar policies a channel file stands for: one publish rule, one per recipient rule."""
    return [
        Statement(_publish(channel), channel.line, publish_policy_id(channel.id)),
        *(
            Statement(_receive(channel, r), channel.line, rule_policy_id(channel.id, r.rule))
            for r in channel.recipients
        ),
        *(
            [Statement(_escalation(channel), channel.line, escalation_policy_id(channel.id))]
            if channel.escalation
            else []
        ),
    ]


def _publish(channel: Channel) -> str:
    who = []
    if channel.publisher_kinds:
        who.append(f"{_quoted(channel.publisher_kinds)}.contains(principal.kind)")
    if channel.publisher_organisations:
        orgs = ", ".join(uid("Organisation", o) for o in channel.publisher_organisations)
        who.append(f"[{orgs}].contains(principal)")
    conditions = [f"resource.channel == {uid('Channel', channel.id)}", "(" + " || ".join(who) + ")"]
    if channel.jurisdiction_levels:
        conditions.append(
            f"{_quoted(channel.jurisdiction_levels)}.contains(resource.jurisdiction.level)"
        )
    conditions.append(f"{_quoted(channel.severities)}.contains(resource.severity)")
    return (
        f'@id("{publish_policy_id(channel.id)}")\n'
        f'permit (principal is {NS}::Organisation, action == {NS}::Action::"publish", '
        f"resource is {NS}::Notice)\nwhen {{ " + " && ".join(conditions) + " };"
    )


_SCOPE_CONDITION = {
    Scope.SAME: "principal.jurisdiction == resource.jurisdiction",
    Scope.WITHIN: "principal.jurisdiction in resource.jurisdiction",
    Scope.ABOVE: "resource.jurisdiction in principal.jurisdiction && principal.jurisdiction != resource.jurisdiction",
    Scope.ADDRESSED: "resource.addressees.contains(principal.organisation)",
    Scope.REQUESTER: "resource.reply_to_roles.contains(principal)",
}


def _receive(channel: Channel, rule: RecipientRule) -> str:
    conditions = [f"resource.channel == {uid('Channel', channel.id)}", _SCOPE_CONDITION[rule.scope]]
    if rule.roles:
        conditions.append(f"{_quoted(rule.roles)}.contains(principal.kind)")
    if rule.levels:
        conditions.append(f"{_quoted(rule.levels)}.contains(principal.jurisdiction.level)")
    return (
        f'@id("{rule_policy_id(channel.id, rule.rule)}")\n'
        f'permit (principal is {NS}::Role, action == {NS}::Action::"receive", '
        f"resource is {NS}::Notice)\nwhen {{ " + " && ".join(conditions) + " };"
    )


def _escalation(channel: Channel) -> str:
    """The roles of the escalation chain receive on the notice's line of the tree (the same
    jurisdiction, one below it or one above it, as the deliveries they escalate), and only on
    this channel; the worker picks the level, Cedar decides whether the role may receive."""
    conditions = [
        f"resource.channel == {uid('Channel', channel.id)}",
        f"{_quoted(channel.escalation)}.contains(principal.kind)",
        "(principal.jurisdiction in resource.jurisdiction"
        " || resource.jurisdiction in principal.jurisdiction)",
    ]
    return (
        f'@id("{escalation_policy_id(channel.id)}")\n'
        f'permit (principal is {NS}::Role, action == {NS}::Action::"receive", '
        f"resource is {NS}::Notice)\nwhen {{ " + " && ".join(conditions) + " };"
    )


# -- hand-written .cedar files ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    text: str
    line: int  # first line of the statement (its annotations included)
    policy_id: str | None


_ID = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


def split_statements(text: str) -> tuple[list[Statement], str | None]:
    """Split Cedar source at top-level semicolons, outside strings and comments.

    Returns the statements and the trailing text that is not a complete statement, if any.
    """
    statements: list[Statement] = []
    start, line, start_line = 0, 1, None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end == -1 else end
            continue
        elif ch == '"':
            start_line = start_line or line
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif ch == ";":
            body = text[start : i + 1]
            match = _ID.search(body)
            statements.append(
                Statement(body.strip(), start_line or line, match.group(1) if match else None)
            )
            start, start_line = i + 1, None
        elif not ch.isspace() and start_line is None:
            start_line = line
        i += 1
    rest = _strip_comments(text[start:]).strip()
    return statements, (rest or None)


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


# -- entities ---------------------------------------------------------------------------------


def directory_entities(directory: Directory, channels: Iterable[str]) -> list[dict[str, Any]]:
    """The stable part of the entity graph: jurisdictions, organisations, roles, channels."""
    d = directory
    entities: list[dict[str, Any]] = []
    for j in d.jurisdictions.values():
        parents = [{"type": f"{NS}::Jurisdiction", "id": j.parent}] if j.parent else []
        entities.append(
            {
                "uid": {"type": f"{NS}::Jurisdiction", "id": j.id},
                "attrs": {"level": j.level},
                "parents": parents,
            }
        )
    for o in d.organisations.values():
        entities.append(
            {
                "uid": {"type": f"{NS}::Organisation", "id": o.id},
                "attrs": {"kind": o.kind, "jurisdiction": ref("Jurisdiction", o.jurisdiction)},
                "parents": [],
            }
        )
    for r in d.roles.values():
        entities.append(
            {
                "uid": {"type": f"{NS}::Role", "id": r.id},
                "attrs": {
                    "kind": r.kind,
                    "jurisdiction": ref("Jurisdiction", d.jurisdiction_of_role(r.id)),
                    "organisation": ref("Organisation", r.organisation),
                },
                "parents": [],
            }
        )
    for c in channels:
        entities.append({"uid": {"type": f"{NS}::Channel", "id": c}, "attrs": {}, "parents": []})
    return entities
