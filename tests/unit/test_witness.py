"""Cosignatures (c2sp.org/tlog-cosignature) and the witness's decision (c2sp.org/tlog-witness).

The cosignature is checked independently of our code: the signed bytes are rebuilt from the
spec's text and verified with PyNaCl, the key ID recomputed with hashlib.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from broker.audit.checkpoint import Checkpoint
from broker.audit.merkle import CompactRange, consistency_proof, leaf_hash
from broker.audit.witness import WitnessRefused, WitnessState, advance
from broker.crypto.cosignature import cosign, parse_vkey, verify_cosignature, vkey
from broker.crypto.note import sign_note

ORIGIN = "liaison.invalid/audit/0123456789ab"
WITNESS = "ombudsperson.mk/witness"
LOG = Ed25519PrivateKey.generate()
LOG_PUBLIC = LOG.public_key().public_bytes_raw()
W = Ed25519PrivateKey.generate()
W_PUBLIC = W.public_key().public_bytes_raw()


def leaves(n: int, tag: bytes = b"event") -> list[bytes]:
    return [leaf_hash(tag + b" %d" % i) for i in range(n)]


def root(hashes: list[bytes]) -> bytes:
    tree = CompactRange()
    for h in hashes:
        tree.append(h)
    return tree.root()


def note(hashes: list[bytes], origin: str = ORIGIN, key: Ed25519PrivateKey = LOG) -> str:
    return sign_note(Checkpoint(origin, len(hashes), root(hashes)).text(), origin, key)


def cosigner(body: str, at: int) -> str:
    return cosign(body, WITNESS, W, at)


def witnessed(hashes: list[bytes], at: int = 1_764_000_000) -> WitnessState:
    return advance(WitnessState(ORIGIN, LOG_PUBLIC), note(hashes), [], at, cosigner).state


# -- the format ------------------------------------------------------------------------------


def test_a_cosignature_verifies_independently_over_the_exact_bytes() -> None:
    body = Checkpoint(ORIGIN, 7, root(leaves(7))).text()
    line = cosign(body, WITNESS, W, 1_679_315_147)
    assert line.startswith(f"\u2014 {WITNESS} ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ", 2)[2])
    assert len(raw) == 4 + 8 + 64
    key_id = hashlib.sha256(WITNESS.encode() + b"\n\x04" + W_PUBLIC).digest()[:4]
    assert raw[:4] == key_id
    assert struct.unpack(">Q", raw[4:12]) == (1_679_315_147,)
    message = b"cosignature/v1\ntime 1679315147\n" + body.encode()
    VerifyKey(W_PUBLIC).verify(message, raw[12:])  # raises if it does not verify


def test_the_spec_example_lays_out_key_id_timestamp_signature() -> None:
    """c2sp.org/tlog-cosignature's example line carries `time 1679315147` in bytes 4..12."""
    example = (
        "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
        "qhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    )
    raw = base64.b64decode(example)
    assert len(raw) == 76 and struct.unpack(">Q", raw[4:12]) == (1_679_315_147,)


def test_verify_finds_the_cosignature_among_other_lines_and_refuses_a_wrong_one() -> None:
    checkpoint = note(leaves(3))
    body = checkpoint.partition("\n\n")[0] + "\n"
    cosigned = checkpoint + cosign(body, WITNESS, W, 1_700_000_000)
    assert verify_cosignature(cosigned, WITNESS, W_PUBLIC) == 1_700_000_000
    with pytest.raises(ValueError, match="no cosignature"):
        verify_cosignature(checkpoint, WITNESS, W_PUBLIC)
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(ValueError, match="no cosignature"):
        verify_cosignature(cosigned, WITNESS, other)
    altered = cosigned.replace(f"\n{len(leaves(3))}\n", "\n4\n", 1)
    with pytest.raises(ValueError, match="does not verify"):
        verify_cosignature(altered, WITNESS, W_PUBLIC)


def test_a_cosignature_is_not_a_log_signature_and_the_other_way_round() -> None:
    """Key ID byte 0x04 and the cosignature/v1 header separate the two."""
    body = Checkpoint(ORIGIN, 1, root(leaves(1))).text()
    as_log = sign_note(body, WITNESS, W)  # the witness's key used for a plain note signature
    with pytest.raises(ValueError, match="no cosignature"):
        verify_cosignature(as_log, WITNESS, W_PUBLIC)


def test_the_verifier_key_round_trips_and_is_checked() -> None:
    text = vkey(WITNESS, W_PUBLIC)
    assert parse_vkey(text) == (WITNESS, W_PUBLIC)
    _, hash_hex, key = text.split("+", 2)
    with pytest.raises(ValueError, match="key ID"):
        parse_vkey(f"other.witness+{hash_hex}+{key}")
    with pytest.raises(ValueError, match="a verifier key is"):
        parse_vkey("not a key")


# -- the decision ----------------------------------------------------------------------------


def test_first_checkpoint_is_taken_on_trust_then_the_log_must_extend_it() -> None:
    hashes = leaves(40)
    first = advance(WitnessState(ORIGIN, LOG_PUBLIC), note(hashes[:9]), [], 100, cosigner)
    assert first.first and first.state.size == 9
    grown = advance(first.state, note(hashes), consistency_proof(9, hashes), 200, cosigner)
    assert not grown.first and (grown.state.size, grown.state.root) == (40, root(hashes))
    assert verify_cosignature(grown.note, WITNESS, W_PUBLIC) == 200


def test_a_rewritten_history_is_refused_and_the_state_is_kept() -> None:
    hashes = leaves(12)
    state = witnessed(hashes[:9])
    rewritten = [*hashes[:3], leaf_hash(b"a different event 3"), *hashes[4:]]
    with pytest.raises(WitnessRefused) as refused:
        advance(state, note(rewritten), consistency_proof(9, rewritten), 300, cosigner)
    assert refused.value.code == "inconsistent"
    assert "two histories" in refused.value.message and "size 9" in refused.value.message


def test_a_fork_at_the_same_size_and_a_rollback_are_refused() -> None:
    hashes = leaves(10)
    state = witnessed(hashes)
    forked = [*hashes[:9], leaf_hash(b"other")]
    with pytest.raises(WitnessRefused) as refused:
        advance(state, note(forked), [], 300, cosigner)
    assert refused.value.code == "fork"
    with pytest.raises(WitnessRefused) as refused:
        advance(state, note(hashes[:8]), [], 300, cosigner)
    assert refused.value.code == "rollback"


def test_a_checkpoint_not_signed_by_the_pinned_key_or_for_another_origin_is_refused() -> None:
    state = WitnessState(ORIGIN, LOG_PUBLIC)
    with pytest.raises(WitnessRefused) as refused:
        advance(state, note(leaves(3), key=Ed25519PrivateKey.generate()), [], 1, cosigner)
    assert refused.value.code == "bad_signature"
    with pytest.raises(WitnessRefused) as refused:
        advance(state, note(leaves(3), origin="liaison.invalid/audit/other"), [], 1, cosigner)
    assert refused.value.code == "bad_signature"


def test_time_never_goes_back_and_the_state_round_trips() -> None:
    state = witnessed(leaves(5), at=500)
    again = advance(state, note(leaves(5)), [], 400, cosigner)
    assert again.state.cosigned_at == 500
    assert WitnessState.load(again.state.dump()) == again.state
    with pytest.raises(ValueError, match="damaged"):
        WitnessState.load({"format": "liaison-witness-v1", "origin": "x"})


@settings(max_examples=60, deadline=None)
@given(
    old=st.integers(1, 40),
    grow=st.integers(0, 40),
    changed=st.integers(0, 79),
)
def test_only_an_extension_of_the_cosigned_tree_is_ever_cosigned(
    old: int, grow: int, changed: int
) -> None:
    """Whatever leaf the log changes, a change inside the cosigned prefix is always refused."""
    hashes = leaves(old + grow)
    state = witnessed(hashes[:old])
    shown = list(hashes)
    if changed < len(shown):
        shown[changed] = leaf_hash(b"rewritten")
    proof = consistency_proof(old, shown) if grow else []
    try:
        result = advance(state, note(shown), proof, 10, cosigner)
    except WitnessRefused:
        assert changed < old
        return
    assert changed >= old and result.state.size == old + grow


def test_two_witness_rounds_on_one_state_file_never_run_at_once(tmp_path: Path) -> None:
    """Checking the old size and writing the new one must be atomic (c2sp.org/tlog-witness)."""
    from broker.cli.witness import _locked
    from broker.errors import ConfigError

    state = tmp_path / "state.json"
    with (
        _locked(state),
        pytest.raises(ConfigError, match="in use by another witness"),
        _locked(state),
    ):
        pass
    with _locked(state):  # free again once the first round ends
        pass
