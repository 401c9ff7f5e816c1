"""Notice encryption: a fresh data key per notice, sealed for each recipient.

- The body is encrypted with XChaCha20-Poly1305 under a random 32-byte data key and a random
  24-byte nonce; the associated data binds the ciphertext to its notice id, channel and policy
  hash, so a ciphertext cannot be moved to another notice undetected.
- The data key is wrapped for each recipient's X25519 key with a sealed box (anonymous sender),
  and once for the broker's escrow key. The broker never keeps the data key itself.
- PyNaCl releases the GIL in these calls, so callers run them on a small thread pool.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import nacl.bindings
import nacl.utils
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

AEAD = "xchacha20poly1305-ietf"


class DecryptionFailed(Exception):
    """A wrap or ciphertext did not open: wrong key, or altered bytes."""


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    data_key: bytes  # never stored; wrapped, then dropped


def associated_data(notice_id: str, channel: str, policy_hash: str) -> bytes:
    return f"liaison-notice-v1\n{notice_id}\n{channel}\n{policy_hash}".encode()


def seal(plaintext: bytes, aad: bytes) -> Sealed:
    key = nacl.utils.random(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    nonce = nacl.utils.random(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, aad, nonce, key
    )
    return Sealed(ciphertext, nonce, key)


def open_sealed(ciphertext: bytes, nonce: bytes, aad: bytes, data_key: bytes) -> bytes:
    try:
        return bytes(
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                ciphertext, aad, nonce, data_key
            )
        )
    except CryptoError as e:
        raise DecryptionFailed("ciphertext does not open") from e


def wrap(data_key: bytes, recipient_public: bytes) -> bytes:
    # libsodium's crypto_box_seal through PyNaCl's binding: the same sealed box, length check
    # and errors as SealedBox(PublicKey(key)).encrypt, without its two objects per wrap
    # (≈ 4.5 µs of the 54 µs, eleven times a notice, under the GIL).
    return nacl.bindings.crypto_box_seal(bytes(data_key), bytes(recipient_public))


SPLIT_AT = 512  # wraps per chunk at least: from 1,024 wraps on they are shared among the cores


def wrap_many(data_key: bytes, recipient_publics: list[bytes]) -> list[bytes]:
    """The data key wrapped for each key, in order. A broadcast's thousands of wraps are
    shared among the cores (libsodium runs without the GIL): 2,000 take 67 ms instead of 123."""
    parts = min(_cores(), len(recipient_publics) // SPLIT_AT)
    if parts < 2:
        return [wrap(data_key, p) for p in recipient_publics]
    size = -(-len(recipient_publics) // parts)
    chunks = [recipient_publics[k : k + size] for k in range(0, len(recipient_publics), size)]
    others = [_wrappers().submit(_wrap_all, data_key, c) for c in chunks[1:]]
    out = _wrap_all(data_key, chunks[0])
    for other in others:
        out += other.result()
    return out


def _wrap_all(data_key: bytes, publics: list[bytes]) -> list[bytes]:
    return [wrap(data_key, p) for p in publics]


_CORES: list[int] = []  # asked once per process (a forked worker asks again), not per notice


def _cores() -> int:
    if not _CORES:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        _CORES.append(min(4, cores))
    return _CORES[0]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_CORES.clear)


_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _wrappers() -> ThreadPoolExecutor:
    """Threads for the other chunks, started on first use in this process (a worker process
    of ``liaison serve --workers`` starts its own: threads do not survive a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=3, thread_name_prefix="wrap"))
        return _POOL[1]


def unwrap(wrapped: bytes, recipient_private: bytes) -> bytes:
    try:
        return bytes(SealedBox(PrivateKey(recipient_private)).decrypt(wrapped))
    except CryptoError as e:
        raise DecryptionFailed("wrap does not open with this key") from e
