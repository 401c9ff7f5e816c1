"""A broadcast's wraps are shared among threads: every recipient still gets the data key wrapped
for their own key, in their place in the list, and nobody else's."""

from __future__ import annotations

import os

import pytest
from nacl.public import PrivateKey

from broker.crypto import envelope
from broker.crypto.envelope import DecryptionFailed, unwrap, wrap_many


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_each_wrap_opens_with_its_own_key_in_its_own_place(
    cores: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envelope, "_cores", lambda: cores)
    keys = [PrivateKey.generate() for _ in range(envelope.SPLIT_AT * 3 + 7)]
    data_key = os.urandom(32)
    wrapped = wrap_many(data_key, [bytes(k.public_key) for k in keys])
    assert len(wrapped) == len(keys)
    for key, w in zip(keys, wrapped, strict=True):
        assert unwrap(w, bytes(key)) == data_key
    for k in (0, envelope.SPLIT_AT * 2, len(keys) - 1):  # chunk edges: no neighbour's wrap
        with pytest.raises(DecryptionFailed):
            unwrap(wrapped[k], bytes(keys[k - 1]))


def test_a_forked_process_gets_its_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    first = envelope._wrappers()
    monkeypatch.setattr(envelope.os, "getpid", lambda: -1)
    assert envelope._wrappers() is not first
