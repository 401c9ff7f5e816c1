"""Verify a fetched notice on the recipient's device, before anything of it is shown.

Invariants: the broker's associated data must be the notice's own; the notice must decrypt with
this contact's X25519 key; its Content-Digest must match the decrypted bytes; the agency's RFC
9421 signature must cover the digest and verify under a key this client trusts (pinned, or bound
under the pinned root: never one the broker serves); and the signed notice must agree with the
metadata the broker sent. Any mismatch raises ``VerificationFailed``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.client.errors import SentToPreviousKey, VerificationFailed
from broker.cap.mapping import CAP_MEDIA_TYPE, CapError, cap_document
from broker.crypto.envelope import DecryptionFailed, associated_data, open_sealed, unwrap
from broker.crypto.httpsig import SignatureInvalid, digest_matches, parse_signatures, verify_base
from broker.errors import TrustRefused
from broker.federation.origin import origin_binding, origin_reply_keys
from broker.titles import Translations, pick
from broker.trust.core import Binding, KeyBindings, sender_binding


@dataclass(frozen=True)
class VerifiedNotice:
    metadata: dict[str, Any]
    notice: dict[str, Any]  # exactly what the agency signed: channel, subject, body, ...
    plaintext: bytes
    sender_key_id: str
    content_digest: str
    sender_name: str = ""  # as the administrators signed it (empty with pinned_agency_keys)
    sender_names: Translations = ()  # that name by language, as they signed it (broker.titles)

    def sender_name_in(self, language: str | None) -> str:
        return pick(self.sender_name, self.sender_names, language)


def verify_notice(
    fetched: dict[str, Any],
    private_raw: bytes,
    pinned: dict[str, bytes] | None,
    bindings: KeyBindings | None,
    *,
    own_key_id: str | None = None,
    peer_roots: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> VerifiedNotice:
    """Decrypt with ``private_raw`` and verify; ``own_key_id`` is that key's id in the directory,
    so that a notice wrapped for another key says so instead of failing as tampered."""
    enc, sig = fetched["encryption"], fetched["signature"]
    aad = associated_data(fetched["id"], fetched["channel"], fetched["policy_hash"])
    if base64.b64decode(enc["aad"]) != aad:
        raise VerificationFailed("the broker's associated data does not match the notice")
    try:
        data_key = unwrap(base64.b64decode(enc["wrap"]["sealed"]), private_raw)
        plaintext = open_sealed(
            base64.b64decode(enc["ciphertext"]), base64.b64decode(enc["nonce"]), aad, data_key
        )
    except (DecryptionFailed, ValueError) as e:
        wrapped_for = str(enc["wrap"].get("key_id", ""))
        if own_key_id is not None and wrapped_for and wrapped_for != own_key_id:
            raise SentToPreviousKey(wrapped_for) from e
        raise VerificationFailed(f"the notice does not decrypt with this contact's key: {e}") from e
    values: dict[str, str] = sig["signed_values"]
    if not digest_matches(values.get("content-digest", ""), plaintext):
        raise VerificationFailed("the content digest does not match the decrypted notice")
    binding: Binding | None
    if "origin" in fetched:  # received from a peer broker: the sending country's directory
        # Its root as this country's administrators signed it with the bindings, unless this
        # client pinned one itself.
        pins = {**(bindings.peer_roots if bindings else {}), **(peer_roots or {})}
        public, binding = foreign_agency_key(fetched, pins, now)
    else:
        public, binding = agency_key(fetched, pinned, bindings)
    _check_signature(sig, values, public)
    notice = _signed_document(plaintext, values)
    for field, meta in (
        ("channel", "channel"),
        ("jurisdiction", "jurisdiction"),
        ("severity", "severity"),
    ):
        if notice.get(field) != fetched.get(meta):
            raise VerificationFailed(f"the broker's {meta} differs from what the agency signed")
    # The exercise or test marking: a host that strips it (a drill read as real) or adds it (a
    # real notice shrugged off) is caught here, as the signed document is the reference.
    if notice.get("exercise") != fetched.get("exercise"):
        raise VerificationFailed(
            "the broker's exercise marking differs from what the agency signed"
        )
    return VerifiedNotice(
        fetched,
        notice,
        plaintext,
        sig["sender_key_id"],
        values["content-digest"],
        binding.owner_name if binding else "",
        binding.owner_names if binding else (),
    )


def _signed_document(plaintext: bytes, values: dict[str, str]) -> dict[str, Any]:
    """What the agency signed, as a notice document: the JSON itself, or, for an alert posted as
    ``application/cap+xml``, what it maps to here (the mapping the broker applied at intake,
    with ``supersedes`` from the signed target URI, never from the broker's metadata)."""
    media_type = values.get("content-type", "").split(";")[0].strip().lower()
    if media_type != CAP_MEDIA_TYPE:
        return dict(json.loads(plaintext))
    try:
        signed_uri = values.get("@target-uri") or "/" + values.get("@query", "")
        return cap_document(plaintext, signed_uri)
    except CapError as e:
        raise VerificationFailed(f"the signed CAP alert does not map to a notice: {e}") from e


def _check_signature(sig: dict[str, Any], values: dict[str, str], public: bytes) -> None:
    try:
        [parsed] = parse_signatures(
            {"signature-input": sig["signature_input"], "signature": sig["signature"]}
        )
    except (SignatureInvalid, ValueError) as e:
        raise VerificationFailed("the agency's signature material is malformed") from e
    if parsed.params.get("keyid") != sig["sender_key_id"] or not {
        "content-digest",
        "@method",
    } <= set(parsed.components):
        raise VerificationFailed("the agency's signature does not cover this notice")
    if not verify_base(
        public,
        [(c, values[c]) for c in parsed.components],
        parsed.signature_params,
        parsed.signature,
    ):
        raise VerificationFailed("the agency's signature does not verify")


def agency_key(
    fetched: dict[str, Any], pinned: dict[str, bytes] | None, bindings: KeyBindings | None
) -> tuple[bytes, Binding | None]:
    """The sender's public key and name from what this client trusts, never from the broker."""
    key_id = str(fetched["signature"]["sender_key_id"])
    if pinned is not None:
        if key_id not in pinned:
            raise VerificationFailed(f"agency key {key_id} is not one this client trusts")
        return pinned[key_id], None
    if bindings is None:
        raise VerificationFailed(
            "no pinned directory root: the agency's key cannot be told from one the broker made"
        )
    try:
        binding = sender_binding(bindings, key_id=key_id, sender=str(fetched.get("sender")))
    except TrustRefused as e:
        raise VerificationFailed(e.message) from e
    return binding.public, binding


def foreign_agency_key(
    fetched: dict[str, Any], peer_roots: Mapping[str, str], now: datetime | None
) -> tuple[bytes, Binding]:
    """The agency key of a notice that crossed a border, as the *sending* country's
    administrators signed it, under the root this client pinned for that peer (the agreement's
    ``directory_root``): neither broker can pass a key of its own making."""
    origin = fetched["origin"]
    peer = str(origin.get("peer"))
    # Relayed by the hub, the notice carries the sending country's directory, named by country:
    # the client's own pin of that country's root decides, never the hub's or its broker's word.
    country = origin.get("country")
    source = str(country) if country else peer
    pin = peer_roots.get(source)
    if pin is None:
        via = f" (relayed by {peer})" if source != peer else ""
        raise VerificationFailed(
            f"the notice crossed from {source}{via}, whose directory root this client has not pinned"
        )
    try:
        binding = origin_binding(
            base64.b64decode(origin.get("root", "")),
            base64.b64decode(origin.get("bindings", "")),
            pin=pin,
            key_id=str(fetched["signature"]["sender_key_id"]),
            sender=str(fetched.get("sender")),
            now=now or datetime.now(UTC),
        )
    except (TrustRefused, ValueError) as e:
        raise VerificationFailed(getattr(e, "message", str(e))) from e
    return binding.public, binding


def foreign_reply_key(
    fetched: dict[str, Any],
    peer_roots: Mapping[str, str],
    offered: tuple[str, bytes] | None,
    now: datetime | None,
) -> tuple[str, bytes]:
    """The key a reply to a notice that crossed a border is sealed to: the sending agency's
    X25519 key as its own country bound it, under the root pinned for that peer. A key the
    receiving broker offers (``offered``) is taken only when those bindings hold it: a broker
    that offers a key of its own to read the reply is caught here."""
    origin = fetched["origin"]
    peer = str(origin.get("peer"))
    # Relayed by the hub: the sending country's root, as this client pinned it, decides.
    country = origin.get("country")
    source = str(country) if country else peer
    pin = peer_roots.get(source)
    if pin is None:
        via = f" (relayed by {peer})" if source != peer else ""
        raise VerificationFailed(
            f"the notice crossed from {source}{via}, whose directory root this client has not pinned"
        )
    try:
        keys = origin_reply_keys(
            base64.b64decode(origin.get("root", "")),
            base64.b64decode(origin.get("bindings", "")),
            pin=pin,
            sender=str(fetched.get("sender")),
            now=now or datetime.now(UTC),
        )
    except (TrustRefused, ValueError) as e:
        raise VerificationFailed(getattr(e, "message", str(e))) from e
    bound = {k.key_id: k.public for k in keys}
    if offered is not None and bound.get(offered[0]) != offered[1]:
        raise VerificationFailed(
            f"reply key {offered[0]} is not the sending agency's in its country's directory"
        )
    if not keys:
        raise VerificationFailed("the sending country's directory gives the agency no reply key")
    return offered or (keys[-1].key_id, keys[-1].public)


def local_reply_key(bindings: KeyBindings, sender: str, offered: tuple[str, bytes]) -> None:
    """A reply to a notice of this country is sealed only to an X25519 key the administrators
    bound to the sending agency, active: ``VerificationFailed`` for any other the broker offers."""
    key_id, public = offered
    bound = bindings.keys.get(key_id)
    if (
        bound is None
        or bound.owner != sender
        or bound.owner_kind != "organisation"
        or bound.type != "x25519"
        or bound.status != "active"
        or bound.public != public
    ):
        raise VerificationFailed(
            f"reply key {key_id} is not the sending agency's in the signed directory"
        )
