"""Keys per purpose: one Ed25519 key ring each for access tokens, audit checkpoints and webhooks.

A ring is listed in a manifest (``keys.purpose_keys``, default ``keys/purposes.json``), each key
with its id, state, public key and private key file (beside the manifest, mode 0600):

- ``active``: the one key of the ring that signs;
- ``verifying``: a previous key during an overlap. Tokens it signed are still accepted; webhooks
  and checkpoints are signed with it too (Standard Webhooks and signed notes carry several
  signatures), so a receiver or witness that pinned it keeps verifying until it is removed;
- ``retired`` (log only): removed, its private file deleted, its public key kept and published,
  because the checkpoints it signed stay part of the log's history.

Invariants:
- verification for a purpose consults that purpose's ring only: a token signed with the log or
  webhook key (or any key not in the tokens ring) is refused like any forgery;
- a ring has exactly one active key; a private file must hold the public key the manifest names
  (a swapped or edited file stops start-up, never signs);
- a data directory made before keys per purpose has no manifest: every purpose without a ring of
  its own uses the broker key (``keys.signing_key``), under its old id and log origin, so it keeps
  working unchanged. ``liaison keys rotate PURPOSE`` is the explicit migration: it gives the
  purpose its own key and keeps the broker key in the ring as ``verifying`` until removed;
- the log's origin is fixed when its ring is made (from its first key, the broker key for a
  migrated log) and never changes with a rotation.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.config import Settings, resolve_secret
from broker.crypto.keys import (
    KeyPair,
    fingerprint,
    generate,
    load_private_key,
    read_private_key,
    write_private_key,
)
from broker.crypto.note import verifier_key
from broker.errors import ConfigError

PURPOSES = ("tokens", "log", "webhooks")
FORMAT = "liaison-purpose-keys-v1"
BROKER_FILE = "broker"  # a manifest entry whose private key is keys.signing_key
STATES = ("active", "verifying", "retired")


def log_origin(public_raw: bytes) -> str:
    """The log origin named after a key (the form every Liaison log had before keys per purpose)."""
    return f"liaison.invalid/audit/{fingerprint(public_raw)}"


def whpk(public_raw: bytes) -> str:
    """A Standard Webhooks asymmetric public key: ``whpk_`` + base64 of the raw Ed25519 key."""
    return "whpk_" + base64.b64encode(public_raw).decode()


@dataclass(frozen=True, slots=True)
class PurposeKey:
    kid: str
    state: str
    public: bytes
    file: str | None  # beside the manifest; BROKER_FILE: keys.signing_key; None: retired
    created: str = ""
    private: Ed25519PrivateKey | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Ring:
    purpose: str
    keys: tuple[PurposeKey, ...]  # the active key first, then the others newest first
    own: bool  # False: the broker key stands in (no ring of the purpose's own yet)

    @property
    def active(self) -> PurposeKey:
        return next(k for k in self.keys if k.state == "active")

    @property
    def signers(self) -> tuple[Ed25519PrivateKey, ...]:
        """Every key that signs: the active one first, then those in overlap."""
        return tuple(k.private for k in self.keys if k.state != "retired" and k.private)

    @property
    def verifying(self) -> tuple[PurposeKey, ...]:
        """The keys that still verify what they signed: active and in overlap (not retired)."""
        return tuple(k for k in self.keys if k.state != "retired")


@dataclass(frozen=True, slots=True)
class LogKeys:
    """What the audit log signs checkpoints with: its origin (also the note key name), the keys
    that sign (the active one first), and every key whose signatures verify, retired ones too."""

    origin: str
    signers: tuple[Ed25519PrivateKey, ...]
    publics: tuple[bytes, ...]

    @classmethod
    def single(cls, signer: Ed25519PrivateKey) -> LogKeys:
        """One key, the log named after it: a data directory without keys per purpose."""
        public = signer.public_key().public_bytes_raw()
        return cls(log_origin(public), (signer,), (public,))


@dataclass(frozen=True, slots=True)
class PurposeKeys:
    tokens: Ring
    log: Ring
    webhooks: Ring
    log_origin: str

    def ring(self, purpose: str) -> Ring:
        rings: dict[str, Ring] = {"tokens": self.tokens, "log": self.log, "webhooks": self.webhooks}
        return rings[purpose]

    def log_keys(self) -> LogKeys:
        return LogKeys(self.log_origin, self.log.signers, tuple(k.public for k in self.log.keys))

    def published_log(self) -> dict[str, Any]:
        """The log's keys as published: every key that ever signed a checkpoint, retired too."""
        name = self.log_origin
        return {
            "origin": name,
            "keys": [
                {
                    "kid": k.kid,
                    "state": k.state,
                    "key_name": name,
                    "public_key": base64.b64encode(k.public).decode(),
                    "verifier_key": verifier_key(name, k.public),
                }
                for k in self.log.keys
            ],
        }

    def published_webhooks(self) -> dict[str, Any]:
        return {
            "keys": [
                {"kid": k.kid, "state": k.state, "public_key": whpk(k.public)}
                for k in self.webhooks.verifying
            ]
        }


