"""The broker's own host forges a notice "from the Ministry of Interior" (THREATS.md).

The attacker has the database: it inserts an Ed25519 key for ``mk-mvr`` into the key table,
bumps the directory revision so the running broker loads it, and posts a notice signed with it.
The broker accepts it (its tables say the key is the ministry's). Every client pinned the
administrators' root at enrolment and checks the sender's key against the signed key bindings,
so the SDK and ``liaison read`` refuse it plainly; a genuine notice still verifies, and one whose
key the administrators revoked since is reported as revoked.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.client.errors import VerificationFailed
from adapters.client.recipient import RecipientClient
from adapters.client.sender import SenderClient
from adapters.client.trust import PinnedRoot
from broker.crypto.keys import KeyPair, generate, read_private_key
from broker.trust import build, core
from broker.trust.files import DEMO_ADMINS, bindings_for
from tests.integration.intake_support import example
from tests.support import run_cli, serve_process

PCVE = "mk-kumanovo-pcve"


@pytest.fixture
def broker(demo_dir: Path) -> Iterator[str]:
    with serve_process(demo_dir) as (_, url):
        yield url


@pytest.fixture
def pinned(demo_dir: Path, tmp_path: Path) -> Path:
    """Enrolment: the contact's device receives the administrators' root, out of band."""
    device = tmp_path / "device"
    device.mkdir()
    shutil.copy(demo_dir / "trust" / "root.json", device / "root.json")
    return device / "root.json"


def client(data: Path, url: str, root: Path) -> RecipientClient:
    keys = data / "keys"
    return RecipientClient(
        url,
        PCVE,
        read_private_key(keys / f"{PCVE}.pem"),
        read_private_key(keys / f"{PCVE}.x25519.pem"),
        trust=PinnedRoot.from_file(root, state=root.with_name("root.json.seen")),
    )


async def post_as(url: str, pair: KeyPair, key_id: str) -> str:
    async with SenderClient.from_pem(url, pair.pem(), key_id, retries=0) as sender:
        return str((await sender.post_notice(example("returnee-repatriation"))).body["id"])


def insert_forged_key(data: Path, pair: KeyPair) -> tuple[str, int]:
    """What the attacker does to the store: a key row for mk-mvr and a new directory revision."""
    key_id = pair.key_id("mk-mvr")
    with sqlite3.connect(data / "liaison.db") as db:
        db.execute(
            "INSERT INTO public_key (id, owner_id, type, public, status) VALUES (?, ?, ?, ?, ?)",
            (key_id, "mk-mvr", "ed25519", pair.public_raw, "active"),
        )
        (revision,) = db.execute("SELECT max(revision) FROM directory_revision").fetchone()
        db.execute(
            "INSERT INTO directory_revision (revision, applied_at, content_hash, summary, actor) "
            "VALUES (?, ?, ?, ?, ?)",
            (revision + 1, datetime.now(UTC).isoformat(), "0" * 64, "key added", "operator:root"),
        )
    return key_id, revision + 1


async def until_revision(url: str, revision: int, seconds: float = 30) -> None:
    """The running broker has loaded the forged directory (its /readyz says so)."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{url}/readyz") as response:
                if (await response.json()).get("directory_revision") == revision:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the broker did not load directory revision {revision}")


async def forge(data: Path, url: str) -> tuple[str, str]:
    forged = generate("ed25519")
    key_id, revision = await asyncio.to_thread(insert_forged_key, data, forged)
    await until_revision(url, revision)
    return await post_as(url, forged, key_id), key_id


def read_cli(data: Path, url: str, root: Path, notice_id: str) -> Any:
    return run_cli("read", notice_id, "--data", data, "--as", PCVE, "--url", url, "--root", root)


