"""Enrolment without key files, played as it happens: `liaison directory invite`, the page's
`POST /v1/enrol` with keys made on the device, `directory pending`, `directory approve`.

A real `liaison serve` over a SQLite file and PostgreSQL for the whole story (a lost key
replaced: the notice sent to the old key opens with the new one); in-process brokers with a
frozen clock for expiry and the rate limit; and the broker's host editing the pending keys in
the store, which must not get its keys approved under the official's fingerprint.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from adapters.client.recipient import RecipientClient
from adapters.client.trust import PinnedRoot
from broker.clock import FrozenClock
from broker.crypto.keys import KeyPair, generate, write_private_key
from broker.http.keys import STATE
from broker.service.enrolment import approve, fingerprint, invite
from broker.store.directory_repo import load_directory
from tests.conftest import POLICIES
from tests.fault.harness import sender
from tests.inprocess import apply_directory, audit_events
from tests.integration.intake_support import running_broker
from tests.support import recipient, run_cli, serve_process

EXAMPLE = POLICIES / "examples" / "returnee-repatriation.json"
PCVE = "mk-kumanovo-pcve"


def _device(tmp_path: Path) -> tuple[KeyPair, KeyPair, dict[str, str]]:
    """The keys a device makes, and the body its page posts (the code added by the caller)."""
    signing, encryption = generate("ed25519"), generate("x25519")
    write_private_key(tmp_path / "device.pem", signing)
    write_private_key(tmp_path / "device.x25519.pem", encryption)
    body = {
        "signing_key": base64.b64encode(signing.public_raw).decode(),
        "encryption_key": base64.b64encode(encryption.public_raw).decode(),
    }
    return signing, encryption, body


async def _post(url: str, body: Any) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/enrol", json=body) as response,
    ):
        return response.status, response.content_type, await response.json(content_type=None)


async def _events(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """The audit log, by action (read in-process: the export is not what is tested here)."""
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in await audit_events(database_url):
        events[event["action"]].append(event)
    return events


async def test_a_lost_key_is_replaced_by_code_and_fingerprint_and_the_old_notice_opens(
    demo_dir: Path, database_url: str, tmp_path: Path
) -> None:
    env = {"LIAISON_DATABASE_URL": database_url}
    data = ("--data", demo_dir)
    await apply_directory(demo_dir, database_url)  # the store the broker starts from
    signing, encryption, body = _device(tmp_path)
    with serve_process(demo_dir, env=env) as (_, url):
        async with sender(demo_dir, url, "mk-mvr") as ministry:
            notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
        invited = run_cli(
            "directory", "invite", PCVE, *data, env={**env, "LIAISON_SERVER_PUBLIC_URL": url}
        )
        assert invited.returncode == 0, invited.stderr
        code = re.search(r": ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})$", invited.stdout, re.M)
        assert code is not None and f"{url}/ui/#/enrol/{code[1]}" in invited.stdout
        assert "\u2588" in invited.stdout  # the QR code of the link, in block characters
        typed = code[1].lower().replace("-", " ")  # as a person types it
        status, _, answer = await _post(url, {"code": typed, **body})
        assert status == 201, answer
        heard = fingerprint(signing.public_raw, encryption.public_raw)
        assert (answer["contact"], answer["fingerprint"], answer["state"]) == (
            PCVE,
            heard,
            "pending",
        )
        again, content_type, problem = await _post(url, {"code": code[1], **body})
        assert (again, content_type) == (401, "application/problem+json")  # single use
        assert code[1] not in json.dumps(problem)

        listed = run_cli("directory", "pending", *data, env=env)
        assert f"{PCVE}  {heard}" in listed.stdout
        wrong = run_cli("directory", "approve", PCVE, "0000-1111-2222-3333", *data, env=env)
        assert wrong.returncode == 1 and wrong.stdout == ""
        assert wrong.stderr.count("\n") == 1 and "nothing was approved" in wrong.stderr
        approved = run_cli("directory", "approve", PCVE, heard.lower(), *data, env=env)
        assert approved.returncode == 0, approved.stderr
        opened = await _read_when_rewrapped(url, demo_dir, signing, encryption, notice_id)
        lost = recipient(demo_dir, url, PCVE)
        async with lost:
            try:
                await lost.read(notice_id)
                lost_refused = False
            except Exception:  # any refusal will do: the keys are revoked
                lost_refused = True
    assert opened.notice["subject"] == json.loads(EXAMPLE.read_text())["subject"]
    assert lost_refused
    events = await _events(database_url)
    assert [e["details"]["contact"] for e in events["enrolment.invited"]] == [PCVE]
    assert [e["details"]["fingerprint"] for e in events["enrolment.submitted"]] == [heard]
    refused = events["enrolment.approval_refused"]
    assert [(e["outcome"], e["reason"]) for e in refused] == [("refused", "fingerprint_mismatch")]
    [done] = events["enrolment.approved"]
    [applied_event] = [
        e for e in events["directory.applied"] if e["details"].get("reason") == "enrolment_approved"
    ]
    bound = {(k["id"], k["status"]) for k in applied_event["details"]["keys"]}
    assert {(k, "active") for k in done["details"]["keys"]} <= bound
    assert (signing.key_id(PCVE), "active") in bound
    assert (f"{PCVE}.x25519.{encryption.key_id(PCVE).rsplit('.', 1)[1]}", "active") in bound
    assert sum(s == "revoked" for _, s in bound) == 2  # the lost keys, in the same revision
    assert [e["details"]["contact"] for e in events["notice.rewrapped"]] == [PCVE]


async def _read_when_rewrapped(
    url: str, demo: Path, signing: KeyPair, encryption: KeyPair, notice_id: str
) -> Any:
    """The notice read with the device's keys, once the broker has seen the new revision."""
    client = RecipientClient(
        url, PCVE, signing, encryption, trust=PinnedRoot.from_file(demo / "trust" / "root.json")
    )
    deadline = time.monotonic() + 30  # the broker polls the directory, then re-wraps
    async with client:
        while True:
            try:
                return await client.read(notice_id)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                client._token = None  # a token from before the revision names no key