# -- the manifest ------------------------------------------------------------------------------


def _empty() -> dict[str, Any]:
    return {"format": FORMAT, "log_origin": None, "keys": {p: [] for p in PURPOSES}}


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest's document, checked for shape; None when there is none (an older directory)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a {FORMAT} manifest")
    rings = doc.get("keys")
    if not isinstance(rings, dict) or set(rings) - set(PURPOSES):
        raise ConfigError(f"{path}: keys must map {', '.join(PURPOSES)} to lists")
    for purpose in PURPOSES:
        _check_ring(path, purpose, rings.setdefault(purpose, []))
    if rings["log"] and not isinstance(doc.get("log_origin"), str):
        raise ConfigError(f"{path}: a log ring needs its log_origin")
    return doc


def _check_ring(path: Path, purpose: str, entries: Any) -> None:
    where = f"{path}: {purpose}"
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: not a list")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            raise ConfigError(f"{where}: every key needs a kid")
        if entry.get("state") not in STATES or (entry["state"] == "retired" and purpose != "log"):
            raise ConfigError(f"{where}: {entry['kid']}: state must be active or verifying")
        file = entry.get("file")
        if entry["state"] != "retired" and (
            not isinstance(file, str) or (file != BROKER_FILE and Path(file).name != file)
        ):
            raise ConfigError(f"{where}: {entry['kid']}: file must be a name beside the manifest")
        _public(entry, where)
    kids = [e["kid"] for e in entries]
    if len(set(kids)) != len(kids):
        raise ConfigError(f"{where}: a kid is listed twice")
    if entries and [e["state"] for e in entries].count("active") != 1:
        raise ConfigError(f"{where}: exactly one key must be active")


