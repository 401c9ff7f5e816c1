"""Witness cosignatures on checkpoints (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``).

A cosignature is a signed-note signature line ``— <witness name> base64(key ID || timestamp ||
signature)``: key ID = SHA-256(name || 0x0A || 0x04 || public)[:4], timestamp = the POSIX time
of cosigning as 8 bytes big-endian, signature = Ed25519 over
``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint body`` (the body ends in a newline and
holds no signature line). The 0x04 and the header line keep a cosignature from ever verifying
as the log's own note signature (0x01), and the other way round.

A verifier key (c2sp.org/signed-note, "vkey") names a witness to pin: ``<name>+<key ID
hex>+base64(0x04 || public)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto.httpsig import ed25519_verify
from broker.crypto.note import DASH

COSIGNATURE_V1 = b"\x04"
HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1


def cosigner_key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_V1 + public).digest()[:4]


def signed_message(body: str, timestamp: int) -> bytes:
    """The exact bytes a cosignature signs over ``body`` (a checkpoint note's text)."""
    if not body.endswith("\n") or "\n\n" in body:
        raise ValueError("a checkpoint body ends in one newline and holds no signature")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError("a cosignature timestamp is between 0 and 2^63-1")
    return f"{HEADER}time {timestamp}\n{body}".encode()


def cosign(body: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """The signature line (ending in a newline) that cosigns ``body`` at ``timestamp``."""
    _check_name(name)
    public = key.public_key().public_bytes_raw()
    signature = key.sign(signed_message(body, timestamp))
    blob = cosigner_key_id(name, public) + struct.pack(">Q", timestamp) + signature
    return f"{DASH}{name} {base64.b64encode(blob).decode()}\n"


def verify_cosignature(note: str, name: str, public: bytes) -> int:
    """The timestamp of ``name``/``public``'s valid cosignature on ``note``; ValueError if none.

    Lines of other signers (the log's own, other witnesses') are skipped, as the format asks.
    """
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    body += "\n"
    wanted = cosigner_key_id(name, public)
    for line in signatures.splitlines():
        if not line.startswith(DASH):
            raise ValueError("malformed signature line")
        signer, _, blob = line[len(DASH) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            continue
        if signer != name or len(raw) != 4 + 8 + 64 or raw[:4] != wanted:
            continue
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        if timestamp > MAX_TIMESTAMP:
            raise ValueError("the cosignature's timestamp is out of range")
        if ed25519_verify(public, signed_message(body, timestamp), raw[12:]):
            return int(timestamp)
        raise ValueError(f"the cosignature of {name} does not verify")
    raise ValueError(f"the note carries no cosignature from {name}")


def vkey(name: str, public: bytes) -> str:
    """The witness's verifier key, to give to whoever checks its cosignatures."""
    _check_name(name)
    encoded = base64.b64encode(COSIGNATURE_V1 + public).decode()
    return f"{name}+{cosigner_key_id(name, public).hex()}+{encoded}"


def parse_vkey(text: str) -> tuple[str, bytes]:
    """(name, Ed25519 public key) of a ``cosignature/v1`` verifier key; ValueError otherwise."""
    name, sep, rest = text.partition("+")
    hash_hex, sep2, encoded = rest.partition("+")
    if not (sep and sep2 and name):
        raise ValueError("a verifier key is <name>+<key ID hex>+<base64 key>")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("the verifier key's key is not base64") from e
    if len(raw) != 33 or raw[:1] != COSIGNATURE_V1:
        raise ValueError("not an Ed25519 cosignature/v1 key (type 0x04, 32 bytes)")
    public = raw[1:]
    if hash_hex != cosigner_key_id(name, public).hex():
        raise ValueError("the verifier key's key ID does not match its name and key")
    return name, public


def _check_name(name: str) -> None:
    if not name or any(c in name for c in " +\n\t") or not name.isprintable():
        raise ValueError("a witness name is printable, with no spaces or '+'")
