"""The pure trust core: TUF root rotation and threshold-signed key bindings, and the sender check."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.crypto.keys import KeyPair, generate
from broker.domain.directory import (
    Contact,
    Directory,
    Jurisdiction,
    KeyType,
    Organisation,
    PublicKey,
)
from broker.errors import KeyNotBound, KeyRevoked, TrustRefused
from broker.trust import build, core
from broker.trust.files import bindings_for

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=90)
KEYS = {
    owner: generate("ed25519") for owner in ("mk-mvr", "mk-kumanovo-police", "mk-kumanovo-pcve")
}


@pytest.fixture(scope="module")
def admins() -> list[KeyPair]:
    return [generate("ed25519") for _ in range(3)]


def root_of(
    keys: list[KeyPair],
    threshold: int,
    *,
    version: int = 1,
    signers: list[KeyPair] | None = None,
    expires: datetime = LATER,
) -> bytes:
    root = build.new_root(
        [build.public_key(k) for k in keys], threshold=threshold, expires=expires, version=version
    )
    build.sign(root, [build.signer(k) for k in (keys if signers is None else signers)])
    return build.to_bytes(root)


def bindings_of(
    signers: list[KeyPair],
    *,
    version: int = 1,
    expires: datetime = LATER,
    entries: dict[str, object] | None = None,
) -> bytes:
    metadata = build.bindings_metadata(_directory(), version=version, expires=expires)
    if entries is not None:
        metadata.signed.unrecognized_fields[core.BINDINGS_FIELD] = entries
    build.sign(metadata, [build.signer(k) for k in signers])
    return build.to_bytes(metadata)


def _directory() -> Directory:
    """Two organisations of Kumanovo's world and one contact, each with an Ed25519 key."""
    keys = [
        PublicKey(KEYS[owner].key_id(owner), owner, KeyType.ED25519, KEYS[owner].public_raw)
        for owner in KEYS
    ]
    return Directory.build(
        [Jurisdiction("mk", "North Macedonia", "country")],
        [
            Organisation("mk-mvr", "Ministry of Interior of North Macedonia", "ministry", "mk"),
            Organisation("mk-kumanovo-police", "Police of Kumanovo", "police", "mk"),
        ],
        [],
        [Contact("mk-kumanovo-pcve", "Focal Point", "mk-kumanovo-police")],
        [],
        keys,
    )


def test_bindings_signed_by_the_threshold_verify_and_bind_the_ministry(
    admins: list[KeyPair],
) -> None:
    root = core.final_root(root_of(admins[:2], 2), [], NOW)
    bindings = core.verify_bindings(root, bindings_of(admins[:2]), now=NOW)
    ministry = [b for b in bindings.keys.values() if b.owner == "mk-mvr" and b.type == "ed25519"]
    assert len(ministry) == 1
    found = core.sender_binding(bindings, key_id=ministry[0].key_id, sender="mk-mvr")
    assert found.owner_name == "Ministry of Interior of North Macedonia"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("one signature of two", "not signed by the root's threshold"),
        ("a key the root does not name", "not signed by the root's threshold"),
        ("expired", "have expired"),
        ("rolled back", "went back from version 5 to 4"),
        ("edited after signing", "not signed by the root's threshold"),
        ("not bindings at all", "of type root"),
        ("not json", "malformed"),
    ],
)
def test_bad_bindings_are_refused(admins: list[KeyPair], case: str, message: str) -> None:
    root = core.final_root(root_of(admins[:2], 2), [], NOW)
    data, min_version = {
        "one signature of two": (bindings_of(admins[:1]), 0),
        "a key the root does not name": (bindings_of([admins[0], admins[2]]), 0),
        "expired": (bindings_of(admins[:2], expires=NOW - timedelta(seconds=1)), 0),
        "rolled back": (bindings_of(admins[:2], version=4), 5),
        "edited after signing": (_edited(bindings_of(admins[:2])), 0),
        "not bindings at all": (root_of(admins[:2], 2), 0),
        "not json": (b"{", 0),
    }[case]
    with pytest.raises(TrustRefused, match=message):
        core.verify_bindings(root, data, now=NOW, min_version=min_version)


def _edited(data: bytes) -> bytes:
    document = json.loads(data)
    entries = document["signed"][core.BINDINGS_FIELD]
    key_id = next(k for k, v in entries.items() if v["owner"] == "mk-kumanovo-police")
    entries[key_id]["owner"] = "mk-mvr"
    return json.dumps(document).encode()


def test_a_rotation_signed_by_the_old_root_and_the_new_is_accepted(admins: list[KeyPair]) -> None:
    old = root_of(admins[:2], 2)
    new = root_of(admins[1:], 2, version=2, signers=admins)  # old threshold (0, 1) and new (1, 2)
    root = core.final_root(old, [new], NOW)
    assert root.signed.version == 2
    assert core.verify_bindings(root, bindings_of(admins[1:]), now=NOW).version == 1
    with pytest.raises(TrustRefused):  # the retired administrator alone no longer counts
        core.verify_bindings(root, bindings_of([admins[0], admins[1]]), now=NOW)


@pytest.mark.parametrize(
    ("signers", "version", "message"),
    [
        ([1, 2], 2, "not signed by the current root"),  # only the new keys: the host's own root
        ([0, 2], 2, "not signed by the current root"),  # one of the old threshold of two
        ([0, 1], 2, "not signed by its own threshold"),  # the old root, not the new keys
        ([0, 1, 2], 3, "does not follow version 1"),
    ],
)
def test_a_rotation_without_both_thresholds_is_refused(
    admins: list[KeyPair], signers: list[int], version: int, message: str
) -> None:
    old = root_of(admins[:2], 2)
    new = root_of(admins[1:], 2, version=version, signers=[admins[i] for i in signers])
    with pytest.raises(TrustRefused, match=message):
        core.final_root(old, [new], NOW)