def _public(entry: dict[str, Any], where: str) -> bytes:
    try:
        raw = base64.b64decode(str(entry.get("public", "")), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{where}: {entry['kid']}: public must be base64 of 32 bytes")
    return raw


def write_manifest(path: Path, doc: Mapping[str, Any]) -> None:
    """Replace the manifest atomically (a crash leaves the old one or the new one, whole)."""
    scratch = path.with_name(path.name + ".new")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(scratch, path)


# -- loading -----------------------------------------------------------------------------------


def load(manifest: Path, broker: KeyPair | None) -> PurposeKeys:
    """Every purpose's ring, private keys read and checked against the manifest. ``broker`` is
    the broker key, standing in for a purpose without a ring (None: every purpose must have one)."""
    doc = read_manifest(manifest) or _empty()
    rings = {p: _ring(manifest, p, doc["keys"][p], broker) for p in PURPOSES}
    origin = doc["log_origin"] if rings["log"].own else log_origin(rings["log"].active.public)
    return PurposeKeys(rings["tokens"], rings["log"], rings["webhooks"], origin)


def _ring(manifest: Path, purpose: str, entries: list[Any], broker: KeyPair | None) -> Ring:
    if not entries:
        if broker is None:
            raise ConfigError(f"{manifest}: no {purpose} key, and no broker key to stand in")
        stand_in = PurposeKey(broker.key_id("broker"), "active", broker.public_raw, BROKER_FILE)
        return Ring(purpose, (replace(stand_in, private=_signer(broker, "the broker key")),), False)
    keys = tuple(_loaded(manifest, purpose, e, broker) for e in entries)
    ordered = sorted(keys, key=lambda k: (k.state != "active", k.state == "retired"))
    return Ring(purpose, tuple(ordered), True)


def _loaded(
    manifest: Path, purpose: str, entry: dict[str, Any], broker: KeyPair | None
) -> PurposeKey:
    where = f"{manifest}: {purpose} key {entry['kid']}"
    public = _public(entry, where)
    key = PurposeKey(
        entry["kid"], entry["state"], public, entry.get("file"), entry.get("created", "")
    )
    if key.state == "retired":
        return key
    if key.file == BROKER_FILE:
        if broker is None:
            raise ConfigError(f"{where}: names the broker key, which is not configured")
        pair = broker
    else:
        pair = read_private_key(manifest.parent / str(key.file), expected="ed25519")
    if pair.public_raw != public:
        raise ConfigError(
            f"{where}: the private key file holds another key than the manifest names"
        )
    return replace(key, private=_signer(pair, where))


def _signer(pair: KeyPair, where: str) -> Ed25519PrivateKey:
    if not isinstance(pair.private, Ed25519PrivateKey):
        raise ConfigError(f"{where}: expected an Ed25519 key")
    return pair.private


def manifest_path(settings: Settings) -> Path:
    return settings.path(settings.keys.purpose_keys)


def broker_key(settings: Settings, environ: Mapping[str, str]) -> KeyPair:
    """The broker key (``keys.signing_key``)."""
    data = resolve_secret(settings.keys.signing_key, settings, environ)
    return load_private_key(data, expected="ed25519", source="keys.signing_key")


def load_for(settings: Settings, environ: Mapping[str, str]) -> PurposeKeys:
    """The rings of this data directory; the broker key is read only if a purpose needs it."""
    manifest = manifest_path(settings)
    doc = read_manifest(manifest)
    needs_broker = doc is None or any(
        not doc["keys"][p] or any(e.get("file") == BROKER_FILE for e in doc["keys"][p])
        for p in PURPOSES
    )
    return load(manifest, broker_key(settings, environ) if needs_broker else None)


# -- changes (the operator's CLI) --------------------------------------------------------------


def _entry(purpose: str, pair: KeyPair, state: str, file: str, now: datetime) -> dict[str, Any]:
    return {
        "kid": pair.key_id(purpose),
        "state": state,
        "public": pair.public_b64,
        "file": file,
        "created": now.isoformat().replace("+00:00", "Z"),
    }


def _new_key(manifest: Path, purpose: str, now: datetime) -> dict[str, Any]:
    pair = generate("ed25519")
    name = f"{purpose}-{fingerprint(pair.public_raw)}.pem"
    manifest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_key(manifest.parent / name, pair)
    return _entry(purpose, pair, "active", name, now)


def create(manifest: Path, now: datetime) -> dict[str, Any]:
    """A new data directory's rings: one fresh key per purpose (``liaison init``)."""
    if manifest.exists():
        raise ConfigError(f"{manifest} exists already")
    doc = _empty()
    for purpose in PURPOSES:
        doc["keys"][purpose] = [_new_key(manifest, purpose, now)]
    doc["log_origin"] = log_origin(base64.b64decode(doc["keys"]["log"][0]["public"]))
    write_manifest(manifest, doc)
    return doc


def rotate(manifest: Path, purpose: str, broker: KeyPair | None, now: datetime) -> str:
    """Give ``purpose`` a new active key; the previous one (the broker key for a purpose that had
    no ring) stays as ``verifying`` until removed. Returns the new key's id."""
    _known(purpose)
    doc = read_manifest(manifest) or _empty()
    entries: list[dict[str, Any]] = doc["keys"][purpose]
    if not entries:
        if broker is None:
            raise ConfigError("no broker key to carry over (keys.signing_key)")
        entries.append(_entry("broker", broker, "active", BROKER_FILE, now))
        if purpose == "log":  # the log keeps the name it had under the broker key
            doc["log_origin"] = log_origin(broker.public_raw)
    for entry in entries:
        if entry["state"] == "active":
            entry["state"] = "verifying"
    new = _new_key(manifest, purpose, now)
    entries.insert(0, new)
    write_manifest(manifest, doc)
    return str(new["kid"])


def remove(manifest: Path, purpose: str, kid: str) -> str:
    """End an overlap: the key no longer verifies nor signs, and its private file is deleted
    (never the broker key's file, which other purposes may use). A log key is kept as
    ``retired`` (public key only): the checkpoints it signed stay verifiable. Returns what
    happened, for the operator."""
    _known(purpose)
    doc = read_manifest(manifest)
    entries: list[dict[str, Any]] = doc["keys"][purpose] if doc else []
    entry = next((e for e in entries if e["kid"] == kid), None)
    if doc is None or entry is None:
        raise ConfigError(f"no {purpose} key {kid} (see liaison keys list)")
    if entry["state"] == "active":
        raise ConfigError(
            f"{kid} is the active {purpose} key: rotate first, then remove the old one"
        )
    if entry["state"] == "retired":
        raise ConfigError(f"{kid} is retired already")
    file = entry.get("file")
    if purpose == "log":
        entry.update(state="retired", file=None)
        done = "retired (its public key stays published: old checkpoints still verify)"
    else:
        entries.remove(entry)
        done = "removed"
    write_manifest(manifest, doc)
    if isinstance(file, str) and file != BROKER_FILE:
        (manifest.parent / file).unlink(missing_ok=True)
    return done


def _known(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ConfigError(f"unknown purpose {purpose!r}: one of {', '.join(PURPOSES)}")
