"""`liaison outbox list|replay|drop` against a real `liaison serve` and a real webhook receiver.

The receiver refuses until the broker dead-letters both notices' webhooks; a replay is then
delivered once, under the message id of its failed attempts (Standard Webhooks idempotency); a
dropped one never; both acts are in the audit export, which still verifies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters.client.sender import SenderClient
from broker.crypto.keys import read_private_key
from tests.inprocess import apply_directory, dead_letter_ids
from tests.integration.test_adapters import Receiver, add_webhooks
from tests.support import run_cli, serve_process

EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[2] / "policies/examples/returnee-repatriation.json"
    ).read_text()
)
ENV = {
    "LIAISON_WEBHOOKS_TIMEOUT_SECONDS": "1",
    "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1",
    "LIAISON_WEBHOOKS_MAX_ATTEMPTS": "2",
}


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def _run(*args: str | Path, env: dict[str, str]) -> Any:
    """The CLI in a thread: the receiver shares this event loop and must keep answering."""
    return await asyncio.to_thread(run_cli, *args, env=env)


async def _cli(*args: str | Path, env: dict[str, str]) -> Any:
    result = await _run(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result


async def _dead(data: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    listed = await _cli("outbox", "list", "--data", data, "--json", env=env)
    letters: list[dict[str, Any]] = json.loads(listed.stdout)
    return letters


async def _post(url: str, data: Path, key: str) -> str:
    pair = read_private_key(data / "keys" / "mk-mvr.pem")
    async with SenderClient.from_pem(url, pair.pem(), pair.key_id("mk-mvr"), retries=0) as client:
        posted = await client.post_notice(EXAMPLE, idempotency_key=key)
    return str(posted.body["id"])


async def test_replay_delivers_a_dead_letter_once_and_drop_never(
    demo_dir: Path, database_url: str
) -> None:
    env = {"LIAISON_DATABASE_URL": database_url, **ENV}
    receiver = Receiver(["500"] * 4)  # two notices, two attempts each: both dead-lettered
    add_webhooks(demo_dir, {"mk-kumanovo-pcve": receiver.url})
    await apply_directory(demo_dir, database_url)  # with the webhooks: the broker starts from it
    await receiver.start()
    try:
        with serve_process(demo_dir, env=env) as (_, url):
            first = await _post(url, demo_dir, "outbox-1")
            second = await _post(url, demo_dir, "outbox-2")

            async def both_dead() -> bool:  # watched in the store; the CLI lists them below
                return len(await dead_letter_ids(database_url)) == 2

            await _until(both_dead)
            letters = {x["notice_id"]: x for x in await _dead(demo_dir, env)}
            listed = (await _cli("outbox", "list", "--data", demo_dir, env=env)).stdout.splitlines()
            replay, drop = letters[first], letters[second]
            assert replay["attempts"] == 2 and "500" in replay["last_error"]
            assert replay["target"] == "mk-kumanovo-pcve-hook" and replay["kind"] == "webhook"
            refused_ids = [h["webhook-id"] for h, _, answer in receiver.received]
            assert refused_ids.count(replay["msg_id"]) == 2

            replayed = await _cli(
                "outbox", "replay", str(replay["id"]), "--data", demo_dir, env=env
            )
            dropped = await _cli(
                "outbox", "drop", str(drop["id"]), "--data", demo_dir, "--reason",
                "receiver retired", env=env,
            )  # fmt: skip

            async def delivered() -> bool:
                return replay["msg_id"] in receiver.delivered_ids()

            await _until(delivered)
            await asyncio.sleep(3)  # three more outbox rounds: no second delivery, no drop sent
            again = await _run("outbox", "replay", str(replay["id"]), "--data", demo_dir, env=env)
            left = await _dead(demo_dir, env)
        export = await _cli("audit", "export", "--data", demo_dir, env=env)
    finally:
        await receiver.stop()
    assert len(listed) == 2 and all("mk-kumanovo-pcve-hook" in line for line in listed)
    assert replayed.stdout.startswith(f"Re-queued webhook {replay['id']} to mk-kumanovo-pcve-hook")
    assert dropped.stdout.startswith(f"Dropped webhook {drop['id']}")
    assert receiver.delivered_ids() == [replay["msg_id"]]  # once, under its original id
    assert drop["msg_id"] not in [h["webhook-id"] for h, _, a in receiver.received[4:]]
    assert again.returncode == 1 and again.stderr.strip() == (
        f"liaison: no dead-lettered message {replay['id']} (see `liaison outbox list`)"
    )
    assert left == []
    events = [json.loads(line) for line in export.stdout.splitlines()[1:]]
    acts = {e["action"]: e for e in events if e["action"].startswith("outbox.")}
    assert acts["outbox.replayed"]["object"] == f"notice:{first}"
    assert acts["outbox.replayed"]["actor"].startswith("operator:")
    assert acts["outbox.dropped"]["details"]["reason"] == "receiver retired"
    assert acts["outbox.dropped"]["details"]["msg_id"] == drop["msg_id"]
    (demo_dir / "export.jsonl").write_text(export.stdout)
    verified = run_cli("audit", "verify", demo_dir / "export.jsonl")
    assert verified.returncode == 0 and verified.stdout.startswith("OK: "), verified.stderr
    assert "webhook.delivered" in {e["action"] for e in events if e["object"] == f"notice:{first}"}
