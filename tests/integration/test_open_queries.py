"""The escalation worker's two reads of open work, on SQLite and PostgreSQL, against the rows.

Every tick (``delivery.escalation_interval_seconds``) asks which deliveries are open and who
holds each role of a notice no one acknowledged. A store holding a year of acknowledged notices
must not cost each tick a pass over all of them (tests/bench measures the time; here the
answers are held to what the rows say, for a store with every mix of states).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.store import escalation_repo
from broker.store.boundary import transaction
from broker.store.tables import DeliveryRow, NoticeRow

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CHANNELS = ("public-safety", "returnee-repatriation", "threat-assessment")
ROLES = ("r-pcve", "r-mayor", "r-social")
CONTACTS = ("c-1", "c-2", "c-3", "c-4")


def _notice(k: int, rng: random.Random) -> dict[str, Any]:
    at = NOW - timedelta(hours=rng.randrange(0, 200))
    return {
        "id": f"n{k:04d}",
        "sender_id": "mk-mvr",
        "sender_key_id": "k",
        "channel": rng.choice(CHANNELS),
        "jurisdiction_id": "mk-kumanovo",
        "severity": "medium",
        "marking": "AMBER",
        "exercise": rng.choice([None, None, None, "exercise", "test"]),
        "policy_hash": "sha256:x",
        "kind": "notice",
        "addressees": "[]",
        "status": rng.choice(["active", "active", "active", "withdrawn"]),
        "created_at": at,
        "retain_until": at + timedelta(days=180),
        "recipient_count": 0,
        "aead": "xchacha20poly1305-ietf",
        "aead_nonce": b"n" * 24,
        "ciphertext": b"c",
        "content_digest": "d",
        "signature_input": "s",
        "signature": "s",
        "signed_values": "{}",
    }


def _deliveries(notice: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for role in rng.sample(ROLES, rng.randrange(1, len(ROLES) + 1)):
        for contact in rng.sample(CONTACTS, rng.randrange(1, 3)):
            acked = rng.random() < 0.4
            escalated = not acked and rng.random() < 0.2
            at = notice["created_at"] + timedelta(minutes=rng.randrange(0, 90))
            rows.append(
                {
                    "notice_id": notice["id"],
                    "contact_id": contact,
                    "role_id": role,
                    "jurisdiction_id": "mk-kumanovo",
                    "rule": "r",
                    "policy_ids": "[]",
                    "deputy": False,
                    "state": "acknowledged" if acked else "escalated" if escalated else "pending",
                    "created_at": at,
                    "acked_at": at if acked else None,
                    "escalated_at": at if escalated else None,
                    "escalation_level": rng.randrange(0, 3),
                }
            )
    return rows


async def _store(engine: AsyncEngine, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rng = random.Random(seed)
    notices = [_notice(k, rng) for k in range(400)]
    deliveries = [d for n in notices for d in _deliveries(n, rng)]
    async with transaction(engine) as conn:
        await conn.execute(insert(NoticeRow.__table__), notices)  # type: ignore[attr-defined]
        await conn.execute(insert(DeliveryRow.__table__), deliveries)  # type: ignore[attr-defined]
    for k, row in enumerate(deliveries, 1):  # ids in insertion order (a fresh table)
        row["id"] = k
    return deliveries, {n["id"]: n for n in notices}


@pytest.mark.parametrize("seed", [1, 2])
async def test_open_work_is_what_the_rows_say(engine: AsyncEngine, seed: int) -> None:
    deliveries, notices = await _store(engine, seed)
    acked_pairs = {(d["notice_id"], d["role_id"]) for d in deliveries if d["acked_at"]}

    holders: dict[tuple[str, str], set[str]] = {}
    for d in deliveries:
        pair = (d["notice_id"], d["role_id"])
        if notices[d["notice_id"]]["status"] == "active" and pair not in acked_pairs:
            holders.setdefault(pair, set()).add(d["contact_id"])
    assert await escalation_repo.role_holders_of_open_notices(engine) == holders
    assert holders and acked_pairs  # the mix holds both kinds

    channels = ["public-safety", "threat-assessment"]
    expected = [
        (d["id"], (d["notice_id"], d["role_id"]) in acked_pairs)
        for d in deliveries
        if notices[d["notice_id"]]["status"] == "active"
        and notices[d["notice_id"]]["channel"] in channels
        and notices[d["notice_id"]]["exercise"] is None
        and d["acked_at"] is None
        and d["escalated_at"] is None
    ]
    found = await escalation_repo.open_deliveries(engine, channels)
    assert [(d.id, d.acked_role) for d in found] == expected
    assert any(acked for _, acked in expected) and not all(acked for _, acked in expected)
    by_id = {d["id"]: d for d in deliveries}
    for d in found:
        row, notice = by_id[d.id], notices[by_id[d.id]["notice_id"]]
        assert (d.notice_id, d.contact, d.role, d.level, d.channel) == (
            row["notice_id"],
            row["contact_id"],
            row["role_id"],
            row["escalation_level"],
            notice["channel"],
        )
        assert d.created_at == row["created_at"]


@pytest.mark.parametrize("seed", [3, 4])
async def test_what_is_due_for_escalation_is_what_the_rows_say(
    engine: AsyncEngine, seed: int
) -> None:
    """The tick reads only deliveries past their channel's deadline, with a level left in its
    chain, whose role no one acknowledged; the deadline and the chain differ by channel."""
    deliveries, notices = await _store(engine, seed)
    acked_pairs = {(d["notice_id"], d["role_id"]) for d in deliveries if d["acked_at"]}
    due = {"public-safety": (NOW - timedelta(hours=48), 2), "threat-assessment": (NOW, 1)}
    expected = [
        d["id"]
        for d in deliveries
        if notices[d["notice_id"]]["status"] == "active"
        and notices[d["notice_id"]]["channel"] in due
        and notices[d["notice_id"]]["exercise"] is None
        and d["acked_at"] is None
        and d["escalated_at"] is None
        and (d["notice_id"], d["role_id"]) not in acked_pairs
        and d["created_at"] <= due[notices[d["notice_id"]]["channel"]][0]
        and d["escalation_level"] < due[notices[d["notice_id"]]["channel"]][1]
    ]
    found = await escalation_repo.open_deliveries(engine, list(due), due)
    assert [d.id for d in found] == expected and expected
    assert not any(d.acked_role for d in found)
    everything = await escalation_repo.open_deliveries(engine, list(due))
    assert len(everything) > len(found)  # the cut-offs left some open deliveries unread
    # A delivery created exactly at the cut-off is due (the tick's ``deadline <= now``).
    exact = next((d for d in everything if d.id not in set(expected) and not d.acked_role), None)
    assert exact is not None
    at = {channel: (exact.created_at, 9) for channel in due}
    assert exact.id in {d.id for d in await escalation_repo.open_deliveries(engine, list(at), at)}
    # No channel due, or one due that is not asked about: nothing is read.
    assert await escalation_repo.open_deliveries(engine, list(due), {}) == []
    late = {"returnee-repatriation": (NOW, 9)}
    assert await escalation_repo.open_deliveries(engine, ["public-safety"], late) == []
