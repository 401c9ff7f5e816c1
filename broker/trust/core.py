"""Verify the directory's root of trust and its signed key bindings. Pure: no I/O, time passed in.

The root (TUF root metadata, python-tuf's Metadata API) lists the administrators' Ed25519 keys
and a threshold; the key bindings are TUF ``targets`` metadata signed by the threshold of the
keys the root names for ``targets``, carrying every agency and contact key of the directory in
the ``liaison_key_bindings`` field. The broker only relays these files; it holds no key that
signs them.

Invariants:
- A pinned root is trusted as given (it came at enrolment, out of band) but must still be signed
  by its own threshold and be of type root.
- A new root version N+1 is accepted only when the threshold of root N *and* the threshold of
  N+1 itself signed it (TUF 5.3.4); versions move by exactly one. Intermediate roots may have
  expired; the final one must not.
- Bindings are accepted only when the trusted root's ``targets`` threshold signed them, they have
  not expired at ``now``, and their version is not lower than the last one this client accepted.
- A sender's key counts as the agency's only when the bindings bind that key id to that
  organisation with the same public key, and its status is not ``revoked``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Targets

from broker.errors import KeyNotBound, KeyRevoked, TrustRefused
from broker.titles import CODES, Translations

BINDINGS_FIELD = "liaison_key_bindings"
# The directory roots of the peers this country agreed with (``sha256:<hex>`` by peer or member
# country id, from the peer files), signed with the keys: a client that pinned this country's
# root checks a notice that crossed a border against the sending country's root without a pin
# of its own (broker/federation/origin.py). Absent in bindings signed before federation.
PEER_ROOTS_FIELD = "liaison_peer_roots"
BINDINGS_ROLE = Targets.type  # the bindings are signed by the root's "targets" keys
MAX_ROOT_ROTATIONS = 32  # root versions a client walks in one update (TUF max_root_rotations)
MAX_METADATA_BYTES = 4_000_000  # bytes: a bindings file for ~10,000 keys fits well inside
STATUSES = ("active", "retired", "revoked")


@dataclass(frozen=True, slots=True)
class Binding:
    """One key as the administrators signed it."""

    key_id: str
    owner: str  # organisation or contact id
    owner_name: str
    owner_kind: str  # "organisation" or "contact"
    type: str  # "ed25519" or "x25519"
    public: bytes  # raw 32 bytes
    status: str  # "active", "retired" or "revoked"
    owner_names: Translations = ()  # the owner's name by language, when the file gave some


@dataclass(frozen=True, slots=True)
class KeyBindings:
    version: int
    expires: datetime
    keys: Mapping[str, Binding]
    peer_roots: Mapping[str, str] = field(default_factory=dict)  # peer or country → pin


def parse_root(data: bytes) -> Metadata[Root]:
    """Root metadata from bytes, signed by its own threshold; anything else is TrustRefused."""
    root = _parse(data, Root, "root")
    _verify(root.signed, Root.type, root, "the root is not signed by its own threshold")
    return root


def update_root(trusted: Metadata[Root], data: bytes) -> Metadata[Root]:
    """The next root version, if the trusted root's threshold and its own both signed it."""
    new = _parse(data, Root, "root")
    _verify(trusted.signed, Root.type, new, "the new root is not signed by the current root")
    if new.signed.version != trusted.signed.version + 1:
        raise TrustRefused(
            f"root version {new.signed.version} does not follow version {trusted.signed.version}"
        )
    _verify(new.signed, Root.type, new, "the new root is not signed by its own threshold")
    return new


def final_root(pinned: bytes, updates: Sequence[bytes], now: datetime) -> Metadata[Root]:
    """Walk from the pinned root through ``updates`` (versions N+1, N+2, ...); the last must be live."""
    if len(updates) > MAX_ROOT_ROTATIONS:
        raise TrustRefused(f"more than {MAX_ROOT_ROTATIONS} root rotations at once")
    root = parse_root(pinned)
    for data in updates:
        root = update_root(root, data)
    if root.signed.is_expired(now):
        raise TrustRefused(f"the directory root (version {root.signed.version}) has expired")
    return root


