"""A foreign notice's origin: the sending country's signed directory, checked against a pin.

A notice that crossed a border carries the sending broker's ``root.json`` (its administrators'
root of trust) and ``bindings.json`` (their signed key bindings), exactly as that broker serves
them at ``/v1/trust/``. Whoever checks it — the receiving broker at the border, the recipient's
client before showing anything — holds a pin of that root (the ``directory_root`` of the peer
agreement, read out in person), and accepts the agency key only when:
1. the root's SHA-256 (over its signed part, as ``liaison trust`` prints it) is the pinned one;
2. the bindings carry the root's threshold of signatures and are current;
3. they bind the signing key id to the sending organisation, not revoked.
Neither broker can pass this for a notice it made: the receiving broker does not hold the sending
administrators' keys, and the sending broker's own host does not either. The same bindings name
the agency's X25519 keys, to which a recipient over there encrypts a reply
(``origin_reply_keys``): the receiving broker cannot slip in a key of its own. Pure: bytes in.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from broker.errors import TrustRefused
from broker.trust.core import Binding, KeyBindings, parse_root, sender_binding, verify_bindings


def root_pin(root: bytes) -> str:
    """``sha256:<hex>`` of a root file's signed part: the form a peer file pins."""
    return "sha256:" + hashlib.sha256(parse_root(root).signed_bytes).hexdigest()


def origin_binding(
    root: bytes, bindings: bytes, *, pin: str, key_id: str, sender: str, now: datetime
) -> Binding:
    """The sending country's binding of ``key_id`` to ``sender``; ``TrustRefused`` otherwise."""
    verified = _verified(root, bindings, pin=pin, now=now)
    return sender_binding(verified, key_id=key_id, sender=sender)


def origin_reply_keys(
    root: bytes, bindings: bytes, *, pin: str, sender: str, now: datetime
) -> list[Binding]:
    """The sender's active X25519 keys as the sending country bound them (newest last): the
    keys a reply to its notice may be encrypted to. ``TrustRefused`` for an origin that fails."""
    verified = _verified(root, bindings, pin=pin, now=now)
    return [
        b
        for b in verified.keys.values()
        if b.owner == sender
        and b.owner_kind == "organisation"
        and b.type == "x25519"
        and b.status == "active"
    ]


def _verified(root: bytes, bindings: bytes, *, pin: str, now: datetime) -> KeyBindings:
    try:
        found = root_pin(root)
    except (ValueError, KeyError, TypeError) as e:  # TrustRefused itself passes through
        raise TrustRefused("the notice's origin root is not a root file") from e
    if found != pin.lower():
        raise TrustRefused(
            f"the notice's origin root {found[:19]}… is not the pinned {pin[:19]}…: "
            "it is not the sending country's directory"
        )
    return verify_bindings(parse_root(root), bindings, now=now)
