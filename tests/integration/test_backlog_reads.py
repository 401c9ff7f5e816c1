"""Batched backlog reads (streams opening together) answer exactly what one read per stream did.

Real databases (SQLite, PostgreSQL): deliveries of a few contacts interleaved over many notices;
``deliveries_after_each`` over random starts (a contact twice at different positions, contacts
with nothing, positions past the end, limits smaller than a backlog) is compared with
``deliveries_after``, the one-contact read every stream made before.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.service.live import BacklogReads
from broker.store import deliveries_repo
from broker.store.boundary import transaction
from broker.store.engine import create_engine, migrate
from broker.store.intake_repo import delivery_t, notice_t
from tests.conftest import NOW

CONTACTS = [f"contact-{i}" for i in range(6)]


def _notice(i: int) -> dict[str, object]:
    return {
        "id": f"backlog{i:09d}",
        "sender_id": "mk-bjb",
        "sender_key_id": "k",
        "channel": "threat-assessment",
        "jurisdiction_id": "mk-kumanovo",
        "severity": "medium",
        "marking": "AMBER",
        "policy_hash": "sha256:x",
        "kind": "notice",
        "addressees": "[]",
        "status": "active",
        "created_at": NOW + timedelta(seconds=i),
        "retain_until": NOW + timedelta(days=180),
        "recipient_count": 1,
        "aead": "xchacha20poly1305-ietf",
        "aead_nonce": b"n" * 24,
        "ciphertext": b"c",
        "content_digest": "d",
        "signature_input": "s",
        "signature": "s",
        "signed_values": "{}",
    }


def _delivery(i: int, contact: str) -> dict[str, object]:
    return {
        "notice_id": f"backlog{i:09d}",
        "contact_id": contact,
        "role_id": f"{contact}.role",
        "jurisdiction_id": "mk-kumanovo",
        "rule": "local-leadership",
        "policy_ids": "[]",
        "deputy": False,
        "state": "pending",
        "created_at": NOW + timedelta(seconds=i),
    }


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """60 notices; each delivered to a random subset of the first five contacts (the sixth has
    none), so every contact's ids are interleaved with the others'."""
    engine = create_engine(database_url)
    await migrate(engine)
    chance = random.Random(7)
    async with transaction(engine) as conn:
        await conn.execute(insert(notice_t), [_notice(i) for i in range(60)])
        for i in range(60):
            reached = [c for c in CONTACTS[:5] if chance.random() < 0.5]
            if reached:
                await conn.execute(insert(delivery_t), [_delivery(i, c) for c in reached])
    yield engine
    await engine.dispose()


async def test_batched_backlog_reads_equal_one_read_per_stream(engine: AsyncEngine) -> None:
    chance = random.Random(11)
    for _ in range(25):
        starts = [
            (chance.choice(CONTACTS), chance.choice([0, 0, chance.randrange(0, 200)]))
            for _ in range(chance.randrange(1, 9))
        ]
        limit = chance.choice([1, 3, 500])
        batched = await deliveries_repo.deliveries_after_each(engine, starts, limit)
        one_by_one = [
            await deliveries_repo.deliveries_after(engine, contact, after, limit)
            for contact, after in starts
        ]
        assert batched == one_by_one, (starts, limit)
    # the fixture gave the first contacts something to read: the comparison was not of nothing
    assert await deliveries_repo.deliveries_after(engine, CONTACTS[0], 0, 500)


async def test_streams_opening_together_share_one_read_and_each_gets_its_own(
    engine: AsyncEngine,
) -> None:
    reads = BacklogReads(engine, limit=4)
    queries = 0
    real = deliveries_repo.deliveries_after_each

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal queries
        queries += 1
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    starts = [(c, 0) for c in CONTACTS] + [(CONTACTS[0], 30)]
    deliveries_repo.deliveries_after_each = counted  # type: ignore[assignment]
    try:
        answers = await asyncio.gather(*(reads.read(c, after) for c, after in starts))
    finally:
        deliveries_repo.deliveries_after_each = real
        await reads.close()
    assert queries == 1
    for (contact, after), items in zip(starts, answers, strict=True):
        assert items == await deliveries_repo.deliveries_after(engine, contact, after, 4)