def test_an_expired_final_root_is_refused_but_an_expired_intermediate_is_not(
    admins: list[KeyPair],
) -> None:
    old = root_of(admins[:2], 2, expires=NOW - timedelta(days=1))
    with pytest.raises(TrustRefused, match="has expired"):
        core.final_root(old, [], NOW)
    new = root_of(admins[:2], 2, version=2)
    assert core.final_root(old, [new], NOW).signed.version == 2


def test_a_pinned_root_must_carry_its_own_threshold(admins: list[KeyPair]) -> None:
    with pytest.raises(TrustRefused, match="not signed by its own threshold"):
        core.parse_root(root_of(admins[:2], 2, signers=admins[:1]))


def test_the_sender_check_refuses_unbound_foreign_contact_and_revoked_keys(
    admins: list[KeyPair],
) -> None:
    root = core.final_root(root_of(admins[:2], 2), [], NOW)
    bindings = core.verify_bindings(root, bindings_of(admins[:2]), now=NOW)
    mvr = next(b for b in bindings.keys.values() if b.owner == "mk-mvr" and b.type == "ed25519")
    police = next(
        b for b in bindings.keys.values() if b.owner == "mk-kumanovo-police" and b.type == "ed25519"
    )
    contact = next(
        b for b in bindings.keys.values() if b.owner_kind == "contact" and b.type == "ed25519"
    )
    with pytest.raises(KeyNotBound, match="is not in the signed directory"):
        core.sender_binding(bindings, key_id="mk-mvr.ed25519.000000000000", sender="mk-mvr")
    with pytest.raises(KeyNotBound, match="belongs to mk-kumanovo-police"):
        core.sender_binding(bindings, key_id=police.key_id, sender="mk-mvr")
    with pytest.raises(KeyNotBound):
        core.sender_binding(bindings, key_id=contact.key_id, sender=contact.owner)
    with pytest.raises(KeyNotBound, match="different public key"):
        core.sender_binding(bindings, key_id=mvr.key_id, sender="mk-mvr", public=bytes(32))
    keys = dict(bindings.keys)
    keys[mvr.key_id] = replace(mvr, status="revoked")
    with pytest.raises(KeyRevoked, match="has been revoked since"):
        core.sender_binding(replace(bindings, keys=keys), key_id=mvr.key_id, sender="mk-mvr")
    keys[mvr.key_id] = replace(mvr, status="retired")  # old signatures stay good
    assert core.sender_binding(replace(bindings, keys=keys), key_id=mvr.key_id, sender="mk-mvr")


def test_bindings_are_built_from_a_demo_directory_file(demo_dir: Path) -> None:
    metadata = bindings_for(demo_dir / "directory.yaml", version=3, expires=LATER)
    entries = metadata.signed.unrecognized_fields[core.BINDINGS_FIELD]
    assert metadata.signed.version == 3
    assert {e["owner_kind"] for e in entries.values()} == {"organisation", "contact"}
    assert entries[mvr_key_id(demo_dir)]["owner_name"] == "Ministry of Interior of North Macedonia"


def mvr_key_id(data: Path) -> str:
    from broker.crypto.keys import read_private_key

    return read_private_key(data / "keys" / "mk-mvr.pem").key_id("mk-mvr")


PIN_XK = "sha256:" + "a1" * 32
PIN_HUB = "sha256:" + "b2" * 32


def test_the_peers_roots_are_signed_with_the_keys_and_an_edit_breaks_the_signature(
    admins: list[KeyPair],
) -> None:
    # Attacker: the broker's host, adding a pin of a root of its own making to the bindings it
    # relays, so that its own "foreign agency" verifies in this country's clients.
    root = core.final_root(root_of(admins[:2], 2), [], NOW)
    metadata = build.bindings_metadata(
        _directory(), version=1, expires=LATER, peer_roots={"xk": PIN_XK, "hub": PIN_HUB}
    )
    build.sign(metadata, [build.signer(k) for k in admins[:2]])
    data = build.to_bytes(metadata)
    assert core.verify_bindings(root, data, now=NOW).peer_roots == {"hub": PIN_HUB, "xk": PIN_XK}
    document = json.loads(data)
    document["signed"][core.PEER_ROOTS_FIELD]["xk"] = "sha256:" + "c3" * 32
    with pytest.raises(TrustRefused, match="not signed by the root's threshold"):
        core.verify_bindings(root, json.dumps(document).encode(), now=NOW)
    # Bindings signed before federation carry none, and are what they were.
    plain = core.verify_bindings(root, bindings_of(admins[:2]), now=NOW)
    assert plain.peer_roots == {}
    assert core.PEER_ROOTS_FIELD not in json.loads(bindings_of(admins[:2]))["signed"]


@pytest.mark.parametrize(
    "value", [["xk"], {"xk": "a1" * 32}, {"xk": "sha256:" + "A1" * 32}, {"": PIN_XK}, {"xk": 1}]
)
def test_malformed_peer_roots_are_refused_even_when_signed(
    admins: list[KeyPair], value: object
) -> None:
    root = core.final_root(root_of(admins[:2], 2), [], NOW)
    metadata = build.bindings_metadata(_directory(), version=1, expires=LATER)
    metadata.signed.unrecognized_fields[core.PEER_ROOTS_FIELD] = value
    build.sign(metadata, [build.signer(k) for k in admins[:2]])
    with pytest.raises(TrustRefused, match="liaison_peer_roots are malformed"):
        core.verify_bindings(root, build.to_bytes(metadata), now=NOW)