async def test_a_key_the_host_inserted_gets_a_refusal_from_the_sdk_and_the_cli(
    demo_dir: Path, broker: str, pinned: Path
) -> None:
    genuine = await post_as(
        broker, read_private_key(demo_dir / "keys" / "mk-mvr.pem"), _mvr(demo_dir)
    )
    forged_id, forged_key = await forge(demo_dir, broker)

    async with client(demo_dir, broker, pinned) as sdk:
        verified = await sdk.read(genuine)
        assert verified.sender_name == "Ministry of Interior of North Macedonia"
        fetched = await sdk._request("GET", f"/v1/notices/{forged_id}")
        assert (
            fetched["sender_name"] == "Ministry of Interior of North Macedonia"
        )  # the broker's word
        with pytest.raises(
            VerificationFailed, match=f"key {forged_key} is not in the signed directory"
        ):
            await sdk.read(forged_id)

    ok = read_cli(demo_dir, broker, pinned, genuine)
    assert ok.returncode == 0, ok.stderr
    assert (
        "Signed by Ministry of Interior of North Macedonia" in ok.stdout and "verified" in ok.stdout
    )
    as_json = run_cli(
        "read",
        genuine,
        "--json",
        "--data",
        demo_dir,
        "--as",
        PCVE,
        "--url",
        broker,
        "--root",
        pinned,
    )
    assert json.loads(as_json.stdout)["signed_by"] == "Ministry of Interior of North Macedonia"
    refused = read_cli(demo_dir, broker, pinned, forged_id)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith(
        f"liaison: REFUSED: key {forged_key} is not in the signed directory"
    )


async def test_bindings_and_a_root_the_host_made_itself_do_not_help_it(
    demo_dir: Path, broker: str, pinned: Path
) -> None:
    forged_id, _ = await forge(demo_dir, broker)
    # The host also replaces the served root and bindings with ones under keys of its own.
    impostors = [generate("ed25519"), generate("ed25519")]
    root = build.new_root([build.public_key(p) for p in impostors], threshold=1, expires=_later())
    build.sign(root, [build.signer(p) for p in impostors])
    (demo_dir / "trust" / "root.json").write_bytes(build.to_bytes(root))
    (demo_dir / "trust" / "1.root.json").write_bytes(build.to_bytes(root))
    (demo_dir / "trust" / "2.root.json").write_bytes(build.to_bytes(root))
    bindings = _bindings_with_forged_key(demo_dir, version=2)
    build.sign(bindings, [build.signer(impostors[0])])
    (demo_dir / "trust" / "bindings.json").write_bytes(build.to_bytes(bindings))

    async with client(demo_dir, broker, pinned) as sdk:
        with pytest.raises(VerificationFailed, match="not signed by the current root"):
            await sdk.read(forged_id)
    refused = read_cli(demo_dir, broker, pinned, forged_id)
    assert (
        refused.returncode == 1 and "REFUSED" in refused.stderr and "verified" not in refused.stdout
    )


async def test_a_key_revoked_since_the_notice_was_posted_is_reported_as_revoked(
    demo_dir: Path, broker: str, pinned: Path
) -> None:
    genuine = await post_as(
        broker, read_private_key(demo_dir / "keys" / "mk-mvr.pem"), _mvr(demo_dir)
    )
    async with client(demo_dir, broker, pinned) as sdk:
        await sdk.read(genuine)
    # The administrators revoke the ministry's key and sign new bindings on their machines.
    directory = demo_dir / "directory.yaml"
    text = directory.read_text()
    key_id = _mvr(demo_dir)
    start = text.index(f"id: {key_id}")
    end = text.index("status: active", start)
    directory.write_text(text[:end] + "status: revoked" + text[end + len("status: active") :])
    admins = [read_private_key(demo_dir / "keys" / f"{n}.pem") for n in DEMO_ADMINS]
    bindings = bindings_for(directory, version=2, expires=_later())
    build.sign(bindings, [build.signer(p) for p in admins])
    (demo_dir / "trust" / "bindings.json").write_bytes(build.to_bytes(bindings))

    async with client(demo_dir, broker, pinned) as sdk:
        with pytest.raises(VerificationFailed, match=f"key {key_id} .* has been revoked since"):
            await sdk.read(genuine)
    refused = read_cli(demo_dir, broker, pinned, genuine)
    assert refused.returncode == 1 and "has been revoked since" in refused.stderr


