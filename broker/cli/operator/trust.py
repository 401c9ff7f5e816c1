"""``liaison trust ...``: administrators make and sign the directory's root and key bindings.

Run on the administrators' own machines with their own keys; nothing here touches a broker. The
files go to the broker's ``DATA/trust/`` (``N.root.json``, ``root.json``, ``bindings.json``), which
it serves unchanged at ``/v1/trust/``; clients check them against the root they pinned.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.cli.common import command, group
from broker.errors import ConfigError, TrustRefused
from broker.terminal import safe_print as print  # untrusted text: control characters escaped

if TYPE_CHECKING:  # tuf, securesystemslib and the key libraries load only when a command runs
    from securesystemslib.signer import Key
    from tuf.api.metadata import Metadata, Root

    from broker.crypto.keys import KeyPair


def _expires(text: str, now: datetime) -> datetime:
    match = re.fullmatch(r"([1-9][0-9]{0,4})d", text)
    if match is None:
        raise ConfigError(f"--expires: give a number of days, e.g. 365d (not {text!r})")
    return (now + timedelta(days=int(match[1]))).replace(microsecond=0)


def _keys(paths: list[str] | None) -> list[KeyPair]:
    from broker.crypto.keys import read_private_key

    return [read_private_key(Path(p), expected="ed25519") for p in paths or []]


def _public_keys(paths: list[str] | None) -> list[Key]:
    from securesystemslib.signer import SSlibKey

    keys: list[Key] = []
    for p in paths or []:
        try:
            value = json.loads(Path(p).read_text(encoding="utf-8"))
            keys.append(SSlibKey.from_dict(value["keyid"], dict(value["key"])))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{p}: not a key file from `liaison trust pubkey`") from e
    return keys


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e


def _read_root(path: Path) -> Metadata[Root]:
    from broker.trust import core

    return core.parse_root(_read(path))


def cmd_pubkey(args: argparse.Namespace) -> int:
    from broker.crypto.keys import read_private_key
    from broker.trust import build

    key = build.public_key(read_private_key(Path(args.key), expected="ed25519"))
    print(json.dumps({"keyid": key.keyid, "key": key.to_dict()}, indent=1))
    return 0


def cmd_init_root(args: argparse.Namespace) -> int:
    from broker.trust import build

    pairs = _keys(args.key)
    keys = [build.public_key(p) for p in pairs] + _public_keys(args.public_key)
    root = build.new_root(
        keys, threshold=args.threshold, expires=_expires(args.expires, datetime.now(UTC))
    )
    build.sign(root, [build.signer(p) for p in pairs])
    return _write(Path(args.out), build.to_bytes(root), root.signed.version, len(pairs))


def cmd_rotate_root(args: argparse.Namespace) -> int:
    from broker.trust import build

    current = _read_root(Path(args.root))
    pairs = _keys(args.key)
    keys = [build.public_key(p) for p in pairs] + _public_keys(args.public_key)
    new = build.next_root(
        current, keys, threshold=args.threshold, expires=_expires(args.expires, datetime.now(UTC))
    )
    signers = [build.signer(p) for p in pairs + _keys(args.old_key)]
    build.sign(new, signers)
    return _write(Path(args.out), build.to_bytes(new), new.signed.version, len(signers))


def cmd_sign_bindings(args: argparse.Namespace) -> int:
    from broker.trust import build
    from broker.trust.files import bindings_for, read_metadata_version

    _read_root(Path(args.root))  # refuse early when the root is not one
    out = Path(args.out)
    version = args.version or read_metadata_version(out) + 1
    bindings = bindings_for(
        Path(args.directory),
        version=version,
        expires=_expires(args.expires, datetime.now(UTC)),
        policies=Path(args.policies) if args.policies else None,
    )
    pairs = _keys(args.key)
    build.sign(bindings, [build.signer(p) for p in pairs])
    return _write(out, build.to_bytes(bindings), version, len(pairs))


def cmd_sign(args: argparse.Namespace) -> int:
    """Add this administrator's signature to a root or bindings file another one started."""
    from tuf.api.metadata import Metadata

    from broker.trust import build

    path = Path(args.file)
    data = _read(path)
    try:
        metadata: Metadata[Any] = Metadata.from_bytes(data)
    except Exception as e:
        raise ConfigError(f"{path}: not trust metadata") from e
    pairs = _keys(args.key)
    build.sign(metadata, [build.signer(p) for p in pairs])
    return _write(path, build.to_bytes(metadata), metadata.signed.version, len(pairs))


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a bindings file (and root rotations) against a pinned root, as a client would."""
    from broker.trust import core

    updates = [_read(Path(p)) for p in args.rotation or []]
    root = core.final_root(_read(Path(args.root)), updates, datetime.now(UTC))
    bindings = core.verify_bindings(root, _read(Path(args.bindings)), now=datetime.now(UTC))
    print(
        f"OK: key bindings version {bindings.version} ({len(bindings.keys)} keys, expire "
        f"{bindings.expires:%Y-%m-%dT%H:%M:%SZ}) verify under root version {root.signed.version}"
    )
    return 0


def _write(path: Path, data: bytes, version: int, signatures: int) -> int:
    if signatures == 0:
        raise TrustRefused("nothing signed: give at least one --key")
    path.write_bytes(data)
    print(f"Wrote {path}: version {version}, {signatures} signature(s) added")
    return 0


def _signing_keys(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--key", action="append", metavar="PEM", help=help)


def _listed(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--public-key",
        action="append",
        metavar="JSON",
        help="another administrator's key (from `trust pubkey`), listed but not signing here",
    )
    p.add_argument("--threshold", type=int, required=True)
    p.add_argument("--expires", default="365d", help="validity in days (default 365d)")
    p.add_argument("--out", required=True, metavar="FILE")


def add_trust_commands(sub: Any) -> None:
    """``liaison trust pubkey``, ``init-root``, ``rotate-root``, ``sign-bindings``, ``sign``, ``verify``."""
    tsub = group(
        sub, "trust", "the directory's root of trust (administrators)", usage_on_stdout=True
    )
    p = command(
        tsub, "pubkey", cmd_pubkey, "print an administrator key's public part (TUF key JSON)"
    )
    p.add_argument("--key", required=True, metavar="PEM")
    p = command(tsub, "init-root", cmd_init_root, "create root version 1, signed by each --key")
    _signing_keys(p, "an administrator's Ed25519 private key: listed in the root and signing it")
    _listed(p)
    p = command(
        tsub,
        "rotate-root",
        cmd_rotate_root,
        "make root version N+1; it needs the threshold of N (--old-key) and its own",
    )
    p.add_argument("--root", required=True, metavar="FILE", help="the current root")
    _signing_keys(p, "a key of the new root: listed and signing")
    p.add_argument("--old-key", action="append", metavar="PEM", help="a key of the current root")
    _listed(p)
    _add_binding_commands(tsub)


def _add_binding_commands(tsub: Any) -> None:
    p = command(
        tsub,
        "sign-bindings",
        cmd_sign_bindings,
        "sign the key bindings of a directory file (each key, its owner and status)",
    )
    p.add_argument("directory", metavar="DIRECTORY.yaml")
    p.add_argument("--root", required=True, metavar="FILE")
    _signing_keys(p, "an administrator's key named by the root for targets")
    p.add_argument("--expires", default="90d", help="validity in days (default 90d)")
    p.add_argument("--version", type=int, help="default: the version in --out plus one")
    p.add_argument(
        "--policies",
        metavar="DIR",
        help="the broker's policy directory: sign the directory roots its peer files pin too, "
        "so this country's clients verify notices that crossed a border without a pin of their own",
    )
    p.add_argument("--out", required=True, metavar="FILE")
    p = command(tsub, "sign", cmd_sign, "add your signature to a root or bindings file")
    p.add_argument("file", metavar="FILE")
    _signing_keys(p, "your Ed25519 private key")
    p = command(tsub, "verify", cmd_verify, "check bindings against a pinned root, as clients do")
    p.add_argument("bindings", metavar="BINDINGS.json")
    p.add_argument("--root", required=True, metavar="FILE", help="the pinned root")
    p.add_argument("--rotation", action="append", metavar="FILE", help="N+1.root.json, in order")