def verify_bindings(
    root: Metadata[Root], data: bytes, *, now: datetime, min_version: int = 0
) -> KeyBindings:
    """The key bindings in ``data``, if the root's threshold signed them and they are current."""
    signed = _parse(data, Targets, "key bindings")
    _verify(
        root.signed,
        BINDINGS_ROLE,
        signed,
        "the key bindings are not signed by the root's threshold",
    )
    targets = signed.signed
    if targets.is_expired(now):
        raise TrustRefused(f"the signed key bindings (version {targets.version}) have expired")
    if targets.version < min_version:
        raise TrustRefused(
            f"the signed key bindings went back from version {min_version} to {targets.version}"
        )
    entries = targets.unrecognized_fields.get(BINDINGS_FIELD)
    if not isinstance(entries, dict):
        raise TrustRefused(f"the signed key bindings have no {BINDINGS_FIELD}")
    keys = {key_id: _binding(key_id, entry) for key_id, entry in entries.items()}
    peers = _peer_roots(targets.unrecognized_fields.get(PEER_ROOTS_FIELD, {}))
    return KeyBindings(targets.version, targets.expires, keys, peers)


_PIN = re.compile(r"sha256:[0-9a-f]{64}")


def _peer_roots(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and _PIN.fullmatch(v)
        for k, v in value.items()
    ):
        raise TrustRefused(f"the signed key bindings' {PEER_ROOTS_FIELD} are malformed")
    return dict(value)


def sender_binding(
    bindings: KeyBindings, *, key_id: str, sender: str, public: bytes | None = None
) -> Binding:
    """The binding that makes ``key_id`` the sender's Ed25519 key, or KeyNotBound / KeyRevoked."""
    binding = bindings.keys.get(key_id)
    where = f"the signed directory (version {bindings.version})"
    if binding is None or binding.type != "ed25519":
        raise KeyNotBound(f"key {key_id} is not in {where}")
    if binding.owner != sender or binding.owner_kind != "organisation":
        raise KeyNotBound(f"key {key_id} belongs to {binding.owner} in {where}, not to {sender}")
    if public is not None and public != binding.public:
        raise KeyNotBound(f"key {key_id} has a different public key in {where}")
    if binding.status == "revoked":
        raise KeyRevoked(
            f"key {key_id} of {binding.owner_name} has been revoked since; {where} lists it as revoked"
        )
    return binding


def _parse(data: bytes, kind: type[Any], what: str) -> Metadata[Any]:
    if len(data) > MAX_METADATA_BYTES:
        raise TrustRefused(f"the {what} metadata is larger than {MAX_METADATA_BYTES} bytes")
    try:
        metadata: Metadata[Any] = Metadata.from_bytes(data)
    except Exception as e:
        raise TrustRefused(f"the {what} metadata is malformed") from e
    if not isinstance(metadata.signed, kind):
        raise TrustRefused(f"the {what} metadata is of type {metadata.signed.type}")
    return metadata


def _verify(delegator: Root, role: str, metadata: Metadata[Any], message: str) -> None:
    try:
        delegator.verify_delegate(role, metadata.signed_bytes, metadata.signatures)
    except (UnsignedMetadataError, ValueError) as e:
        raise TrustRefused(message) from e


def _binding(key_id: str, entry: Any) -> Binding:
    if not isinstance(entry, dict):
        raise TrustRefused(f"the binding of {key_id} is malformed")
    fields = ("owner", "owner_name", "owner_kind", "type", "public", "status")
    if any(not isinstance(entry.get(f), str) for f in fields):
        raise TrustRefused(f"the binding of {key_id} is malformed")
    if entry["status"] not in STATUSES or entry["type"] not in ("ed25519", "x25519"):
        raise TrustRefused(f"the binding of {key_id} is malformed")
    try:
        public = base64.b64decode(entry["public"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise TrustRefused(f"the binding of {key_id} has a malformed public key") from e
    if len(public) != 32:
        raise TrustRefused(f"the binding of {key_id} has a malformed public key")
    return Binding(
        key_id,
        entry["owner"],
        entry["owner_name"],
        entry["owner_kind"],
        entry["type"],
        public,
        entry["status"],
        _names(key_id, entry.get("owner_names", {})),
    )


def _names(key_id: str, names: Any) -> Translations:
    """``owner_names``: signed like the rest of the binding; absent in bindings made before it."""
    if not isinstance(names, dict) or any(
        tag not in CODES or not isinstance(text, str) for tag, text in names.items()
    ):
        raise TrustRefused(f"the binding of {key_id} is malformed")
    return tuple(names.items())
