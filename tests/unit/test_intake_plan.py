"""The pure intake decision, rule by rule: no server, no store, no clock.

Each test gives ``plan`` a view built from the shipped policies and the demo directory, a draft
read from a request body, and the context the store would have held, and checks the decision or
the refusal (and, where two rules fail at once, which one answers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from broker.domain.directory import (
    Assignment,
    AssignmentKind,
    Contact,
    Directory,
    KeyType,
    Period,
    PublicKey,
)
from broker.domain.notice import StoredNotice
from broker.errors import (
    BadRequest,
    Forbidden,
    IdempotencyConflict,
    NoRecipients,
    NoticeInvalid,
    SupersedesInvalid,
    TooManyRecipients,
    UnknownChannel,
)
from broker.policy.decide import Authorizer
from broker.policy.load import PolicySet
from broker.service.intake_plan import (
    Context,
    Draft,
    Plan,
    Previous,
    Replay,
    plan,
    read_draft,
    replayed,
)
from broker.state import View
from tests.conftest import NOW, POLICIES

EXAMPLES = POLICIES / "examples"
KUMANOVO = {"mk-kumanovo.pcve-focal-point", "mk-kumanovo.social-welfare-centre"}
SWC_ROLE, SWC, SUCCESSOR = (
    "mk-kumanovo.social-welfare-centre",
    "mk-kumanovo-swc",
    "mk-kumanovo-swc-2",
)


@pytest.fixture(scope="module")
def view(policies: PolicySet, directory: Directory) -> View:
    return _view(policies, directory)


def _view(policies: PolicySet, directory: Directory) -> View:
    return View(policies, directory, 1, Authorizer(policies, directory))


def _rebuilt(d: Directory, **changes: Any) -> Directory:
    d = dataclasses.replace(d, **changes)
    return Directory.build(
        list(d.jurisdictions.values()),
        list(d.organisations.values()),
        list(d.roles.values()),
        list(d.contacts.values()),
        list(d.assignments),
        list(d.keys.values()),
    )


def example(name: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return {**document, **changes}


def draft(document: dict[str, Any], sender: str = "mk-mvr", key: str | None = None) -> Draft:
    headers = {} if key is None else {"idempotency-key": key}
    return read_draft(json.dumps(document).encode(), headers, sender, max_depth=32)


def decide(
    view: View, d: Draft, context: Context | None = None, *, max_recipients: int = 100
) -> Plan:
    return plan(
        view, d, context or Context(), NOW, notice_id="n-new", max_recipients=max_recipients
    )


def accepted(view: View, d: Draft, context: Context | None = None) -> Plan:
    return decide(view, d, context)


def stored(notice_id: str, sender: str = "mk-mvr", **changes: Any) -> StoredNotice:
    notice = StoredNotice(
        notice_id,
        sender,
        "returnee-repatriation",
        "mk-kumanovo",
        "high",
        "restricted",
        "hash",
        "notice",
        "active",
        NOW - timedelta(days=1),
        None,
        None,
        2,
    )
    return dataclasses.replace(notice, **changes)


# -- accepted ------------------------------------------------------------------------------------


def test_a_notice_is_routed_and_answered(view: View) -> None:
    planned = accepted(view, draft(example("returnee-repatriation")))
    assert planned.facts.id == "n-new" and planned.kind == "notice" and planned.supersedes is None
    assert {r.role for r in planned.recipients} == KUMANOVO
    assert planned.publish_policies == ("channel/returnee-repatriation/publish",)
    assert planned.response == {
        "id": "n-new",
        "channel": "returnee-repatriation",
        "recipient_count": 2,
        "policy_hash": view.policies.hash,
        "status_url": "/v1/notices/n-new/status",
        "not_reached": [],
    }


# -- schema --------------------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        read_draft(b"{not json", {}, "mk-mvr", max_depth=32)


def test_an_envelope_violation_is_refused_before_anything_is_read() -> None:
    with pytest.raises(NoticeInvalid) as caught:
        draft(example("returnee-repatriation", severity="apocalyptic"))
    assert [v.pointer for v in caught.value.violations] == ["/severity"]


def test_a_payload_violation_is_refused(view: View) -> None:
    body = {**example("returnee-repatriation")["body"], "adults": "three"}
    with pytest.raises(NoticeInvalid) as caught:
        decide(view, draft(example("returnee-repatriation", body=body)))
    assert [v.pointer for v in caught.value.violations] == ["/body/adults"]


def test_an_expiry_in_the_past_is_refused(view: View) -> None:
    past = (NOW - timedelta(hours=1)).isoformat()
    with pytest.raises(NoticeInvalid) as caught:
        decide(view, draft(example("returnee-repatriation", expires_at=past)))
    assert [v.pointer for v in caught.value.violations] == ["/expires_at"]


# -- publish permission ----------------------------------------------------------------------------


def test_an_agency_the_policies_do_not_let_publish_is_forbidden(view: View) -> None:
    with pytest.raises(Forbidden):
        decide(view, draft(example("returnee-repatriation"), sender="mk-bjb"))


# -- supersedes, cancel, in_reply_to ----------------------------------------------------------------


def test_superseding_another_agencys_notice_looks_like_naming_none(view: View) -> None:
    document = example("returnee-repatriation", supersedes="n-old")
    with pytest.raises(SupersedesInvalid) as theirs:
        decide(view, draft(document), Context(earlier=stored("n-old", sender="mk-anb")))
    with pytest.raises(SupersedesInvalid) as missing:
        decide(view, draft(document), Context(earlier=None))
    assert theirs.value.message == missing.value.message


def test_an_update_of_a_cancelled_notice_or_on_another_channel_is_refused(view: View) -> None:
    document = example("returnee-repatriation", supersedes="n-old")
    with pytest.raises(SupersedesInvalid, match="cancelled"):
        decide(view, draft(document), Context(earlier=stored("n-old", status="cancelled")))
    with pytest.raises(SupersedesInvalid, match="channel"):
        decide(view, draft(document), Context(earlier=stored("n-old", channel="hate-incident")))


def test_a_cancel_without_supersedes_is_refused(view: View) -> None:
    with pytest.raises(SupersedesInvalid, match="cancel must name"):
        decide(view, draft(example("returnee-repatriation", cancel=True, body={})))


def test_a_cancel_names_what_it_cancels_and_needs_no_body(view: View) -> None:
    document = example("returnee-repatriation", supersedes="n-old", cancel=True, body={})
    planned = accepted(view, draft(document), Context(earlier=stored("n-old")))
    assert planned.kind == "cancel" and planned.supersedes == "n-old"


def test_an_answer_to_a_request_not_addressed_to_the_agency_is_refused(view: View) -> None:
    request = stored(
        "n-request",
        sender="al-shkoder.municipality",
        channel="information-request",
        jurisdiction="al-shkoder",
        addressees=("al-mb",),
        requesting_role="al-shkoder.pcve-focal-point",
    )
    answer = {
        "channel": "information-request",
        "jurisdiction": "al-shkoder",
        "severity": "low",
        "subject": "Re: support available",
        "in_reply_to": "n-request",
        "body": {"topic": "returnee-support", "answer": "The national programme applies."},
    }
    with pytest.raises(SupersedesInvalid, match="in_reply_to"):
        decide(view, draft(answer, sender="al-asp"), Context(request=request))
    with pytest.raises(SupersedesInvalid, match="in_reply_to"):
        decide(view, draft(answer, sender="al-mb"), Context(request=None))
    planned = accepted(view, draft(answer, sender="al-mb"), Context(request=request))
    assert planned.facts.reply_to_role == "al-shkoder.pcve-focal-point"
    assert [r.role for r in planned.recipients] == ["al-shkoder.pcve-focal-point"]
    # A request received from a peer keeps the asking role as the peer's agency wrote it. One
    # naming a role of another organisation here (a peer that skipped its own check): the answer
    # is never sent to it.
    foreign = replace(request, sender="xk-kp", requesting_role="al-shkoder.pcve-focal-point")
    with pytest.raises(SupersedesInvalid, match="in_reply_to"):
        decide(view, draft(answer, sender="al-mb"), Context(request=foreign))
    unknown = replace(request, requesting_role="nowhere.mayor")
    with pytest.raises(SupersedesInvalid, match="in_reply_to"):
        decide(view, draft(answer, sender="al-mb"), Context(request=unknown))


# -- routing -------------------------------------------------------------------------------------


def test_a_notice_no_one_can_receive_is_refused(policies: PolicySet, directory: Directory) -> None:
    vacant = _rebuilt(
        directory, assignments=tuple(a for a in directory.assignments if a.role not in KUMANOVO)
    )
    with pytest.raises(NoRecipients) as caught:
        decide(_view(policies, vacant), draft(example("returnee-repatriation")))
    assert {(n.role, n.reason) for n in caught.value.not_reached} == {
        (role, "vacant") for role in KUMANOVO
    }


def test_more_recipients_than_the_limit_is_refused(view: View) -> None:
    with pytest.raises(TooManyRecipients):
        decide(view, draft(example("returnee-repatriation")), max_recipients=1)


def test_an_update_reaches_the_successor_and_not_the_former_holder(
    policies: PolicySet, directory: Directory
) -> None:
    handover = NOW - timedelta(days=1)
    key = PublicKey(f"{SUCCESSOR}-x25519", SUCCESSOR, KeyType.X25519, b"\x01" * 32)
    ended = [
        dataclasses.replace(a, period=Period(a.period.start, handover))
        if (a.role, a.contact) == (SWC_ROLE, SWC)
        else a
        for a in directory.assignments
    ]
    assignments = (*ended, Assignment(SWC_ROLE, SUCCESSOR, AssignmentKind.HOLDER, Period(handover)))
    organisation = directory.contacts[SWC].organisation
    handed_over = _rebuilt(
        directory,
        contacts={**directory.contacts, SUCCESSOR: Contact(SUCCESSOR, "Successor", organisation)},
        assignments=assignments,
        keys={**directory.keys, key.id: key},
    )
    # The earlier notice also reached a role this update's routing does not select (an
    # escalation's, say): the update goes there too, through the same decision.
    earlier = stored("n-old")
    roles = (*sorted(KUMANOVO), "mk-kumanovo.mayor")
    planned = accepted(
        _view(policies, handed_over),
        draft(example("returnee-repatriation", supersedes="n-old")),
        Context(earlier=earlier, earlier_roles=roles),
    )
    contacts = {r.contact for r in planned.recipients}
    assert SUCCESSOR in contacts and SWC not in contacts
    assert planned.contacts[SUCCESSOR] == key.id
    assert planned.kind == "update" and planned.supersedes == "n-old"
    assert ("mk-kumanovo.mayor", "supersedes") in {(r.role, r.rule) for r in planned.recipients}


# -- precedence ----------------------------------------------------------------------------------


def test_an_unknown_channel_answers_before_a_bad_supersedes(view: View) -> None:
    document = example("returnee-repatriation", channel="gossip", supersedes="n-old")
    with pytest.raises(UnknownChannel):
        decide(view, draft(document), Context(earlier=None))


def test_a_bad_supersedes_answers_before_the_publish_permission(view: View) -> None:
    document = example("returnee-repatriation", supersedes="n-old")
    with pytest.raises(SupersedesInvalid):
        decide(view, draft(document, sender="mk-bjb"), Context(earlier=None))


def test_the_publish_permission_answers_before_the_payload(view: View) -> None:
    with pytest.raises(Forbidden):
        decide(view, draft(example("returnee-repatriation", body={}), sender="mk-bjb"))


def test_routing_answers_before_the_expiry(view: View) -> None:
    past = (NOW - timedelta(hours=1)).isoformat()
    with pytest.raises(TooManyRecipients):
        decide(view, draft(example("returnee-repatriation", expires_at=past)), max_recipients=1)


# -- idempotency ---------------------------------------------------------------------------------


def test_a_retry_of_the_same_request_gets_the_answer_already_given() -> None:
    d = draft(example("returnee-repatriation"), key="k-1")
    assert replayed(Previous(d.request_hash, {"id": "n-first"}), d.request_hash) == Replay(
        {"id": "n-first"}
    )


def test_a_key_used_for_another_request_is_a_conflict() -> None:
    d = draft(example("returnee-repatriation"), key="k-1")
    previous = Previous(hashlib.sha256(b"another request").hexdigest(), {"id": "n-other"})
    with pytest.raises(IdempotencyConflict):
        replayed(previous, d.request_hash)


def test_the_key_and_the_request_hash_are_read_from_the_request() -> None:
    body = json.dumps(example("returnee-repatriation", idempotency_key="in-body")).encode()
    assert read_draft(body, {}, "mk-mvr", max_depth=32).idempotency_key == "in-body"
    from_header = read_draft(body, {"idempotency-key": "in-header"}, "mk-mvr", max_depth=32)
    assert from_header.idempotency_key == "in-header"
    assert from_header.request_hash == hashlib.sha256(body).hexdigest()
