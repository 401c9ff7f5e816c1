"""Keys per purpose, rotated with overlap and published, against a real broker on loopback.

Each purpose is rotated with `liaison keys rotate` between two runs of the broker on the same
data directory and store, then its old key removed with `liaison keys remove`:
- tokens: a token signed by the old key is accepted during the overlap and refused after its
  removal; the JWKS lists both meanwhile, and joserfc (not our JOSE code) verifies with it;
- log: a checkpoint signed by the old key (here the broker key of a directory made before keys
  per purpose, so this is also the migration) verifies with the published old verifier key,
  before and after it is retired; the log keeps its origin;
- webhooks: a Standard Webhooks receiver that knows only the published whpk_ key verifies v1a
  before the rotation, during the overlap (both keys sign) and, with the new key, after it.
The attacker holds a key for another purpose (the log's, the webhooks', the broker key) and
signs an access token with it: one 401, the same as for any bad token.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from broker.audit.checkpoint import Checkpoint
from broker.audit.verify import read_export, verify_export
from broker.cli.main import main as liaison
from broker.clock import FrozenClock
from broker.crypto.keys import read_private_key
from broker.crypto.note import open_note, parse_verifier_key
from broker.crypto.purpose_keys import log_origin
from broker.crypto.tokens import make_assertion
from broker.http.keys import AUDIT, OUTBOX
from broker.store import audit_repo
from tests.integration.intake_support import Broker, example, running_broker
from tests.integration.test_adapters import Receiver, add_webhooks
from tests.support import free_port

CONTACT = "mk-kumanovo-pcve"
pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")


@pytest.fixture
def store(demo_dir: Path) -> str:
    """Keys do not depend on the store: the data directory's own SQLite file (where the CLI
    looks too), kept across the broker's restarts."""
    return f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"


def keys(data: Path, *args: str) -> None:
    assert liaison(["keys", *args, "--data", str(data)]) == 0


def manifest(data: Path) -> dict[str, Any]:
    return dict(json.loads((data / "keys" / "purposes.json").read_text()))


def private_of(data: Path, purpose: str, state: str = "active") -> Any:
    entry = next(e for e in manifest(data)["keys"][purpose] if e["state"] == state)
    return read_private_key(data / "keys" / entry["file"]).private, entry["kid"]


async def get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def token_for(broker: Broker) -> str:
    pair = read_private_key(broker.data / "keys" / f"{CONTACT}.pem")
    assertion = make_assertion(
        pair.private,  # type: ignore[arg-type]
        contact=CONTACT,
        kid=pair.key_id(CONTACT),
        audience=broker.url,
        now=datetime.now(UTC),
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{broker.url}/v1/token", json={"assertion": assertion}) as response,
    ):
        assert response.status == 200
        return str((await response.json())["access_token"])


def key_files(data: Path) -> set[str]:
    return {p.name for p in (data / "keys").iterdir()}


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def jose_verifies(token: str, jwks: dict[str, Any]) -> bool:
    try:
        jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["EdDSA"])
    except (JoseError, ValueError):
        return False
    return True


async def test_token_key_rotates_with_overlap_and_the_jwks_follows(
    demo_dir: Path, store: str
) -> None:
    port = free_port()
    async with running_broker(demo_dir, store, port=port) as broker:
        old = await token_for(broker)
        _, jwks = await get(f"{broker.url}/.well-known/jwks.json")
        assert [k["kid"] for k in jwks["keys"]] == [kid_of(old)]
        assert kid_of(old).startswith("tokens.ed25519.") and jose_verifies(old, jwks)
    keys(demo_dir, "rotate", "tokens")
    async with running_broker(demo_dir, store, port=port) as broker:
        new = await token_for(broker)
        _, jwks = await get(f"{broker.url}/.well-known/jwks.json")
        assert [k["kid"] for k in jwks["keys"]] == [kid_of(new), kid_of(old)]  # signing first
        assert jose_verifies(new, jwks) and jose_verifies(old, jwks)
        assert (await get(f"{broker.url}/v1/inbox", old))[0] == 200  # the overlap
        assert (await get(f"{broker.url}/v1/inbox", new))[0] == 200
    keys(demo_dir, "remove", "tokens", kid_of(old))
    async with running_broker(demo_dir, store, port=port) as broker:
        status, problem = await get(f"{broker.url}/v1/inbox", old)
        assert status == 401 and problem["type"].endswith("authentication_failed")
        assert (await get(f"{broker.url}/v1/inbox", new))[0] == 200
        _, jwks = await get(f"{broker.url}/.well-known/jwks.json")
        assert [k["kid"] for k in jwks["keys"]] == [kid_of(new)]
        assert jose_verifies(new, jwks) and not jose_verifies(old, jwks)
    assert f"tokens-{kid_of(old)[-12:]}.pem" not in key_files(demo_dir)  # the private key is gone


