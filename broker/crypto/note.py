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


def cosign_note(note: str, name: str, key: Ed25519PrivateKey) -> str:
    """``note`` (already signed) with one more signature line by ``key`` under ``name``."""
    text, sep, _ = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    public = key.public_key().public_bytes_raw()
    signature = key.sign((text + "\n").encode())
    return f"{note}{DASH}{name} {base64.b64encode(key_id(name, public) + signature).decode()}\n"


def verifier_key(name: str, public: bytes) -> str:
    """The C2SP signed-note verifier key: ``<name>+<hex key ID>+<base64(0x01 || public)>``, the
    form Go's ``golang.org/x/mod/sumdb/note.NewVerifier`` reads."""
    return f"{name}+{key_id(name, public).hex()}+{base64.b64encode(ED25519 + public).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes]:
    """(name, Ed25519 public key) of a verifier key; ValueError if it is not one."""
    name, sep, rest = vkey.partition("+")
    hex_id, sep2, blob = rest.partition("+")
    if not (sep and sep2 and name) or len(hex_id) != 8:
        raise ValueError("not a verifier key (name+hexid+base64)")
    raw = base64.b64decode(blob, validate=True)
    if len(raw) != 33 or raw[:1] != ED25519:
        raise ValueError("not an Ed25519 verifier key")
    if key_id(name, raw[1:]).hex() != hex_id.lower():
        raise ValueError("the verifier key's id does not match its key")
    return name, raw[1:]


def open_note_any(note: str, name: str, publics: list[bytes] | tuple[bytes, ...]) -> str:
    """The note's text if any of ``publics`` signed it under ``name``; ValueError otherwise."""
    last: ValueError | None = None
    for public in publics:
        try:
            return open_note(note, name, public)
        except ValueError as e:
            last = e
    raise last or ValueError("no key to verify the note with")