async def test_an_expired_code_is_refused_like_an_unknown_one(
    demo_dir: Path, tmp_path: Path
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    url_db = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    _, _, body = _device(tmp_path)
    async with running_broker(demo_dir, url_db, clock=clock) as broker:
        engine = broker.app[STATE].engine
        directory = broker.app[STATE].view.directory
        made = await invite(
            engine, directory, PCVE, expires=timedelta(hours=1), actor="test", now=clock.now()
        )
        clock.advance(timedelta(hours=1, seconds=1))
        expired = await _post(broker.url, {"code": made.code, **body})
        unknown = await _post(broker.url, {"code": "AAAA-BBBB-CCCC", **body})
        malformed = await _post(broker.url, {"code": made.code, "signing_key": "x"})
    assert expired[0] == unknown[0] == 401
    same = ("type", "title", "detail")
    assert [expired[2].get(k) for k in same] == [unknown[2].get(k) for k in same]
    assert malformed[0] == 422 and malformed[1] == "application/problem+json"


async def test_refused_codes_are_rate_limited_per_source_and_audited_within_the_limit(
    demo_dir: Path, tmp_path: Path
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    url_db = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    _, _, body = _device(tmp_path)
    async with running_broker(demo_dir, url_db, clock=clock) as broker:
        engine = broker.app[STATE].engine
        made = await invite(
            engine,
            broker.app[STATE].view.directory,
            PCVE,
            expires=timedelta(hours=72),
            actor="test",
            now=clock.now(),
        )
        guesses = [
            await _post(broker.url, {"code": f"AAAA-BBBB-{i:04d}", **body}) for i in range(8)
        ]
        blocked = await _post(broker.url, {"code": made.code, **body})  # even the right code
        clock.advance(timedelta(minutes=16))
        later = await _post(broker.url, {"code": made.code, **body})
        async with engine.connect() as conn:
            refused = (
                await conn.execute(
                    text("SELECT count(*) FROM audit_event WHERE action = 'enrolment.refused'")
                )
            ).scalar()
    assert [g[0] for g in guesses] == [401] * 5 + [429] * 3
    assert guesses[5][1] == "application/problem+json"
    assert blocked[0] == 429
    assert later[0] == 201
    assert refused == 5  # past the limit nothing more is written


async def test_keys_swapped_in_the_store_are_not_approved_under_the_officials_fingerprint(
    demo_dir: Path, database_url: str, tmp_path: Path
) -> None:
    """The broker's host (THREATS.md) replaces the pending public keys with its own."""
    clock = FrozenClock(datetime.now(UTC))
    signing, _, body = _device(tmp_path)
    attacker_signing, attacker_encryption = generate("ed25519"), generate("x25519")
    async with running_broker(demo_dir, database_url, clock=clock) as broker:
        engine = broker.app[STATE].engine
        directory = broker.app[STATE].view.directory
        made = await invite(
            engine, directory, PCVE, expires=timedelta(hours=72), actor="test", now=clock.now()
        )
        status, _, answer = await _post(broker.url, {"code": made.code, **body})
        assert status == 201
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE enrolment_pending SET signing_public = :s, encryption_public = :e"),
                {"s": attacker_signing.public_raw, "e": attacker_encryption.public_raw},
            )
        refusal = None
        try:
            await approve(
                engine, directory, PCVE, answer["fingerprint"], actor="test", now=clock.now()
            )
        except Exception as e:  # its type is asserted below
            refusal = e
        after, _ = await load_directory(engine)
    assert type(refusal).__name__ == "Conflict" and "nothing was approved" in str(refusal)
    bound = {k.public for k in after.keys.values()}
    assert attacker_signing.public_raw not in bound
    assert attacker_encryption.public_raw not in bound
    assert signing.public_raw not in bound  # nor anything else: nothing changed
    assert after.keys == directory.keys
