"""Status reports across a border (``broker/federation/report.py``): what a report may carry, and
a merge that never goes back, whatever the order reports arrive in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.domain.notice import DeliveryState
from broker.errors import BadRequest
from broker.federation.replies import (
    MAX_REPLIES,
    MAX_REPLIES_CHARS,
    crossing_replies,
    fits,
    new_replies,
)
from broker.federation.report import digest, merge, parse_report, snapshot

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def delivery(contact: str, state: str, **times: datetime) -> DeliveryState:
    return DeliveryState(
        contact, "mk-kumanovo.pcve-focal-point", "mk-kumanovo", "r", False, state, T0, **times
    )


def report(state: str, at: str, role: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "notice_id": "n1",
        "reporter_notice_id": "n1",
        "as_of": at,
        "status": "active",
        "roles": [
            {
                "role": "mk-kumanovo.pcve-focal-point",
                "jurisdiction": "mk-kumanovo",
                "state": state,
                "recipients": 1,
                "delivered_at": None,
                "read_at": None,
                "acknowledged_at": "2026-12-01T10:05:00Z" if state == "acknowledged" else None,
                "escalated_at": None,
                **(role or {}),
            }
        ],
    }


def test_a_snapshot_names_roles_and_states_never_contacts() -> None:
    state = snapshot(
        [
            delivery("mk-kumanovo.ana", "delivered", delivered_at=T0),
            delivery("mk-kumanovo.bob", "acknowledged", acked_at=T0),
        ],
        "active",
    )
    assert "mk-kumanovo.ana" not in str(state) and "mk-kumanovo.bob" not in str(state)
    [role] = state["roles"]
    assert role["state"] == "acknowledged" and role["recipients"] == 2
    parse_report(
        {"notice_id": "n1", "reporter_notice_id": "n1", "as_of": "2026-12-01T10:00:00Z", **state}
    )
    assert digest(state) != digest(snapshot([delivery("mk-kumanovo.ana", "delivered")], "active"))


@pytest.mark.parametrize(
    "bad",
    [
        {"contact": "mk-kumanovo.ana"},  # a person, beside the role
        {"state": "forgotten"},
        {"recipients": -1},
        {"role": "a b"},
        {"acknowledged_at": "yesterday"},
    ],
)
def test_a_report_carrying_anything_else_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        parse_report(report("delivered", "2026-12-01T10:00:00Z", bad))
    with pytest.raises(BadRequest):
        parse_report({**report("delivered", "2026-12-01T10:00:00Z"), "body": "plaintext"})


def test_reports_in_any_order_end_in_the_furthest_state_each_step_audited_once() -> None:
    reports = [
        report("pending", "2026-12-01T10:00:00Z"),
        report("delivered", "2026-12-01T10:01:00+00:00"),
        report("acknowledged", "2026-12-01T10:06:00Z"),
    ]
    for order in itertools.permutations(reports):
        stored = None
        seen = []
        for r in [*order, order[0]]:  # and one again, late
            stored, moves = merge(stored, parse_report(r))
            seen += [m.state for m in moves]
        assert stored is not None
        assert stored["roles"][0]["state"] == "acknowledged"
        assert stored["as_of"] == "2026-12-01T10:06:00Z"
        assert seen.count("routed") == 1 and seen.count("acknowledged") == 1
        assert len(seen) == len(set(seen))


# -- replies ride the report (broker/federation/replies.py) ----------------------------------


def stored_reply(reply_id: int) -> dict[str, Any]:
    return {
        "id": reply_id,
        "role_id": "mk-kumanovo.pcve-focal-point",
        "created_at": T0,
        "key_id": "xk-aki.x25519",
        "wrap": b"w" * 80,
        "nonce": b"n" * 24,
        "ciphertext": b"sealed",
        "contact_id": "mk-kumanovo.pcve-focal-point.1",  # never crosses
    }


def test_a_reply_changes_the_snapshot_and_crosses_without_its_contact() -> None:
    deliveries = [delivery("c1", "acknowledged", acked_at=T0)]
    without = snapshot(deliveries, "active")
    with_reply = snapshot(deliveries, "active", [stored_reply(7)])
    assert digest(without) != digest(with_reply)
    assert "replies" not in without  # a report without replies is as before
    [crossing] = with_reply["replies"]
    assert crossing["id"] == "7" and "contact_id" not in crossing
    assert "mk-kumanovo.pcve-focal-point.1" not in str(with_reply)
    parse_report({**report("acknowledged", "2026-12-01T10:06:00Z"), **with_reply})


def test_a_reply_id_is_taken_once_whatever_the_reports_order() -> None:
    reply = crossing_replies([stored_reply(7)])
    first = {**report("acknowledged", "2026-12-01T10:06:00Z"), "replies": reply}
    merged, _ = merge(None, first)
    assert new_replies((), reply) == reply
    assert new_replies(merged["reply_ids"], reply) == []
    again, _ = merge(merged, {**report("acknowledged", "2026-12-01T10:01:00Z")})
    assert again["reply_ids"] == ["7"]


@pytest.mark.parametrize(
    "change",
    [
        {"contact": "mk-kumanovo.pcve-focal-point.1"},
        {"ciphertext": "not base64!"},
        {"created_at": "2026-12-01T10:00:00"},  # no zone
        {"role": "two words"},
    ],
)
def test_a_reply_may_carry_nothing_more_and_nothing_malformed(change: dict[str, Any]) -> None:
    [reply] = crossing_replies([stored_reply(7)])
    with pytest.raises(BadRequest):
        parse_report(
            {**report("acknowledged", "2026-12-01T10:06:00Z"), "replies": [reply | change]}
        )


def test_replies_that_would_not_fit_in_one_report_are_refused_before_they_are_taken() -> None:
    small = stored_reply(1)
    assert fits([], small) and fits([small] * 62, small)
    assert not fits([small] * MAX_REPLIES, small)  # the count
    big = {**small, "ciphertext": b"c" * (MAX_REPLIES_CHARS // 4 * 3)}
    assert not fits([small], big)  # the weight: the report would pass a peer's body limit
