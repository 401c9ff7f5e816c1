"""Peer files (``policies/peers/<id>.yaml``): a peer broker, its pins, and the agreement with it.

A peer is another country's national broker or the regional hub. Its file pins the peer's
broker key (Ed25519) and its directory root (the SHA-256 of the signed ``root.json`` the peer
published at enrolment), and states the agreement: which channels may cross, in which
direction, from which kinds of organisation, to which jurisdictions, under which markings.

Invariants enforced at load time (each refusal names file, line and field):
- TLP:RED never crosses a border: no crossing may list it;
- TLP:AMBER+STRICT crosses only under a bilateral agreement, and an agreement with the hub is
  never bilateral (the hub relays between many countries);
- every crossing names a channel of the same policy set, and lists that channel's marking (a
  crossing that could never match is a mistake, not a policy);
- a channel crosses at most once per direction per peer; a country is served by one national
  peer only; no two peers share a broker key or a log origin;
- a peer's log is declared whole (``log_origin`` with ``log_key``) or not at all;
- an agreement's period ends after it starts;
- a hub's ``member_roots`` pin only countries the hub names, and only a hub has them;
  ``keep_escrow`` is only for an agreement that relays.

Relaying (the hub): an agreement with ``relay: true`` makes what this broker receives from that
peer go on to the peer serving the notice's country (``crossing.decide_relay``), never to roles
here; ``keep_escrow: true`` lets this broker keep a wrap of such a notice's data key for its own
escrow — without it, once the wrap for the next peer is made, nothing kept here opens the notice.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import jsonschema

from broker.errors import SourceProblem
from broker.policy.channel import KINDS, Channel, Marking
from broker.sourcefile import Source, schema_problems

PEER_ID = {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,63}$"}
JURISDICTION_ID = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.-]{0,127}$"}
JURISDICTIONS = {
    "type": "array",
    "items": JURISDICTION_ID,
    "minItems": 1,
    "maxItems": 256,
    "uniqueItems": True,
}
TIME = {"type": "string", "minLength": 10, "maxLength": 40}


class PeerKind(StrEnum):
    NATIONAL = "national"  # another country's broker
    HUB = "hub"  # the regional hub, which relays between the countries it names


class Direction(StrEnum):
    SEND = "send"  # from this broker to the peer
    RECEIVE = "receive"  # from the peer to this broker
    BOTH = "both"

    def covers(self, wanted: Direction) -> bool:
        return self is Direction.BOTH or self is wanted


PEER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "kind", "title", "broker_key", "directory_root", "agreement"],
    "properties": {
        "id": PEER_ID,
        "kind": {"enum": [k.value for k in PeerKind]},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "url": {"type": "string", "pattern": r"^https?://[^\s]{1,2000}$"},
        "country": JURISDICTION_ID,
        "countries": JURISDICTIONS,
        "broker_key": {"type": "string", "minLength": 40, "maxLength": 64},
        "escrow_key": {"type": "string", "minLength": 40, "maxLength": 64},
        "directory_root": {"type": "string", "pattern": r"^sha256:[0-9a-f]{64}$"},
        # The peer's audit log, which this broker witnesses (and which witnesses this one's):
        # its checkpoint origin and the Ed25519 key its checkpoints are signed with.
        "log_origin": {"type": "string", "pattern": r"^[!-*,-~]{1,200}$"},
        "log_key": {"type": "string", "minLength": 40, "maxLength": 64},
        # Under mutual TLS (server.client_ca): the SHA-256 of the DER of each client certificate
        # the peer may present ("sha256:<hex>", more than one while it rotates).
        "tls_client_sha256": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": r"^sha256:[0-9a-f]{64}$"},
        },
        # A hub's member countries' directory roots (country: sha256 pin), each read out by that
        # country: a notice the hub relays is checked against the root of the country it came from.
        "member_roots": {
            "type": "object",
            "maxProperties": 256,
            "propertyNames": JURISDICTION_ID,
            "additionalProperties": {"type": "string", "pattern": r"^sha256:[0-9a-f]{64}$"},
        },
        "agreement": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "valid_from", "valid_until", "crossings"],
            "properties": {
                "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.-]{0,127}$"},
                "description": {"type": "string", "maxLength": 4000},
                "bilateral": {"type": "boolean"},
                "relay": {"type": "boolean"},
                "keep_escrow": {"type": "boolean"},
                "valid_from": TIME,
                "valid_until": TIME,
                "crossings": {
                    "type": "array",
                    "maxItems": 64,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": [
                            "channel",
                            "direction",
                            "organisation_kinds",
                            "jurisdictions",
                            "markings",
                        ],
                        "properties": {
                            "channel": PEER_ID,
                            "direction": {"enum": [d.value for d in Direction]},
                            "organisation_kinds": KINDS,
                            "jurisdictions": JURISDICTIONS,
                            "markings": {
                                "type": "array",
                                "items": {"enum": [m.value for m in Marking]},
                                "minItems": 1,
                                "uniqueItems": True,
                            },
                        },
                    },
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(PEER_SCHEMA)


@dataclass(frozen=True, slots=True)
class Crossing:
    """One line of an agreement: a channel that may cross, one way or both."""

    channel: str
    direction: Direction
    organisation_kinds: tuple[str, ...]
    jurisdictions: tuple[str, ...]  # destination (send) or this broker's (receive), at or below
    markings: tuple[Marking, ...]
    index: int = 0  # its place in the file, for explanations ("crossing 2")


@dataclass(frozen=True, slots=True)
class Agreement:
    id: str
    valid_from: datetime
    valid_until: datetime
    crossings: tuple[Crossing, ...]
    bilateral: bool = False
    description: str = ""
    relay: bool = False  # received from this peer: relayed on to the peer of its country
    keep_escrow: bool = False  # relayed: a wrap for this broker's escrow is kept too


@dataclass(frozen=True, slots=True)
class Peer:
    id: str
    kind: PeerKind
    title: str
    broker_key: bytes  # Ed25519 public key, 32 bytes
    directory_root: str  # "sha256:<hex>" of the peer's signed directory root
    countries: tuple[str, ...]  # the one country of a national peer; the hub's countries
    agreement: Agreement
    url: str | None = None  # where its broker listens: forwarding POSTs to URL/v1/federation/...
    # The peer's escrow public key (X25519), pinned here beside its broker key: a forwarded
    # notice's data key is wrapped for it. Without it nothing can be forwarded to the peer.
    escrow_key: bytes | None = None
    # The peer's audit log (c2sp.org/tlog-witness): this broker cosigns checkpoints signed by
    # ``log_key`` for ``log_origin`` once they extend what it cosigned before, and submits its
    # own checkpoints to the peer's witness (``witness_name(log_origin)``, the broker key).
    log_origin: str | None = None
    log_key: bytes | None = None
    # A hub's member countries' directory roots ("sha256:<hex>" by country), from the agreement.
    member_roots: Mapping[str, str] = field(default_factory=dict)
    # The SHA-256 digests of the client certificates the peer presents under mutual TLS: a
    # request signed by its broker key over a connection with another certificate is refused.
    tls_client_sha256: frozenset[bytes] = frozenset()
    file: str = ""

    def holds_certificate(self, certificate: bytes | None) -> bool:
        """Under mutual TLS (``certificate``: the verified one's SHA-256) this file must pin
        it; without mutual TLS (None) there is nothing to bind."""
        return certificate is None or certificate in self.tls_client_sha256

    def origin_pin(self, country: str | None) -> str | None:
        """The root a notice from this peer must carry: a national peer's own, or (a hub
        relaying) the pinned root of the member country it came from; None when nothing is
        pinned for it (a hub's own directory vouches for no agency: it only relays)."""
        if self.kind is PeerKind.HUB:  # the hub relays; it originates no notice
            return None if country is None else self.member_roots.get(country)
        if country is None or country in self.countries:
            return self.directory_root
        return None

    @property
    def witness_name(self) -> str | None:
        """The name the peer cosigns under, when it declares a log (see ``witness_name``)."""
        return None if self.log_origin is None else witness_name(self.log_origin)


def witness_name(log_origin: str) -> str:
    """A broker's witness name: its log's origin and ``/witness``. Its cosigning key is its
    broker key, so a peer file's ``log_origin`` and ``broker_key`` pin the peer's witness too."""
    return f"{log_origin}/witness"


def parse_peer(
    source: Source, expected_id: str, channels: Mapping[str, Channel]
) -> tuple[Peer | None, list[SourceProblem]]:
    """Build a peer from its file, or return every problem that refuses it."""
    problems = schema_problems(source, _VALIDATOR)
    if problems:
        return None, problems
    data: dict[str, Any] = source.data
    if data["id"] != expected_id:
        problems.append(
            source.problem(
                ("id",), f"id: peer id {data['id']!r} must match its file name {expected_id!r}"
            )
        )
    key = _broker_key(source, problems)
    escrow = _escrow_key(source, problems)
    log_key = _log(source, problems)
    countries = _countries(source, problems)
    valid = _period(source, problems)
    problems += _relay_terms(source, countries)
    problems += _check_crossings(source, channels)
    if problems or key is None or valid is None:
        return None, problems
    agreement = data["agreement"]
    return Peer(
        id=data["id"],
        kind=PeerKind(data["kind"]),
        title=data["title"],
        broker_key=key,
        directory_root=data["directory_root"],
        countries=countries,
        agreement=Agreement(
            id=agreement["id"],
            valid_from=valid[0],
            valid_until=valid[1],
            bilateral=agreement.get("bilateral", False),
            relay=agreement.get("relay", False),
            keep_escrow=agreement.get("keep_escrow", False),
            description=agreement.get("description", ""),
            crossings=tuple(
                Crossing(
                    c["channel"],
                    Direction(c["direction"]),
                    tuple(c["organisation_kinds"]),
                    tuple(c["jurisdictions"]),
                    tuple(Marking(m) for m in c["markings"]),
                    i + 1,
                )
                for i, c in enumerate(agreement["crossings"])
            ),
        ),
        url=data.get("url"),
        escrow_key=escrow,
        log_origin=data.get("log_origin") if log_key else None,
        log_key=log_key,
        member_roots=dict(data.get("member_roots", {})),
        tls_client_sha256=frozenset(
            bytes.fromhex(pin.removeprefix("sha256:")) for pin in data.get("tls_client_sha256", [])
        ),
        file=source.file,
    ), []


def _broker_key(source: Source, problems: list[SourceProblem]) -> bytes | None:
    return _raw_key(source, problems, "broker_key", "Ed25519")


def _escrow_key(source: Source, problems: list[SourceProblem]) -> bytes | None:
    if "escrow_key" not in source.data:
        return None
    return _raw_key(source, problems, "escrow_key", "X25519")


def _log(source: Source, problems: list[SourceProblem]) -> bytes | None:
    """The peer's log key, declared with its origin or not at all."""
    data = source.data
    if ("log_key" in data) != ("log_origin" in data):
        field = "log_origin" if "log_key" in data else "log_key"
        problems.append(source.problem((field,), f"{field}: log_key and log_origin go together"))
        return None
    if "log_key" not in data:
        return None
    return _raw_key(source, problems, "log_key", "Ed25519")


def _raw_key(source: Source, problems: list[SourceProblem], field: str, kind: str) -> bytes | None:
    """A pinned 32-byte public key, base64 in ``field``; a problem named by field otherwise."""
    try:
        key = base64.b64decode(source.data[field], validate=True)
    except (binascii.Error, ValueError, TypeError):
        key = b""
    if len(key) != 32:
        problems.append(
            source.problem((field,), f"{field}: not an {kind} public key (base64 of 32 bytes)")
        )
        return None
    return key


def _countries(source: Source, problems: list[SourceProblem]) -> tuple[str, ...]:
    data = source.data
    if data["kind"] == PeerKind.NATIONAL:
        if "countries" in data:
            problems.append(
                source.problem(("countries",), "countries: a national peer names one country")
            )
        if "country" not in data:
            problems.append(source.problem(("kind",), "country: a national peer needs its country"))
            return ()
        return (data["country"],)
    if "country" in data:
        problems.append(source.problem(("country",), "country: the hub names its countries"))
    if "countries" not in data:
        problems.append(
            source.problem(("kind",), "countries: the hub needs the countries it relays to")
        )
        return ()
    if data["agreement"].get("bilateral"):
        problems.append(
            source.problem(
                ("agreement", "bilateral"),
                "agreement/bilateral: an agreement with the hub is never bilateral",
            )
        )
    return tuple(data["countries"])


def _relay_terms(source: Source, countries: tuple[str, ...]) -> list[SourceProblem]:
    data = source.data
    problems = []
    stray = sorted(set(data.get("member_roots", {})) - set(countries))
    if data.get("member_roots") and data["kind"] != PeerKind.HUB:
        problems.append(source.problem(("member_roots",), "member_roots: only a hub has members"))
    elif stray:
        problems.append(
            source.problem(
                ("member_roots",),
                f"member_roots: {', '.join(stray)} is not among the hub's countries",
            )
        )
    agreement = data["agreement"]
    if agreement.get("keep_escrow") and not agreement.get("relay"):
        problems.append(
            source.problem(
                ("agreement", "keep_escrow"),
                "agreement/keep_escrow: only an agreement that relays keeps an escrow wrap",
            )
        )
    return problems


def _period(source: Source, problems: list[SourceProblem]) -> tuple[datetime, datetime] | None:
    times = []
    for name in ("valid_from", "valid_until"):
        text = source.data["agreement"][name]
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            value = None
        if value is None or value.tzinfo is None:
            problems.append(
                source.problem(
                    ("agreement", name),
                    f"agreement/{name}: not an ISO 8601 time with a zone: {text!r}",
                )
            )
            return None
        times.append(value)
    if times[1] <= times[0]:
        problems.append(
            source.problem(
                ("agreement", "valid_until"), "agreement/valid_until: must be after valid_from"
            )
        )
        return None
    return times[0], times[1]


def _check_crossings(source: Source, channels: Mapping[str, Channel]) -> list[SourceProblem]:
    agreement = source.data["agreement"]
    bilateral = agreement.get("bilateral", False) and source.data["kind"] == PeerKind.NATIONAL
    problems: list[SourceProblem] = []
    seen: dict[tuple[str, str], int] = {}
    for i, crossing in enumerate(agreement["crossings"]):
        where = ("agreement", "crossings", i)
        field = f"agreement/crossings/{i}"
        markings = crossing["markings"]
        if Marking.RED in markings:
            problems.append(
                source.problem(
                    (*where, "markings"), f"{field}/markings: TLP:RED never crosses a border"
                )
            )
        if Marking.AMBER_STRICT in markings and not bilateral:
            problems.append(
                source.problem(
                    (*where, "markings"),
                    f"{field}/markings: TLP:AMBER+STRICT crosses only under a bilateral "
                    "agreement (agreement/bilateral: true, with a national peer)",
                )
            )
        channel = channels.get(crossing["channel"])
        if channel is None:
            problems.append(
                source.problem(
                    (*where, "channel"),
                    f"{field}/channel: no channel {crossing['channel']!r} in this policy set",
                )
            )
        elif channel.marking.value not in markings:
            problems.append(
                source.problem(
                    (*where, "markings"),
                    f"{field}/markings: channel {channel.id!r} is TLP:{channel.marking}, which "
                    "this crossing does not list: it could never cross",
                )
            )
        for direction in _directions(crossing["direction"]):
            key = (crossing["channel"], direction)
            if key in seen:
                problems.append(
                    source.problem(
                        (*where, "direction"),
                        f"{field}/direction: {crossing['channel']!r} already crosses "
                        f"({direction}) in agreement/crossings/{seen[key]}",
                    )
                )
            seen[key] = i
    return problems


def _directions(direction: str) -> tuple[str, ...]:
    return ("send", "receive") if direction == Direction.BOTH else (direction,)


def check_peers(peers: Mapping[str, Peer]) -> list[SourceProblem]:
    """What refuses a set of peers together: a country served twice, a broker key shared."""
    problems: list[SourceProblem] = []
    countries: dict[str, str] = {}
    keys: dict[bytes, str] = {}
    logs: dict[str, str] = {}
    for peer in peers.values():
        if peer.log_origin is not None and peer.log_origin in logs:
            problems.append(
                SourceProblem(
                    peer.file, 1, f"log_origin: the same log as peer {logs[peer.log_origin]!r}"
                )
            )
        if peer.log_origin is not None:
            logs.setdefault(peer.log_origin, peer.id)
        if peer.kind is PeerKind.NATIONAL:
            country = peer.countries[0]
            if country in countries:
                problems.append(
                    SourceProblem(
                        peer.file,
                        1,
                        f"country: {country!r} is already served by peer {countries[country]!r}",
                    )
                )
            countries.setdefault(country, peer.id)
        if peer.broker_key in keys:
            problems.append(
                SourceProblem(
                    peer.file, 1, f"broker_key: the same key as peer {keys[peer.broker_key]!r}"
                )
            )
        keys.setdefault(peer.broker_key, peer.id)
    return problems
