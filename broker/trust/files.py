"""Trust metadata on disk: ``DIR/trust/N.root.json`` for every root version, ``root.json`` (the
newest) and ``bindings.json``, which the broker relays; and the demo's administrators.

The demo writes its two administrator keys under ``DIR/keys/trust-admin-*.pem`` like its other
demo principals' keys; the broker never reads them. In a deployment they live on the
administrators' own machines (deploy/OPERATIONS.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tuf.api.metadata import Metadata, Root, Targets

from broker.crypto.keys import KeyPair, generate, write_private_key
from broker.directory.load import load_directory_file
from broker.errors import ConfigError
from broker.trust import build, core

TRUST_DIR = "trust"
DEMO_ADMINS = ("trust-admin-1", "trust-admin-2")
DEMO_VALIDITY = timedelta(days=365)


def write_root(trust_dir: Path, root: Metadata[Root]) -> Path:
    """Write ``N.root.json`` and make it ``root.json``; returns the versioned file."""
    trust_dir.mkdir(parents=True, exist_ok=True)
    data = build.to_bytes(root)
    versioned = trust_dir / f"{root.signed.version}.root.json"
    versioned.write_bytes(data)
    (trust_dir / "root.json").write_bytes(data)
    return versioned


def read_metadata_version(path: Path) -> int:
    """The version of an existing metadata file, or 0 when there is none."""
    try:
        return int(json.loads(path.read_bytes())["signed"]["version"])
    except FileNotFoundError:
        return 0
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not trust metadata") from e


def bindings_for(
    directory_file: Path,
    *,
    version: int,
    expires: datetime,
    max_bytes: int = 50_000_000,
    policies: Path | None = None,
) -> Metadata[Targets]:
    """The bindings of a directory file; with ``policies`` (a policy set's directory), the
    directory roots its peer files pin, signed with them."""
    directory, _ = load_directory_file(directory_file, max_bytes=max_bytes)
    peers = peer_roots(policies) if policies is not None else {}
    return build.bindings_metadata(directory, version=version, expires=expires, peer_roots=peers)


def peer_roots(policies: Path) -> dict[str, str]:
    """The roots a notice from abroad is held to, by the name its ``origin`` gives: a national
    peer's ``directory_root`` under its id and each of its countries; a hub's ``member_roots``
    under each member country — never the hub's own root, whose directory vouches for no agency
    (it only relays; ``Peer.origin_pin``), so a host that serves a relayed notice with the hub's
    root and no country gets no pin. A name pinned twice must be pinned alike."""
    from broker.federation.agreements import PeerKind
    from broker.policy.load import load_policies

    pins: dict[str, str] = {}
    for peer in load_policies(policies).peers.values():
        if peer.kind is PeerKind.HUB:
            named = dict(peer.member_roots)
        else:
            named = {name: peer.directory_root for name in (peer.id, *peer.countries)}
        for name, pin in named.items():
            if pins.setdefault(name, pin) != pin:
                raise ConfigError(
                    f"{policies}: two peer files pin different directory roots for {name}"
                )
    return pins


def _names_only(signed: object, wanted: dict[str, object]) -> bool:
    """True when a signed binding differs from the wanted one only in its owner's names."""
    if not isinstance(signed, dict):
        return False
    names = ("owner_name", "owner_names")
    return {k: v for k, v in signed.items() if k not in names} == {
        k: v for k, v in wanted.items() if k not in names
    }


def init_demo_trust(data_dir: Path, directory_file: Path, *, now: datetime) -> int:
    """Two demo administrators, a 2-of-2 root, and the demo directory's key bindings, signed."""
    admins: list[KeyPair] = []
    for name in DEMO_ADMINS:
        pair = generate("ed25519")
        write_private_key(data_dir / "keys" / f"{name}.pem", pair)
        admins.append(pair)
    signers = [build.signer(p) for p in admins]
    root = build.new_root(
        [build.public_key(p) for p in admins], threshold=2, expires=now + DEMO_VALIDITY
    )
    build.sign(root, signers)
    trust_dir = data_dir / TRUST_DIR
    write_root(trust_dir, root)
    bindings = bindings_for(directory_file, version=1, expires=now + DEMO_VALIDITY)
    build.sign(bindings, signers)
    (trust_dir / "bindings.json").write_bytes(build.to_bytes(bindings))
    return len(admins)


def resign_demo_bindings(data_dir: Path, directory_file: Path, *, now: datetime) -> int:
    """The demo's administrators sign the bindings again, now with the directory roots its
    peer files pin (``liaison demo --federation`` writes them after ``init``); the version."""
    from broker.crypto.keys import read_private_key

    path = data_dir / TRUST_DIR / "bindings.json"
    version = read_metadata_version(path) + 1
    bindings = bindings_for(
        directory_file, version=version, expires=now + DEMO_VALIDITY, policies=data_dir / "policies"
    )
    admins = [
        read_private_key(data_dir / "keys" / f"{n}.pem", expected="ed25519") for n in DEMO_ADMINS
    ]
    build.sign(bindings, [build.signer(p) for p in admins])
    path.write_bytes(build.to_bytes(bindings))
    return version


def stale_bindings(data_dir: Path, directory_file: Path, *, max_bytes: int) -> str | None:
    """Why ``DIR/trust/bindings.json`` does not bind the keys of ``directory_file``, or None.

    Read without checking signatures: this is a reminder for the operator, not a trust decision.
    """
    path = data_dir / TRUST_DIR / "bindings.json"
    if not path.exists():
        return f"{path} is missing: clients verify no agency key until administrators sign one"
    try:
        signed = json.loads(path.read_bytes())["signed"][core.BINDINGS_FIELD]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{path} is not signed key bindings"
    wanted = bindings_for(directory_file, version=1, expires=datetime.now(UTC))
    entries = wanted.signed.unrecognized_fields[core.BINDINGS_FIELD]
    changed = sorted(k for k, v in entries.items() if signed.get(k) != v)
    if not changed:
        return _stale_peer_roots(path, data_dir / "policies")
    if all(_names_only(signed.get(k), entries[k]) for k in changed):
        return (
            f"the names of {len(changed)} key owner(s) (e.g. {changed[0]}) are not in {path} as "
            "they are here: clients show the signed names until administrators sign new "
            "bindings (liaison trust sign-bindings)"
        )
    return (
        f"{len(changed)} key(s) of this directory are not in {path} as they are here "
        f"(e.g. {changed[0]}): clients refuse them until administrators sign new bindings "
        "(liaison trust sign-bindings)"
    )


def _stale_peer_roots(path: Path, policies: Path) -> str | None:
    """Why the signed peer roots are not those the peer files pin, or None (also without
    peer files, or when the policies do not load: ``policy check`` says why)."""
    from broker.errors import SourceError

    try:
        wanted = peer_roots(policies) if (policies / "peers").is_dir() else {}
        signed = json.loads(path.read_bytes())["signed"].get(core.PEER_ROOTS_FIELD, {})
    except (SourceError, ConfigError, OSError, ValueError, KeyError, TypeError):
        return None
    if signed == wanted:
        return None
    return (
        f"the peers' directory roots signed in {path} are not those the peer files pin: clients "
        "refuse notices from a peer whose root is not signed there until administrators sign "
        "new bindings (liaison trust sign-bindings --policies)"
    )