def _mvr(data: Path) -> str:
    return read_private_key(data / "keys" / "mk-mvr.pem").key_id("mk-mvr")


def _mvr_x25519(data: Path) -> str:
    return read_private_key(data / "keys" / "mk-mvr.x25519.pem").key_id("mk-mvr")


def _later() -> datetime:
    return (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)


def _bindings_with_forged_key(data: Path, *, version: int) -> Any:
    return bindings_for(data / "directory.yaml", version=version, expires=_later())


async def test_the_agency_sees_the_forged_key_in_the_audit_log(
    demo_dir: Path, broker: str, pinned: Path
) -> None:
    genuine_key = _mvr(demo_dir)
    genuine = await post_as(broker, read_private_key(demo_dir / "keys" / "mk-mvr.pem"), genuine_key)
    quiet = run_cli(
        "keys",
        "monitor",
        "--as",
        "mk-mvr",
        "--expect",
        genuine_key,
        "--expect",
        _mvr_x25519(demo_dir),
        "--data",
        demo_dir,
    )
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert genuine_key in quiet.stdout and quiet.stdout.rstrip().endswith(
        "and no notice signed with one"
    )

    forged_id, forged_key = await forge(demo_dir, broker)
    alarm = run_cli(
        "keys",
        "monitor",
        "--as",
        "mk-mvr",
        "--expect",
        genuine_key,
        "--expect",
        _mvr_x25519(demo_dir),
        "--data",
        demo_dir,
    )
    assert alarm.returncode == 1, alarm.stdout + alarm.stderr
    assert f"notice:{forged_id} key {forged_key}: never bound in the log" in alarm.stdout
    assert f"notice:{genuine} " not in alarm.stdout
    assert "ALARM: 0 unexpected key(s), 1 notice(s)" in alarm.stdout

    # Each notice's posted event carries its content digest and signature, as the notice does.
    export = run_cli("audit", "export", "--data", demo_dir)
    events = [json.loads(line) for line in export.stdout.splitlines()[1:]]
    posted = next(
        e for e in events if e["action"] == "notice.posted" and e["object"] == f"notice:{forged_id}"
    )
    async with client(demo_dir, broker, pinned) as sdk:
        fetched = await sdk._request("GET", f"/v1/notices/{forged_id}")
    assert (
        posted["details"]["content_digest"]
        == fetched["signature"]["signed_values"]["content-digest"]
    )
    assert f":{posted['details']['signature']}:" in fetched["signature"]["signature"]
    applied = next(e for e in events if e["action"] == "directory.applied")
    bound = {k["id"]: k for k in applied["details"]["keys"]}
    assert bound[genuine_key]["owner"] == "mk-mvr" and bound[genuine_key]["status"] == "active"


async def test_a_key_applied_for_the_agency_that_it_did_not_make_is_unexpected(
    demo_dir: Path, broker: str
) -> None:
    directory = demo_dir / "directory.yaml"
    text = directory.read_text()
    extra = generate("ed25519")
    anchor = f"keys: [{{id: {_mvr(demo_dir)}"
    entry = f"keys: [{{id: {extra.key_id('mk-mvr')}, type: ed25519, public: {extra.public_b64}, status: active}}, "
    directory.write_text(text.replace(anchor, entry + anchor[len("keys: [") :], 1))
    applied = run_cli("directory", "apply", directory, "--data", demo_dir)
    assert applied.returncode == 0, applied.stderr
    # The operator is told that clients will refuse the new key until it is signed for.
    assert applied.stderr.startswith("note: 1 key(s) of this directory are not in ")
    alarm = run_cli(
        "keys",
        "monitor",
        "--as",
        "mk-mvr",
        "--expect",
        _mvr(demo_dir),
        "--expect",
        _mvr_x25519(demo_dir),
        "--data",
        demo_dir,
    )
    assert alarm.returncode == 1
    assert f"{extra.key_id('mk-mvr')}  ed25519" in alarm.stdout and "UNEXPECTED" in alarm.stdout


