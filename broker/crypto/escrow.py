"""Custody of the broker's escrow key: sealed under a key-encryption key, the KEK optionally split.

Invariants:
- the escrow private key is only ever written as an encrypted PKCS#8 PEM (PBES2: PBKDF2-SHA256
  and AES-256-CBC, the construction ``cryptography``'s ``BestAvailableEncryption`` chooses), so the
  file beside the database is useless without the KEK, and OpenSSL can open it for recovery;
- a KEK is 32 random bytes, written as base64; anything else is refused, so a weak passphrase
  cannot become one by accident;
- a split KEK uses SLIP-39 (``shamir-mnemonic``, Trezor's reference implementation): each share
  carries its threshold, an identifier and a checksum, so fewer than the threshold, a mistyped
  share or shares of two different splits are refused instead of yielding a wrong key.
No I/O here: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import binascii
import secrets

import shamir_mnemonic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from broker.crypto.keys import KeyPair
from broker.errors import ConfigError

KEK_BYTES = 32


def new_kek() -> bytes:
    return secrets.token_bytes(KEK_BYTES)


def kek_text(kek: bytes) -> str:
    """How a KEK is written to a file or an environment variable."""
    return base64.b64encode(kek).decode() + "\n"


def parse_kek(text: bytes, *, source: str) -> bytes:
    try:
        kek = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"{source}: a KEK is {KEK_BYTES} bytes in base64") from e
    if len(kek) != KEK_BYTES:
        raise ConfigError(f"{source}: a KEK is {KEK_BYTES} bytes in base64")
    return kek


def seal(pair: KeyPair, kek: bytes) -> bytes:
    """The escrow private key as an encrypted PKCS#8 PEM under ``kek``."""
    return pair.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(kek),
    )


def unseal(data: bytes, kek: bytes, *, source: str) -> KeyPair:
    """Open a sealed escrow key; a plaintext key, a wrong KEK or another key type is refused."""
    try:
        key = serialization.load_pem_private_key(data, password=kek)
    except TypeError as e:  # the file is not encrypted
        raise ConfigError(
            f"{source}: the escrow key is stored unencrypted; seal it with `liaison escrow seal`"
        ) from e
    except ValueError as e:
        raise ConfigError(f"{source}: the KEK does not open the escrow key (wrong KEK?)") from e
    if not isinstance(key, x25519.X25519PrivateKey):
        raise ConfigError(f"{source}: the escrow key must be an X25519 key")
    return KeyPair("x25519", key)


def split(kek: bytes, threshold: int, count: int) -> list[str]:
    """``count`` SLIP-39 mnemonic shares of ``kek``, any ``threshold`` of which recover it."""
    if not 1 <= threshold <= count <= 16 or (threshold == 1 and count > 1):
        raise ConfigError(
            "a split needs 1 <= threshold <= custodians <= 16 (threshold 1: one custodian only)"
        )
    [group] = shamir_mnemonic.generate_mnemonics(1, [(threshold, count)], kek)
    return list(group)


def combine(shares: list[str]) -> bytes:
    """The KEK from SLIP-39 shares: the first threshold of them that decode (SLIP-39 combines
    exactly the threshold); fewer, or shares of different splits, are refused."""
    try:
        decoded = []
        for text in shares:
            try:
                decoded.append(shamir_mnemonic.Share.from_mnemonic(" ".join(text.split())))
            except shamir_mnemonic.MnemonicError:
                continue  # a damaged share: the others may still reach the threshold
        chosen = decoded[: decoded[0].member_threshold] if decoded else []
        kek: bytes = shamir_mnemonic.combine_mnemonics([share.mnemonic() for share in chosen])
    except (shamir_mnemonic.MnemonicError, ValueError) as e:
        # The library's message quotes a share's first words: keep it out of logs and terminals.
        raise ConfigError(
            "keys.escrow_shares: the shares do not recover the KEK "
            "(fewer than the threshold, a damaged share, or shares of different splits)"
        ) from e
    if len(kek) != KEK_BYTES:
        raise ConfigError("keys.escrow_shares: the shares do not hold a KEK")
    return kek
