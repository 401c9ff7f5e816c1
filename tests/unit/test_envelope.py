import pytest
from nacl.public import PrivateKey

from broker.crypto.envelope import (
    DecryptionFailed,
    associated_data,
    open_sealed,
    seal,
    unwrap,
    wrap,
)


def test_each_recipient_opens_the_notice_with_their_own_key() -> None:
    alice, bob, mallory = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    aad = associated_data("n1", "returnee-repatriation", "sha256:x")
    sealed = seal(b'{"subject": "s"}', aad)
    wraps = {
        name: wrap(sealed.data_key, bytes(k.public_key)) for name, k in (("a", alice), ("b", bob))
    }
    for name, key in (("a", alice), ("b", bob)):
        key_bytes = unwrap(wraps[name], bytes(key))
        assert open_sealed(sealed.ciphertext, sealed.nonce, aad, key_bytes) == b'{"subject": "s"}'
    with pytest.raises(DecryptionFailed):
        unwrap(wraps["a"], bytes(mallory))


def test_ciphertext_is_bound_to_its_notice() -> None:
    sealed = seal(b"body", associated_data("n1", "c", "h"))
    for other in (
        associated_data("n2", "c", "h"),
        associated_data("n1", "d", "h"),
        associated_data("n1", "c", "g"),
    ):
        with pytest.raises(DecryptionFailed):
            open_sealed(sealed.ciphertext, sealed.nonce, other, sealed.data_key)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(DecryptionFailed):
        open_sealed(flipped, sealed.nonce, associated_data("n1", "c", "h"), sealed.data_key)


def test_fresh_key_and_nonce_every_time() -> None:
    a, b = seal(b"same", b"aad"), seal(b"same", b"aad")
    assert a.data_key != b.data_key and a.nonce != b.nonce and a.ciphertext != b.ciphertext
    assert b"same" not in a.ciphertext


def test_a_wrap_is_a_standard_sealed_box_and_a_bad_key_is_refused_as_before() -> None:
    # The wrap calls libsodium's crypto_box_seal directly: what any sealed-box client opens
    # (the SDK, the web page's noble code), and the same refusals as PyNaCl's SealedBox.
    from nacl.public import SealedBox

    from broker.crypto.envelope import wrap

    recipient = PrivateKey.generate()
    data_key = bytes(range(32))
    wrapped = wrap(data_key, bytes(recipient.public_key))
    assert len(wrapped) == 48 + 32
    assert SealedBox(recipient).decrypt(wrapped) == data_key
    assert wrap(data_key, bytes(recipient.public_key)) != wrapped  # a fresh ephemeral key
    for bad in (b"", b"\x01" * 31, b"\x01" * 33):
        with pytest.raises(ValueError, match="public key"):
            wrap(data_key, bad)