async def test_old_bindings_served_again_to_undo_a_revocation_are_refused(
    demo_dir: Path, broker: str, pinned: Path
) -> None:
    genuine = await post_as(
        broker, read_private_key(demo_dir / "keys" / "mk-mvr.pem"), _mvr(demo_dir)
    )
    old = (demo_dir / "trust" / "bindings.json").read_bytes()
    async with client(demo_dir, broker, pinned) as sdk:
        await sdk.read(genuine)  # accepts version 1
    directory = demo_dir / "directory.yaml"
    text = directory.read_text()
    start = text.index(f"id: {_mvr(demo_dir)}")
    end = text.index("status: active", start)
    directory.write_text(text[:end] + "status: revoked" + text[end + len("status: active") :])
    admins = [read_private_key(demo_dir / "keys" / f"{n}.pem") for n in DEMO_ADMINS]
    bindings = bindings_for(directory, version=2, expires=_later())
    build.sign(bindings, [build.signer(p) for p in admins])
    (demo_dir / "trust" / "bindings.json").write_bytes(build.to_bytes(bindings))
    refused = read_cli(demo_dir, broker, pinned, genuine)
    assert refused.returncode == 1 and "has been revoked since" in refused.stderr
    # The host puts the old, validly signed bindings back, where the key was still active.
    (demo_dir / "trust" / "bindings.json").write_bytes(old)
    async with client(demo_dir, broker, pinned) as sdk:
        with pytest.raises(VerificationFailed, match="went back from version 2 to 1"):
            await sdk.read(genuine)
    again = read_cli(demo_dir, broker, pinned, genuine)
    assert again.returncode == 1 and "went back from version 2 to 1" in again.stderr


async def test_clients_follow_a_root_rotation_signed_by_the_old_root(
    demo_dir: Path, broker: str, pinned: Path
) -> None:
    genuine = await post_as(
        broker, read_private_key(demo_dir / "keys" / "mk-mvr.pem"), _mvr(demo_dir)
    )
    old_admins = [read_private_key(demo_dir / "keys" / f"{n}.pem") for n in DEMO_ADMINS]
    new_admins = [old_admins[1], generate("ed25519")]
    current = build.new_root(
        [build.public_key(p) for p in old_admins], threshold=2, expires=_later()
    )
    rotated = build.next_root(
        current, [build.public_key(p) for p in new_admins], threshold=2, expires=_later()
    )
    build.sign(rotated, [build.signer(p) for p in [*old_admins, new_admins[1]]])
    (demo_dir / "trust" / "2.root.json").write_bytes(build.to_bytes(rotated))
    bindings = bindings_for(demo_dir / "directory.yaml", version=2, expires=_later())
    build.sign(bindings, [build.signer(p) for p in new_admins])
    (demo_dir / "trust" / "bindings.json").write_bytes(build.to_bytes(bindings))
    async with client(demo_dir, broker, pinned) as sdk:
        assert (await sdk.read(genuine)).sender_name == "Ministry of Interior of North Macedonia"
        assert sdk.trust is not None and core.parse_root(sdk.trust.root).signed.version == 2
    # A "rotation" the host signed with keys of its own is not followed.
    impostor = generate("ed25519")
    forged = build.next_root(rotated, [build.public_key(impostor)], threshold=1, expires=_later())
    build.sign(forged, [build.signer(impostor)])
    (demo_dir / "trust" / "3.root.json").write_bytes(build.to_bytes(forged))
    refused = read_cli(demo_dir, broker, pinned, genuine)
    assert (
        refused.returncode == 1
        and "the new root is not signed by the current root" in refused.stderr
    )
