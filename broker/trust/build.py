"""Make and sign trust metadata, for administrators on their own machines. No file I/O here.

The root names the administrators' Ed25519 keys and a threshold for every TUF top-level role;
Liaison uses ``root`` (who the administrators are) and ``targets`` (who signs key bindings).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey
from tuf.api.metadata import TOP_LEVEL_ROLE_NAMES, Metadata, Role, Root, Targets
from tuf.api.serialization.json import JSONSerializer

from broker.crypto.keys import KeyPair
from broker.domain.directory import Directory, KeyType
from broker.errors import TrustRefused
from broker.titles import Translations
from broker.trust.core import BINDINGS_FIELD, PEER_ROOTS_FIELD

SPEC_VERSION = "1.0.31"


def signer(pair: KeyPair) -> CryptoSigner:
    """A TUF signer over an administrator's Ed25519 key."""
    if pair.type != "ed25519":
        raise TrustRefused("an administrator's key must be Ed25519")
    return CryptoSigner(pair.private)


def public_key(pair: KeyPair) -> Key:
    return SSlibKey.from_crypto(pair.private.public_key())


def new_root(
    keys: Sequence[Key], *, threshold: int, expires: datetime, version: int = 1
) -> Metadata[Root]:
    """Unsigned root metadata: every role is held by ``keys`` with ``threshold``."""
    if not 1 <= threshold <= len({k.keyid for k in keys}):
        raise TrustRefused(f"a threshold of {threshold} needs at least {threshold} distinct keys")
    root = Root(
        version=version, spec_version=SPEC_VERSION, expires=expires, consistent_snapshot=False
    )
    root.roles = {name: Role([], threshold) for name in TOP_LEVEL_ROLE_NAMES}
    for key in keys:
        for name in TOP_LEVEL_ROLE_NAMES:
            root.add_key(key, name)
    return Metadata(root)


def next_root(
    current: Metadata[Root], keys: Sequence[Key], *, threshold: int, expires: datetime
) -> Metadata[Root]:
    """Version N+1 with new keys; it must be signed by N's threshold and by its own."""
    return new_root(keys, threshold=threshold, expires=expires, version=current.signed.version + 1)


def bindings_metadata(
    directory: Directory,
    *,
    version: int,
    expires: datetime,
    peer_roots: Mapping[str, str] | None = None,
) -> Metadata[Targets]:
    """Unsigned key bindings: every key of the directory, with its owner, type and status.

    An organisation whose name the file gives in several languages carries them as
    ``owner_names`` (signed with the rest), so a client shows the sender's name in its reader's
    language from what the administrators signed (on its Ed25519 keys, which sign notices); a
    plain name adds nothing, and bindings of a directory without translations are what they were
    before. ``peer_roots`` (peer or member country → the pin of its directory root, from the
    peer files) are signed with the keys, so this country's clients check a notice that crossed
    a border against the sending country's root; none: the file is as before federation."""
    names: dict[str, tuple[str, str, Translations]] = {
        o.id: ("organisation", o.name, o.names) for o in directory.organisations.values()
    }
    names.update({c.id: ("contact", c.name, ()) for c in directory.contacts.values()})
    entries = {}
    for key in sorted(directory.keys.values(), key=lambda k: k.id):
        kind, name, translated = names.get(key.owner, ("unknown", key.owner, ()))
        entries[key.id] = {
            "owner": key.owner,
            "owner_name": name,
            "owner_kind": kind,
            "type": key.type.value,
            "public": base64.b64encode(key.public).decode(),
            "status": key.status.value,
            # Only on signing keys: the name is shown for the sender of a notice (an Ed25519
            # key of an organisation), and the file travels with every forwarded notice.
            **(
                {"owner_names": dict(translated)}
                if translated and key.type is KeyType.ED25519
                else {}
            ),
        }
    targets = Targets(
        version=version,
        spec_version=SPEC_VERSION,
        expires=expires,
        unrecognized_fields={
            BINDINGS_FIELD: entries,
            **({PEER_ROOTS_FIELD: dict(sorted(peer_roots.items()))} if peer_roots else {}),
        },
    )
    return Metadata(targets)


def sign(metadata: Metadata[Root] | Metadata[Targets], signers: Iterable[Signer]) -> None:
    """Add each signer's signature (several administrators sign in turn)."""
    for s in signers:
        metadata.sign(s, append=True)


def to_bytes(metadata: Metadata[Root] | Metadata[Targets]) -> bytes:
    """The file: a root indented for people; key bindings compact and in UTF-8, not ``\\u``
    escapes (names in Cyrillic would triple in size; the file travels with every forwarded
    notice). Signatures are over the canonical form either way, so both read back the same."""
    if isinstance(metadata.signed, Targets):
        document = metadata.to_dict()
        return (
            json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
            + b"\n"
        )
    return metadata.to_bytes(JSONSerializer(compact=False)) + b"\n"