async def test_a_token_signed_with_another_purposes_key_is_one_401(
    demo_dir: Path, store: str
) -> None:
    """The attacker holds the log key, the webhook key or the broker key (a key for another
    purpose, perhaps kept less carefully) and mints an access token with it."""
    async with running_broker(demo_dir, store) as broker:
        good = await token_for(broker)
        claims = jwt.decode(good, options={"verify_signature": False})
        tokens_kid = kid_of(good)
        forged = []
        for purpose in ("log", "webhooks"):
            key, kid = private_of(demo_dir, purpose)
            for header_kid in (kid, tokens_kid):
                forged.append(
                    jwt.encode(claims, key, "EdDSA", headers={"typ": "at+jwt", "kid": header_kid})
                )
        broker_key = read_private_key(demo_dir / "keys" / "broker.pem")
        forged.append(
            jwt.encode(
                claims,
                broker_key.private,  # type: ignore[arg-type]
                "EdDSA",
                headers={"typ": "at+jwt", "kid": broker_key.key_id("broker")},
            )
        )
        answers = [await get(f"{broker.url}/v1/inbox", token) for token in forged]
        reference = await get(f"{broker.url}/v1/inbox", good[:-4] + "AAAA")
        assert (await get(f"{broker.url}/v1/inbox", good))[0] == 200
    assert reference[0] == 401
    for status, problem in answers:
        assert status == 401
        assert {k: v for k, v in problem.items() if k != "instance"} == {
            k: v for k, v in reference[1].items() if k != "instance"
        }


def legacy(data: Path) -> None:
    """Make ``data`` a directory from before keys per purpose: the broker key only."""
    for entries in manifest(data)["keys"].values():
        for entry in entries:
            (data / "keys" / entry["file"]).unlink()
    (data / "keys" / "purposes.json").unlink()


async def signed_checkpoints(broker: Broker) -> list[str]:
    await broker.app[AUDIT].checkpoint(datetime.now(UTC))
    return [note for _, note in await audit_repo.checkpoints(broker.state.engine)]


def opens(note: str, published: dict[str, Any], kid: str) -> bool:
    vkey = next(k["verifier_key"] for k in published["keys"] if k["kid"] == kid)
    name, public = parse_verifier_key(vkey)
    try:
        Checkpoint.parse(open_note(note, name, public))
    except ValueError:
        return False
    return True


async def test_log_key_migrates_from_the_broker_key_and_old_checkpoints_still_verify(
    demo_dir: Path, store: str
) -> None:
    legacy(demo_dir)
    broker_public = read_private_key(demo_dir / "keys" / "broker.pem").public_raw
    async with running_broker(demo_dir, store) as broker:
        (first,) = await signed_checkpoints(broker)
        _, published = await get(f"{broker.url}/v1/keys/log")
        _, jwks = await get(f"{broker.url}/.well-known/jwks.json")
        await token_for(broker)  # the log grows
    origin = log_origin(broker_public)  # the name every log had under the broker key
    (old,) = published["keys"]
    assert published["origin"] == origin and old["kid"].startswith("broker.ed25519.")
    assert jwks["keys"][0]["kid"] == old["kid"]  # the broker key stands in for every purpose
    assert opens(first, published, old["kid"])

    keys(demo_dir, "rotate", "log")
    async with running_broker(demo_dir, store) as broker:
        during = (await signed_checkpoints(broker))[-1]
        _, published = await get(f"{broker.url}/v1/keys/log")
        _, jwks = await get(f"{broker.url}/.well-known/jwks.json")
        await token_for(broker)
    new = published["keys"][0]
    assert published["origin"] == origin  # a rotation never renames the log
    assert [(k["kid"], k["state"]) for k in published["keys"]] == [
        (new["kid"], "active"),
        (old["kid"], "verifying"),
    ]
    assert jwks["keys"][0]["kid"] == old["kid"]  # only the log moved to its own key
    assert opens(first, published, old["kid"]) and not opens(first, published, new["kid"])
    assert opens(during, published, new["kid"]) and opens(during, published, old["kid"])

    keys(demo_dir, "remove", "log", old["kid"])
    out = demo_dir / "export.jsonl"
    exported = ["audit", "export", "--data", str(demo_dir), "--out", str(out)]
    assert await asyncio.to_thread(liaison, exported) == 0  # it runs its own event loop
    async with running_broker(demo_dir, store) as broker:
        after = (await signed_checkpoints(broker))[-1]
        _, published = await get(f"{broker.url}/v1/keys/log")
    assert [(k["kid"], k["state"]) for k in published["keys"]] == [
        (new["kid"], "active"),
        (old["kid"], "retired"),
    ]
    assert opens(first, published, old["kid"])  # history stays verifiable with the published key
    assert opens(after, published, new["kid"]) and not opens(after, published, old["kid"])
    # The whole log, old and new checkpoints, verifies with the published keys pinned; with
    # the new key alone the broker-key checkpoints are unverifiable.
    pinned = [parse_verifier_key(k["verifier_key"])[1] for k in published["keys"]]
    with out.open("rb") as f:
        header, lines = read_export(f)
        result = verify_export(header, list(lines), trusted_keys=pinned)
    assert result.ok and result.checkpoints >= 3, result.message
    with out.open("rb") as f:
        header, lines = read_export(f)
        assert not verify_export(header, list(lines), trusted_keys=pinned[:1]).ok
    args = [f"--checkpoint-key={k['verifier_key']}" for k in published["keys"]]
    assert liaison(["audit", "verify", str(out), *args]) == 0


