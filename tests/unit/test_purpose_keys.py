"""The per-purpose key rings: their manifest, rotation and removal, and the notes they sign.

A host attacker (or a slip) that swaps a private key file, lists two signing keys, or points a
file outside the key folder stops start-up with a reason; nothing signs with an unlisted key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit.checkpoint import Checkpoint
from broker.cli.main import main as liaison
from broker.crypto.keys import generate, write_private_key
from broker.crypto.note import (
    cosign_note,
    open_note,
    open_note_any,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from broker.crypto.purpose_keys import create, load, log_origin, remove, rotate
from broker.errors import ConfigError

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "purposes.json"
    create(path, NOW)
    return path


def edit(path: Path, change: object) -> None:
    doc = json.loads(path.read_text())
    change(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_init_gives_each_purpose_its_own_key_and_the_log_its_name(manifest: Path) -> None:
    rings = load(manifest, None)  # no broker key needed
    kids = [rings.ring(p).active.kid for p in ("tokens", "log", "webhooks")]
    assert [k.split(".")[0] for k in kids] == ["tokens", "log", "webhooks"]
    assert len({rings.ring(p).active.public for p in ("tokens", "log", "webhooks")}) == 3
    assert rings.log_origin == log_origin(rings.log.active.public)
    assert all(rings.ring(p).own for p in ("tokens", "log", "webhooks"))
    assert oct(manifest.stat().st_mode & 0o777) == "0o600"


def test_a_swapped_private_key_file_stops_start_up(manifest: Path) -> None:
    entry = json.loads(manifest.read_text())["keys"]["tokens"][0]
    (manifest.parent / entry["file"]).unlink()
    write_private_key(manifest.parent / entry["file"], generate("ed25519"))
    with pytest.raises(ConfigError, match="another key than the manifest names"):
        load(manifest, None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["keys"]["log"].append({**d["keys"]["log"][0], "kid": "x"}), "exactly one"),
        (lambda d: d["keys"]["tokens"][0].update(file="../../etc/key.pem"), "beside the manifest"),
        (lambda d: d["keys"]["tokens"][0].update(state="retired"), "active or verifying"),
        (lambda d: d["keys"]["webhooks"][0].update(public="AAAA"), "32 bytes"),
        (lambda d: d["keys"].update(email=[]), "must map"),
    ],
)
def test_a_manifest_that_does_not_hold_is_refused(
    manifest: Path, change: object, reason: str
) -> None:
    edit(manifest, change)
    with pytest.raises(ConfigError, match=reason):
        load(manifest, None)


def test_rotation_overlaps_and_removal_ends_it(manifest: Path) -> None:
    old = load(manifest, None).tokens.active
    new_kid = rotate(manifest, "tokens", None, NOW)
    rings = load(manifest, None)
    assert [(k.kid, k.state) for k in rings.tokens.keys] == [
        (new_kid, "active"),
        (old.kid, "verifying"),
    ]
    with pytest.raises(ConfigError, match="active tokens key"):
        remove(manifest, "tokens", new_kid)
    remove(manifest, "tokens", old.kid)
    assert [k.kid for k in load(manifest, None).tokens.keys] == [new_kid]
    assert not (manifest.parent / str(old.file)).exists()
    with pytest.raises(ConfigError, match="no tokens key"):
        remove(manifest, "tokens", old.kid)


def test_a_removed_log_key_is_retired_and_stays_published(manifest: Path) -> None:
    before = load(manifest, None)
    rotate(manifest, "log", None, NOW)
    remove(manifest, "log", before.log.active.kid)
    after = load(manifest, None)
    assert after.log_origin == before.log_origin
    assert [k["state"] for k in after.published_log()["keys"]] == ["active", "retired"]
    assert len(after.log.signers) == 1 and len(after.log_keys().publics) == 2
    assert not (manifest.parent / str(before.log.active.file)).exists()


def test_an_older_directory_uses_the_broker_key_until_a_purpose_is_rotated(tmp_path: Path) -> None:
    manifest = tmp_path / "keys" / "purposes.json"
    broker = generate("ed25519")
    rings = load(manifest, broker)  # no manifest at all
    assert {rings.ring(p).active.kid for p in ("tokens", "log", "webhooks")} == {
        broker.key_id("broker")
    }
    assert rings.log_origin == log_origin(broker.public_raw) and not rings.log.own
    rotate(manifest, "log", broker, NOW)
    rings = load(manifest, broker)
    assert rings.log_origin == log_origin(broker.public_raw)  # the log keeps its name
    assert [k.state for k in rings.log.keys] == ["active", "verifying"]
    assert rings.tokens.active.kid == broker.key_id("broker") and not rings.tokens.own
    with pytest.raises(ConfigError, match="no tokens key"):
        load(manifest, None)  # without the broker key the other purposes have no key
    remove(manifest, "log", broker.key_id("broker"))  # never deletes the broker key's file


def test_a_cosigned_note_opens_with_either_key_and_verifier_keys_round_trip() -> None:
    old, new = generate("ed25519"), generate("ed25519")
    name = "liaison.invalid/audit/abc"
    text = Checkpoint(name, 3, b"\x07" * 32).text()
    note = cosign_note(sign_note(text, name, new.private), name, old.private)  # type: ignore[arg-type]
    for pair in (old, new):
        vkey = verifier_key(name, pair.public_raw)
        assert parse_verifier_key(vkey) == (name, pair.public_raw)
        assert open_note(note, name, pair.public_raw) == text
    assert open_note_any(note, name, [generate("ed25519").public_raw, old.public_raw]) == text
    with pytest.raises(ValueError, match="no signature"):
        open_note_any(note, name, [generate("ed25519").public_raw])
    vkey = verifier_key(name, old.public_raw)
    with pytest.raises(ValueError, match="does not match"):
        parse_verifier_key(vkey.replace(vkey.split("+")[1], "00000000"))


def test_the_cli_refuses_in_one_line(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = manifest.parent.parent
    (data / "liaison.toml").write_text("")
    active = load(manifest, None).webhooks.active.kid
    assert liaison(["keys", "remove", "webhooks", active, "--data", str(data)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "active webhooks key" in err[0]
    with pytest.raises(SystemExit) as exited:
        liaison(["keys", "rotate", "email", "--data", str(data)])
    assert exited.value.code == 2
