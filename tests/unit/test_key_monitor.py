"""Key transparency over audit events: bound keys, unexpected keys, notices by unbound keys."""

from __future__ import annotations

from typing import Any

from broker.trust.monitor import monitor


def applied(seq: int, *keys: tuple[str, str, str]) -> dict[str, Any]:
    bound = [
        {"id": k, "owner": o, "type": "ed25519", "fingerprint": "ab" * 32, "status": s}
        for k, o, s in keys
    ]
    return {"seq": seq, "at": f"t{seq}", "action": "directory.applied", "details": {"keys": bound}}


def posted(seq: int, agency: str, key: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": f"t{seq}",
        "action": "notice.posted",
        "actor": f"agency:{agency}",
        "object": f"notice:n{seq}",
        "details": {"sender_key": key},
    }


LOG = [
    applied(1, ("mvr.1", "mk-mvr", "active"), ("police.1", "mk-police", "active")),
    posted(2, "mk-mvr", "mvr.1"),
    posted(3, "mk-mvr", "mvr.forged"),  # inserted into the store, never applied
    applied(4, ("mvr.2", "mk-mvr", "active"), ("mvr.1", "mk-mvr", "revoked")),
    posted(5, "mk-mvr", "mvr.2"),
    posted(6, "mk-police", "police.1"),
]


def test_every_key_bound_to_the_agency_is_listed_with_its_history() -> None:
    report = monitor(LOG, "mk-mvr")
    assert list(report.keys) == ["mvr.1", "mvr.2"]
    assert report.keys["mvr.1"].history == ((1, "t1", "active"), (4, "t4", "revoked"))


def test_a_notice_signed_with_a_key_never_bound_in_the_log_raises_the_alarm() -> None:
    report = monitor(LOG, "mk-mvr")
    assert [(n.seq, n.key_id, n.reason) for n in report.suspect] == [
        (3, "mvr.forged", "never bound in the log")
    ]
    assert report.alarm


def test_a_bound_key_the_agency_did_not_make_is_unexpected() -> None:
    report = monitor(LOG, "mk-mvr", expected={"mvr.1", "mvr.forged"})
    assert report.unexpected == ["mvr.2"]
    assert [(n.seq, n.reason) for n in report.suspect] == [
        (3, "never bound in the log"),
        (5, "not a key the agency made"),
    ]


def test_another_agencys_keys_and_notices_are_not_counted() -> None:
    report = monitor(LOG[:2] + LOG[5:], "mk-police", expected={"police.1"})
    assert list(report.keys) == ["police.1"] and not report.alarm
