"""Key pairs and their files.

Private keys are PKCS#8 PEM files written with mode 0600; the broker only ever reads its own.
Key ids are derived from the public key, so the same key always has the same id.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from broker.errors import ConfigError

PrivateKey = ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey
Signer = ed25519.Ed25519PrivateKey  # for packages outside crypto that hold a signing key
Verifier = ed25519.Ed25519PublicKey  # and for those that hold a verification key


@dataclass(frozen=True, slots=True)
class KeyPair:
    type: str  # "ed25519" or "x25519"
    private: PrivateKey

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def private_raw(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def key_id(self, owner: str) -> str:
        return f"{owner}.{self.type}.{fingerprint(self.public_raw)}"

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def fingerprint(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:12]


def generate(key_type: str) -> KeyPair:
    if key_type == "ed25519":
        return KeyPair("ed25519", ed25519.Ed25519PrivateKey.generate())
    if key_type == "x25519":
        return KeyPair("x25519", x25519.X25519PrivateKey.generate())
    raise ValueError(f"unknown key type {key_type!r}")


def write_private_key(path: Path, pair: KeyPair) -> None:
    """Write a PKCS#8 PEM file readable by its owner only; never overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pair.pem())


def load_private_key(data: bytes, *, expected: str | None = None, source: str = "key") -> KeyPair:
    """Load a PKCS#8 PEM private key (Ed25519 or X25519)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{source}: not an unencrypted PKCS#8 PEM private key") from e
    if isinstance(key, ed25519.Ed25519PrivateKey):
        pair = KeyPair("ed25519", key)
    elif isinstance(key, x25519.X25519PrivateKey):
        pair = KeyPair("x25519", key)
    else:
        raise ConfigError(f"{source}: only Ed25519 and X25519 keys are used")
    if expected is not None and pair.type != expected:
        raise ConfigError(f"{source}: expected an {expected} key, found {pair.type}")
    return pair


def read_private_key(path: Path, *, expected: str | None = None) -> KeyPair:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read key file {path}: {e.strerror}") from e
    return load_private_key(data, expected=expected, source=str(path))


def ed25519_signer(pair: KeyPair, *, source: str = "key") -> Signer:
    """The pair's private key as an Ed25519 signer, or ConfigError."""
    if not isinstance(pair.private, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{source}: expected an Ed25519 key")
    return pair.private
