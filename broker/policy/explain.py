"""``liaison policy explain``: who would receive a notice and by which rule, without posting it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from broker.domain.notice import NoticeFacts
from broker.policy.channel import Scope
from broker.policy.decide import Authorizer
from broker.policy.payload import payload_violations
from broker.policy.route import NotReached, check_notice, route, scope_jurisdictions


def explain(
    notice: NoticeFacts,
    authorizer: Authorizer,
    now: datetime,
    *,
    body: Any = None,
    check_sender: bool = True,
) -> dict[str, Any]:
    """A complete, JSON-ready account of how ``notice`` would be routed at ``now``."""
    d = authorizer.directory
    channel = check_notice(notice, d, authorizer.policies.channels)
    result = route(notice, authorizer, now)
    publish = authorizer.publish(notice) if check_sender else None
    chosen = {r.role for r in result.recipients} | {n.role for n in result.not_reached}
    not_reached = [*result.not_reached, *_unselected(notice, authorizer, chosen)]
    return {
        "notice": {
            "channel": channel.id,
            "jurisdiction": notice.jurisdiction,
            "jurisdiction_name": d.jurisdictions[notice.jurisdiction].name,
            "severity": notice.severity,
            "sender": notice.sender if check_sender else None,
        },
        "policy_hash": result.policy_hash,
        "marking": channel.marking.value,
        "publish": None
        if publish is None
        else {"allowed": publish.allowed, "policy_ids": list(publish.policy_ids)},
        "payload_violations": [asdict(v) for v in payload_violations(channel, body)]
        if body is not None
        else [],
        "recipients": [
            {
                **asdict(r),
                "contact_name": d.contacts[r.contact].name,
                "role_title": d.roles[r.role].title,
                "jurisdiction_name": d.jurisdictions[r.jurisdiction].name,
            }
            for r in result.recipients
        ],
        "not_reached": [{**asdict(n), "role_title": d.roles[n.role].title} for n in not_reached],
        "escalation": (
            {"after_hours": channel.ack_deadline_hours, "roles": list(channel.escalation)}
            if channel.escalation
            else None
        ),
    }


def _unselected(notice: NoticeFacts, authorizer: Authorizer, chosen: set[str]) -> list[NotReached]:
    """Roles in the jurisdictions the channel's rules look at that no rule selects."""
    d = authorizer.directory
    channel = authorizer.policies.channels[notice.channel]
    jurisdictions: dict[str, None] = {}
    for rule in channel.recipients:
        if rule.scope in (Scope.SAME, Scope.WITHIN, Scope.ABOVE):
            jurisdictions.update(
                dict.fromkeys(scope_jurisdictions(notice.jurisdiction, rule.scope, d))
            )
    jurisdictions.setdefault(notice.jurisdiction, None)
    out = []
    for jid in jurisdictions:
        for role in d.roles_in(jid):
            if role.id in chosen:
                continue
            if role.kind in channel.escalation:
                detail = (
                    f"receives only on escalation, when nobody acknowledges within "
                    f"{channel.ack_deadline_hours} h"
                )
                out.append(NotReached(role.id, jid, "escalation_only", detail))
            else:
                detail = f"no recipient rule of channel {channel.id!r} selects role kind {role.kind!r} here"
                out.append(NotReached(role.id, jid, "not_selected", detail))
    return out


def explain_text(report: dict[str, Any]) -> str:
    """The human form of an explanation, for a terminal."""
    n = report["notice"]
    lines = [
        f"Notice on {n['channel']} ({report['marking']}) for {n['jurisdiction_name']} [{n['jurisdiction']}], "
        f"severity {n['severity']}",
        f"Policy set {report['policy_hash']}",
    ]
    if report["publish"] is not None:
        verdict = "may" if report["publish"]["allowed"] else "may NOT"
        ids = ", ".join(report["publish"]["policy_ids"]) or "no policy permits it"
        lines.append(f"Sender {n['sender']} {verdict} publish it ({ids})")
    for v in report["payload_violations"]:
        lines.append(f"Payload problem at {v['pointer']}: {v['message']}")
    lines.append("")
    lines.append(f"Would receive ({len(report['recipients'])}):")
    for r in report["recipients"]:
        deputy = " [deputy standing in]" if r["deputy"] else ""
        lines.append(
            f"  {r['contact_name']} ({r['contact']}) as {r['role_title']} [{r['role']}]{deputy}"
        )
        lines.append(
            f"      rule {r['rule']}; policies {', '.join(r['policy_ids'])}; key {r['key_id']}"
        )
    if not report["recipients"]:
        lines.append("  nobody")
    if report["not_reached"]:
        lines.append("")
        lines.append(f"Would not receive ({len(report['not_reached'])}):")
        for x in report["not_reached"]:
            lines.append(f"  {x['role_title']} [{x['role']}]: {x['reason']}: {x['detail']}")
    if report["escalation"]:
        esc = report["escalation"]
        lines.append("")
        lines.append(
            f"Escalation: to {', '.join(esc['roles'])} when nobody acknowledges within {esc['after_hours']} h"
        )
    return "\n".join(lines)
