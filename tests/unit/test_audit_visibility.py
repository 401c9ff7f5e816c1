"""What an auditor sees (pure placement, the demo directory and the shipped policy), and what
an auditor's export with hidden events still proves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker.audit.events import GENESIS, AuditEvent, canonical
from broker.audit.merkle import CompactRange, leaf_hash
from broker.audit.verify import FORMAT, hidden_line, verify_export
from broker.audit.visibility import HIDDEN, EventPlace, jurisdiction_of, visible
from broker.crypto.keys import generate
from broker.directory.load import load_directory_file
from broker.policy.decide import Authorizer
from broker.policy.load import load_policies
from tests.conftest import DEMO_DIRECTORY, POLICIES

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DIRECTORY, _ = load_directory_file(DEMO_DIRECTORY, max_bytes=10**7)
AUTHORIZER = Authorizer(load_policies(POLICIES), DIRECTORY)


@pytest.mark.parametrize(
    ("place", "where"),
    [
        (EventPlace("contact:ba-fbih-ks-sarajevo-pcve", "mk-kumanovo"), "mk-kumanovo"),
        (EventPlace("broker", "mk-kumanovo"), "mk-kumanovo"),
        (EventPlace("agency:mk-mvr", None), "mk"),
        (EventPlace("contact:ba-ombudsman-auditor", None), "ba"),
        (EventPlace("agency:no-such-agency", None), HIDDEN),
        (EventPlace("contact:a-former-contact", None), HIDDEN),
        (EventPlace("agency:mk-anb", None, about_notice=True), "mk"),  # a probe, no such notice
        (EventPlace("broker", None, about_notice=True), HIDDEN),
        (EventPlace("broker", None), None),
        (EventPlace("operator:root", None), None),
        (EventPlace("unknown", None), None),
        # A notice this broker forwarded abroad: its sender's country, whoever caused the event
        # (the peer reporting an acknowledgement, the forwarder), never the destination's.
        (EventPlace("peer:mk", "mk-kumanovo", True, sent_abroad_by="xk-mpb"), "xk"),
        (EventPlace("broker", "mk-kumanovo", True, sent_abroad_by="xk-mpb"), "xk"),
        (EventPlace("broker", "mk-kumanovo", True, sent_abroad_by="no-such-agency"), HIDDEN),
    ],
)
def test_each_event_is_placed_by_its_notice_else_by_who_caused_it(
    place: EventPlace, where: str | None
) -> None:
    assert jurisdiction_of(place, DIRECTORY) == where


def test_the_shipped_policy_gives_each_ombudsperson_their_own_country_only() -> None:
    ba = AUTHORIZER.audit_scope("ba-ombudsman-auditor", NOW)
    mk = AUTHORIZER.audit_scope("mk-ombudsman-auditor", NOW)
    assert "ba-fbih-ks-sarajevo" in ba.jurisdictions and "mk-kumanovo" not in ba.jurisdictions
    assert "mk-kumanovo" in mk.jurisdictions and not any(
        j.startswith("ba") for j in mk.jurisdictions
    )
    assert ba.policy_ids == ("access/auditors-see-their-jurisdiction",)
    assert AUTHORIZER.audit_scope("mk-kumanovo-pcve", NOW).jurisdictions == frozenset()
    assert AUTHORIZER.audit_scope("nobody", NOW).jurisdictions == frozenset()
    kumanovo = EventPlace("contact:mk-kumanovo-pcve", "mk-kumanovo")
    assert visible(kumanovo, DIRECTORY, mk.jurisdictions)
    assert not visible(kumanovo, DIRECTORY, ba.jurisdictions)
    assert visible(EventPlace("broker", None), DIRECTORY, ba.jurisdictions)
    # Kosovo's ombudsperson oversees a Kosovo ministry's crossing on Kosovo's broker; North
    # Macedonia's sees its half on its own broker, not this one (attacker: an auditor of one
    # country reading another's trail).
    xk = AUTHORIZER.audit_scope("xk-ombudsman-auditor", NOW)
    crossed = EventPlace("peer:mk", "mk-kumanovo", True, sent_abroad_by="xk-mpb")
    assert visible(crossed, DIRECTORY, xk.jurisdictions)
    assert not visible(crossed, DIRECTORY, mk.jurisdictions)
    assert not visible(crossed, DIRECTORY, ba.jurisdictions)
    assert not visible(EventPlace("agency:gone", None), DIRECTORY, ba.jurisdictions)


def _export(n: int, hide: set[int]) -> tuple[dict[str, object], list[bytes]]:
    """A signed log of ``n`` events, exported with the events in ``hide`` as hidden lines."""
    from broker.audit.checkpoint import Checkpoint
    from broker.crypto.note import sign_note

    key, origin = generate("ed25519"), "liaison.invalid/audit/test"
    tree, prev, lines = CompactRange(), GENESIS, []
    for seq in range(1, n + 1):
        body = canonical(
            AuditEvent(at=NOW, actor="broker", action="x", object=f"e:{seq}", request=None),
            seq,
            prev,
        )
        leaf = leaf_hash(body)
        tree.append(leaf)
        prev = leaf.hex()
        lines.append(hidden_line(seq, leaf.hex()) if seq in hide else body)
    note = sign_note(Checkpoint(origin, n, tree.root()).text(), origin, key.private)  # type: ignore[arg-type]
    header = {
        "format": FORMAT,
        "origin": origin,
        "key_name": origin,
        "public_key": key.public_b64,
        "checkpoints": [note],
    }
    return header, lines


def test_an_export_with_hidden_events_verifies_and_counts_them() -> None:
    header, lines = _export(9, {2, 3, 7})
    result = verify_export(header, lines)
    assert result.ok and result.hidden == 3, result.message
    assert "3 outside your view" in result.message


def test_a_wrong_hidden_hash_or_place_is_caught() -> None:
    header, lines = _export(9, {2, 3, 7})
    forged = [*lines[:6], hidden_line(7, "00" * 32), *lines[7:]]
    result = verify_export(header, forged)  # the next event's link to it breaks
    assert not result.ok and "event 7: altered" in result.message
    header9, lines9 = _export(9, {9})
    result = verify_export(header9, [*lines9[:8], hidden_line(9, "00" * 32)])  # the last: the root
    assert not result.ok and "does not match the checkpoint" in result.message
    moved = [lines[0], lines[2], lines[1], *lines[3:]]
    result = verify_export(header, moved)
    assert not result.ok and "expected event 2 here, found event 3" in result.message
    altered = [*lines[:3], lines[3].replace(b'"actor":"broker"', b'"actor":"agency:x"'), *lines[4:]]
    assert not verify_export(header, altered).ok
