"""C2SP signed notes with Ed25519 (c2sp.org/signed-note), as used by tlog checkpoints.

A note is text ending in a newline, a blank line, and signature lines
``— <key name> base64(key ID || signature)``; key ID = SHA-256(name || 0x0A || 0x01 || public)[:4].
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto.httpsig import ed25519_verify

ED25519 = b"\x01"
DASH = "\u2014 "


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> str:
    if not text.endswith("\n") or " " in name or "+" in name:
        raise ValueError("note text must end in a newline; key names have no spaces or '+'")
    public = key.public_key().public_bytes_raw()
    signature = key.sign(text.encode())
    return f"{text}\n{DASH}{name} {base64.b64encode(key_id(name, public) + signature).decode()}\n"


def open_note(note: str, name: str, public: bytes) -> str:
    """The note's text if ``name``/``public`` signed it; ValueError otherwise."""
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    text += "\n"
    wanted = key_id(name, public)
    for line in signatures.splitlines():
        if not line.startswith(DASH):
            raise ValueError("malformed signature line")
        signer, _, blob = line[len(DASH) :].partition(" ")
        raw = base64.b64decode(blob)
        if signer == name and raw[:4] == wanted:
            if ed25519_verify(public, text.encode(), raw[4:]):
                return text
            raise ValueError("the note's signature does not verify")
    raise ValueError("the note carries no signature from this key")
