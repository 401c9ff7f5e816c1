"""Escrow custody: where the escrow key's KEK comes from, and re-sealing it for new custodians.

Invariants:
- the escrow key is opened only in memory, at start, from ``keys.escrow_key`` (sealed) and either
  ``keys.escrow_kek`` or ``keys.escrow_shares`` (references); with neither, with a KEK file
  inside the data directory, or with a KEK or shares that do not open the key, the broker does
  not start (``ConfigError``, one line);
- re-sealing (``reseal``) always makes a fresh KEK: the shares of a custodian who has left do not
  open the new file (they still open any copy of the old one: see deploy/OPERATIONS.md).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.config import CONFIG_FILE, Settings, resolve_secret
from broker.crypto import escrow
from broker.crypto.keys import KeyPair, load_private_key
from broker.errors import ConfigError


def load_escrow_key(settings: Settings, environ: Mapping[str, str]) -> KeyPair:
    """The escrow key pair, unsealed with the configured KEK or custodians' shares."""
    sealed = resolve_secret(settings.keys.escrow_key, settings, environ)
    configured = settings.keys.escrow_kek or settings.keys.escrow_shares
    if not configured and b"-----BEGIN PRIVATE KEY-----" in sealed:  # from before sealing
        raise ConfigError(
            "keys.escrow_key: the escrow key is stored unencrypted; seal it with "
            "`liaison escrow seal`"
        )
    return escrow.unseal(sealed, configured_kek(settings, environ), source="keys.escrow_key")


def configured_kek(settings: Settings, environ: Mapping[str, str]) -> bytes:
    keys = settings.keys
    if keys.escrow_kek and keys.escrow_shares:
        raise ConfigError("keys.escrow_kek and keys.escrow_shares: set one, not both")
    if keys.escrow_shares:
        references = [r.strip() for r in keys.escrow_shares.split(",") if r.strip()]
        for reference in references:
            _outside_data_dir(reference, settings, "keys.escrow_shares")
        return escrow.combine(_available_shares(references, settings, environ))
    if keys.escrow_kek:
        _outside_data_dir(keys.escrow_kek, settings, "keys.escrow_kek")
        text = resolve_secret(keys.escrow_kek, settings, environ)
        return escrow.parse_kek(text, source="keys.escrow_kek")
    raise ConfigError(
        "keys.escrow_kek (or keys.escrow_shares) is not set: the escrow key is kept sealed "
        "under a KEK outside the data directory (deploy/OPERATIONS.md, escrow custody)"
    )


def _available_shares(
    references: Sequence[str], settings: Settings, environ: Mapping[str, str]
) -> list[str]:
    """The shares that can be read now: any threshold of them is enough, absent ones are skipped."""
    shares = []
    for reference in references:
        try:
            shares.append(resolve_secret(reference, settings, environ).decode(errors="replace"))
        except ConfigError:
            continue
    if not shares:
        raise ConfigError("keys.escrow_shares: none of the listed shares can be read")
    return shares


def _outside_data_dir(reference: str, settings: Settings, what: str) -> None:
    if not reference.startswith("file:"):
        return
    path = settings.path(reference.removeprefix("file:")).resolve()
    if path.is_relative_to(settings.data_dir.resolve()):
        raise ConfigError(f"{what}: {path} is inside the data directory; keep it elsewhere")


def require_outside_data_dir(reference: str, settings: Settings, what: str) -> None:
    """Refuse a ``file:`` reference that resolves into the data directory."""
    _outside_data_dir(reference, settings, what)


def write_secret_file(path: Path, text: str) -> None:
    """A new file readable by its owner only, on disk when this returns; never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def kek_file_for(data_dir: Path) -> Path:
    """Where ``liaison init`` keeps a new data directory's KEK: ``DIR.kek`` beside it."""
    data_dir = data_dir.resolve()
    return data_dir.with_name(data_dir.name + ".kek")


@dataclass(frozen=True)
class Resealed:
    shares: dict[str, Path]  # custodian -> the file their share was written to
    threshold: int


def reseal(
    settings: Settings,
    environ: Mapping[str, str],
    custodians: Sequence[str],
    threshold: int,
    out: Path,
) -> Resealed:
    """Seal the escrow key under a fresh KEK split among ``custodians``: one share file each under
    ``out`` (0600, outside the data directory), then atomically replace the sealed key file."""
    if len(set(custodians)) != len(custodians) or not all(_safe_name(c) for c in custodians):
        raise ConfigError("--custodian: distinct names of letters, digits, '-', '_' and '.'")
    out = out.resolve()
    if out.is_relative_to(settings.data_dir.resolve()):
        raise ConfigError(f"--out: {out} is inside the data directory; shares go elsewhere")
    pair = load_escrow_key(settings, environ)
    kek = escrow.new_kek()
    shares = escrow.split(kek, threshold, len(custodians))
    targets = {name: out / f"{name}.share" for name in custodians}
    if existing := [str(p) for p in targets.values() if p.exists()]:
        raise ConfigError(f"{existing[0]} exists; refusing to overwrite a share")
    for path, share in zip(targets.values(), shares, strict=True):
        write_secret_file(path, share + "\n")
    _replace_sealed_key(settings, escrow.seal(pair, kek))
    set_key_setting(settings.data_dir, "escrow_kek", None)
    set_key_setting(
        settings.data_dir, "escrow_shares", ",".join(f"file:{p}" for p in targets.values())
    )
    return Resealed(targets, threshold)


def _safe_name(name: str) -> bool:
    return bool(name) and name[0] != "." and all(c.isalnum() or c in "-_." for c in name)


def _replace_sealed_key(settings: Settings, sealed: bytes) -> None:
    reference = settings.keys.escrow_key
    if not reference.startswith("file:"):
        raise ConfigError("keys.escrow_key is not a file: write the new sealed key yourself")
    path = settings.path(reference.removeprefix("file:"))
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    write_secret_file(tmp, sealed.decode())
    os.replace(tmp, path)  # atomic: the old sealed key or the new one, never neither
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def seal_plaintext(settings: Settings, kek_reference: str, kek: bytes) -> None:
    """Seal an escrow key written unencrypted (a data directory from before sealing)."""
    data = resolve_secret(settings.keys.escrow_key, settings, {})
    pair = load_private_key(data, expected="x25519", source="keys.escrow_key")
    _replace_sealed_key(settings, escrow.seal(pair, kek))
    set_key_setting(settings.data_dir, "escrow_kek", kek_reference)


def set_key_setting(data_dir: Path, name: str, value: str | None) -> None:
    """Set (or, with None, comment out) ``name`` in liaison.toml's [keys] table, in place."""
    path = data_dir / CONFIG_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    new = f"{name} = {json.dumps(value)}" if value is not None else f'# {name} = ""'
    section, at, header = "", None, None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            header = i if stripped == "[keys]" else header
        elif section == "[keys]" and re.match(rf"#?\s*{name}\s*=", stripped):
            at = i
    if at is not None:
        lines[at] = new
    elif header is not None:
        lines.insert(header + 1, new)
    else:
        lines += ["", "[keys]", new]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