def v1a_verifies(headers: dict[str, str], body: bytes, whpk_keys: list[str]) -> bool:
    """A Standard Webhooks receiver's asymmetric check, written from the specification: any
    ``v1a`` signature in the header, by any of the receiver's ``whpk_`` keys, over
    ``id.timestamp.body``, with the timestamp within five minutes."""
    if abs(datetime.now(UTC).timestamp() - int(headers["webhook-timestamp"])) > 300:
        return False
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for signed in headers["webhook-signature"].split(" "):
        version, _, signature = signed.partition(",")
        if version != "v1a":
            continue
        for key in whpk_keys:
            try:
                VerifyKey(base64.b64decode(key.removeprefix("whpk_"))).verify(
                    content, base64.b64decode(signature)
                )
            except BadSignatureError:
                continue
            return True
    return False


async def delivered(
    broker: Broker, receiver: Receiver, clock: FrozenClock
) -> tuple[dict[str, str], bytes]:
    async with broker.sender("mk-mvr", clock) as sender:
        await sender.post_notice(example("returnee-repatriation"))
    before = len(receiver.received)
    await broker.app[OUTBOX].tick(clock.now())
    assert len(receiver.received) == before + 1
    headers, body, _ = receiver.received[-1]
    return headers, body


async def test_webhook_key_rotates_and_receivers_verify_with_the_published_whpk_key(
    demo_dir: Path, store: str
) -> None:
    receiver = Receiver()
    add_webhooks(demo_dir, {CONTACT: receiver.url})
    await receiver.start()
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    try:
        async with running_broker(demo_dir, store, clock=clock) as broker:
            _, published = await get(f"{broker.url}/v1/keys/webhooks")
            message = await delivered(broker, receiver, clock)
        (old,) = [k["public_key"] for k in published["keys"]]
        assert old.startswith("whpk_") and v1a_verifies(*message, [old])

        keys(demo_dir, "rotate", "webhooks")
        async with running_broker(demo_dir, store, clock=clock) as broker:
            _, published = await get(f"{broker.url}/v1/keys/webhooks")
            message = await delivered(broker, receiver, clock)
        new = published["keys"][0]["public_key"]
        assert [k["public_key"] for k in published["keys"]] == [new, old]
        assert len(message[0]["webhook-signature"].split(" ")) == 2  # both sign in the overlap
        assert v1a_verifies(*message, [old]) and v1a_verifies(*message, [new])

        keys(demo_dir, "remove", "webhooks", published["keys"][1]["kid"])
        async with running_broker(demo_dir, store, clock=clock) as broker:
            _, published = await get(f"{broker.url}/v1/keys/webhooks")
            message = await delivered(broker, receiver, clock)
    finally:
        await receiver.stop()
    assert [k["public_key"] for k in published["keys"]] == [new]
    assert v1a_verifies(*message, [new]) and not v1a_verifies(*message, [old])
