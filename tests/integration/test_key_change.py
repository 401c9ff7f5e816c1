"""A contact's encryption key changes, and the notices they already have stay readable.

Played as it happens: a real `liaison serve` (SQLite file and PostgreSQL), a notice delivered,
`liaison directory apply` with the focal point's X25519 key replaced; the focal point then reads
the notice with the NEW key, while a client holding only the old key is told the notice is
wrapped for another of their keys — a key change, not the red "do not act" tampering refusal.
A former holder whose key changes in the same revision gets no new wrap (THREATS.md: a former
role holder must not receive anything new). Every re-wrap is in the audit log, as succession's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

from tests.conftest import POLICIES
from tests.fault.harness import sender
from tests.inprocess import apply_directory, audit_events, keygen, until_audited
from tests.support import run_cli, serve_process

EXAMPLE = POLICIES / "examples" / "returnee-repatriation.json"
PCVE, SWC = "mk-kumanovo-pcve", "mk-kumanovo-swc"


def _new_x25519(tmp_path: Path, contact: str) -> tuple[Path, str, str]:
    """A fresh key pair: its PEM file, its directory entry (YAML flow) and its id."""
    pem = tmp_path / f"{contact}.new.x25519.pem"
    entry = keygen("x25519", contact, pem)  # set-up: `liaison keygen` is tested in test_cli
    flow = f"{{id: {entry['id']}, type: x25519, public: {entry['public']}, status: active}}"
    return pem, flow, str(entry["id"])


def _replace_key(text: str, contact: str, flow: str) -> str:
    """The directory with ``contact``'s X25519 key replaced by ``flow`` (the old one removed)."""
    pattern = re.compile(r"\{id: " + re.escape(contact) + r"\.x25519\.[0-9a-f]+,[^}]*\}")
    changed, count = pattern.subn(flow, text)
    assert count == 1
    return changed


def _end_assignment(text: str, contact: str) -> str:
    line = next(x for x in text.splitlines() if f"contact: {contact}, as: holder" in x)
    return text.replace(line, line.replace("}", ", until: '2026-02-01T00:00:00Z'}"))


def _read(url: str, demo: Path, contact: str, enc_key: Path, notice_id: str) -> Any:
    return run_cli(
        "read",
        notice_id,
        "--url",
        url,
        "--contact",
        contact,
        "--key",
        demo / "keys" / f"{contact}.pem",
        "--enc-key",
        enc_key,
        "--root",
        demo / "trust" / "root.json",
    )


async def _send(demo: Path, url: str) -> str:
    async with sender(demo, url, "mk-mvr") as ministry:
        return str((await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"])


def test_after_a_key_change_the_new_key_reads_the_notice_and_the_old_key_is_told_why(
    demo_dir: Path, database_url: str, tmp_path: Path
) -> None:
    env = {"LIAISON_DATABASE_URL": database_url}
    directory = demo_dir / "directory.yaml"
    asyncio.run(apply_directory(demo_dir, database_url))  # the store the broker starts from
    new_pem, flow, new_id = _new_x25519(tmp_path, PCVE)
    _, swc_flow, _ = _new_x25519(tmp_path, SWC)
    old_pem = demo_dir / "keys" / f"{PCVE}.x25519.pem"
    changed = tmp_path / "directory.yaml"
    text = _replace_key(_replace_key(directory.read_text(), PCVE, flow), SWC, swc_flow)
    changed.write_text(_end_assignment(text, SWC))
    with serve_process(demo_dir, env=env) as (_, url):
        notice_id = asyncio.run(_send(demo_dir, url))  # set-up: `liaison send` is test_cli's
        assert _read(url, demo_dir, PCVE, old_pem, notice_id).returncode == 0
        # --force: the social welfare centre is left vacant on purpose (apply warns of it).
        applied = run_cli("directory", "apply", changed, "--data", demo_dir, "--force", env=env)
        assert applied.returncode == 0, applied.stderr
        asyncio.run(until_audited(database_url, "notice.rewrapped"))  # polls, then re-wraps
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            fresh = _read(url, demo_dir, PCVE, new_pem, notice_id)
            if fresh.returncode == 0:
                break
            time.sleep(1)
        old = _read(url, demo_dir, PCVE, old_pem, notice_id)
    assert fresh.returncode == 0, fresh.stderr
    assert ": verified" in fresh.stdout and "Repatriation of two families" in fresh.stdout
    assert old.returncode == 1 and "REFUSED" not in old.stderr and "Do not act" not in old.stderr
    assert old.stderr.startswith("liaison: this notice was sent to your previous key")
    assert f"it is wrapped for {new_id}" in old.stderr
    events = asyncio.run(audit_events(database_url))  # the log is checked, not the export
    rewrapped = [e for e in events if e.get("action") == "notice.rewrapped"]
    assert [(e["details"]["contact"], e["details"]["to_key"]) for e in rewrapped] == [
        (PCVE, new_id)
    ]  # the former holder (the social welfare centre, assignment ended) got nothing new
    escrow = [
        e
        for e in events
        if e.get("action") == "escrow.used" and e["details"]["purpose"] == "notice.rewrapped"
    ]
    assert [e["details"]["recipient"] for e in escrow] == [PCVE]


async def test_a_ciphertext_webhook_is_sent_again_with_the_wrap_for_the_new_key(
    demo_dir: Path, database_url: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from broker.clock import FrozenClock
    from broker.http.keys import OUTBOX, REKEY, STATE
    from broker.service.directory import apply_directory_file
    from tests.integration.intake_support import example, running_broker
    from tests.integration.test_adapters import ENV, Receiver, add_webhooks

    who = "me-danilovgrad-pcve"
    channel = demo_dir / "policies" / "channels" / "hate-incident.yaml"  # TLP:AMBER allows it
    channel.write_text(channel.read_text().replace("webhook: metadata", "webhook: ciphertext"))
    hook = Receiver()
    add_webhooks(demo_dir, {who: hook.url})
    lines = (
        (demo_dir / "directory.yaml")
        .read_text()
        .replace(
            f"{{id: {who}-hook, url: '{hook.url}'}}",
            f"{{id: {who}-hook, url: '{hook.url}', content: ciphertext}}",
        )
    )
    (demo_dir / "directory.yaml").write_text(lines)
    _, flow, new_id = _new_x25519(tmp_path, who)
    changed = tmp_path / "directory.yaml"
    changed.write_text(_replace_key(lines, who, flow))
    clock = FrozenClock(datetime.now(UTC))
    await hook.start()
    try:
        async with running_broker(demo_dir, database_url, clock=clock, env=ENV) as broker:
            async with broker.sender("me-uzp", clock) as police:
                notice_id = (await police.post_notice(example("hate-incident"))).body["id"]
            assert await broker.app[OUTBOX].tick(clock.now()) == 1
            engine = broker.app[STATE].engine
            await apply_directory_file(
                engine, changed, actor="test", now=clock.now(), max_bytes=10**7
            )
            await broker.app[STATE].refresh_directory()
            clock.advance(timedelta(seconds=5))
            assert await broker.app[REKEY].run(clock.now()) == 1
            assert await broker.app[REKEY].run(clock.now()) == 0  # once for one change
            assert await broker.app[OUTBOX].tick(clock.now()) == 1
    finally:
        await hook.stop()
    wraps = [
        json.loads(body)["data"]["encryption"]["wrap"]["key_id"] for _, body, _ in hook.received
    ]
    assert len(wraps) == 2 and wraps[0] != new_id and wraps[1] == new_id
    ids = [json.loads(body)["data"]["notice_id"] for _, body, _ in hook.received]
    assert ids == [notice_id, notice_id]
