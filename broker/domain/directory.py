"""The institutional directory: who holds which role where, and with which keys.

Addressing is institutional: notices go to roles in jurisdictions; people receive them only while
an assignment makes them the holder (or the acting deputy) of such a role. Everything here is
immutable data plus pure queries; time is always passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# A name by language: (tag, text) pairs in file order, tags among the eight of broker.titles;
# empty for a plain name. broker.titles reads them from files.
Translations = tuple[tuple[str, str], ...]


def pick(default: str, translations: Translations, language: str | None) -> str:
    """The text in ``language``, else the default: never another language's, never transliterated."""
    for code, text in translations:
        if code == language:
            return text
    return default


class KeyType(StrEnum):
    ED25519 = "ed25519"  # signing requests and assertions
    X25519 = "x25519"  # receiving wrapped data keys
    TLS_CLIENT_SHA256 = "tls-client-sha256"  # an agency's mTLS certificate: SHA-256 of its DER


class KeyStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # no new use; old signatures and wraps stay readable
    REVOKED = "revoked"  # never trusted again, for anything


class AssignmentKind(StrEnum):
    HOLDER = "holder"
    DEPUTY = "deputy"


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime | None = None  # open-ended

    def contains(self, when: datetime) -> bool:
        return self.start <= when and (self.end is None or when < self.end)


@dataclass(frozen=True, slots=True)
class PublicKey:
    id: str
    owner: str  # organisation or contact id
    type: KeyType
    public: bytes  # raw 32 bytes
    status: KeyStatus = KeyStatus.ACTIVE
    valid: Period | None = None

    def usable_at(self, when: datetime) -> bool:
        return self.status is KeyStatus.ACTIVE and (self.valid is None or self.valid.contains(when))


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    id: str
    name: str  # the default text; ``names`` by language (broker.titles)
    level: str
    parent: str | None = None
    names: Translations = ()

    def name_in(self, language: str | None) -> str:
        return pick(self.name, self.names, language)


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str
    name: str
    kind: str
    jurisdiction: str
    names: Translations = ()

    def name_in(self, language: str | None) -> str:
        return pick(self.name, self.names, language)


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    organisation: str
    kind: str
    title: str
    titles: Translations = ()

    def title_in(self, language: str | None) -> str:
        return pick(self.title, self.titles, language)


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    organisation: str
    email: str | None = None
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Assignment:
    role: str
    contact: str
    kind: AssignmentKind
    period: Period
    absences: tuple[Period, ...] = ()

    def active_at(self, when: datetime) -> bool:
        return self.period.contains(when)

    def present_at(self, when: datetime) -> bool:
        return self.active_at(when) and not any(a.contains(when) for a in self.absences)


@dataclass(frozen=True, slots=True)
class Webhook:
    """An endpoint that hears of new notices for a contact or an organisation."""

    id: str
    owner: str
    url: str
    secret_ref: str | None = (
        None  # file:/env: reference to a Standard Webhooks secret; None: Ed25519
    )
    content: str = "metadata"  # or "ciphertext" (contacts only, where the channel allows)


@dataclass(frozen=True, slots=True)
class Directory:
    """A consistent snapshot of the directory, with the indexes routing needs."""

    jurisdictions: dict[str, Jurisdiction] = field(default_factory=dict)
    organisations: dict[str, Organisation] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    assignments: tuple[Assignment, ...] = ()
    keys: dict[str, PublicKey] = field(default_factory=dict)
    _children: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _roles_in: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _assignments_of: dict[str, tuple[Assignment, ...]] = field(default_factory=dict, repr=False)
    _keys_of: dict[str, tuple[PublicKey, ...]] = field(default_factory=dict, repr=False)
    _assignments_by_contact: dict[str, tuple[Assignment, ...]] = field(
        default_factory=dict, repr=False
    )
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    _webhooks_of: dict[str, tuple[Webhook, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        jurisdictions: list[Jurisdiction],
        organisations: list[Organisation],
        roles: list[Role],
        contacts: list[Contact],
        assignments: list[Assignment],
        keys: list[PublicKey],
        webhooks: list[Webhook] | None = None,
    ) -> Directory:
        """Index the parts; the caller has checked references (see ``directory.schema``)."""
        children: dict[str, list[str]] = defaultdict(list)
        for j in jurisdictions:
            if j.parent is not None:
                children[j.parent].append(j.id)
        orgs = {o.id: o for o in organisations}
        roles_in: dict[str, list[str]] = defaultdict(list)
        for r in roles:
            roles_in[orgs[r.organisation].jurisdiction].append(r.id)
        assignments_of: dict[str, list[Assignment]] = defaultdict(list)
        by_contact: dict[str, list[Assignment]] = defaultdict(list)
        for a in assignments:
            assignments_of[a.role].append(a)
            by_contact[a.contact].append(a)
        keys_of: dict[str, list[PublicKey]] = defaultdict(list)
        for k in keys:
            keys_of[k.owner].append(k)
        return cls(
            jurisdictions={j.id: j for j in jurisdictions},
            organisations=orgs,
            roles={r.id: r for r in roles},
            contacts={c.id: c for c in contacts},
            assignments=tuple(assignments),
            keys={k.id: k for k in keys},
            _children={k: tuple(v) for k, v in children.items()},
            _roles_in={k: tuple(v) for k, v in roles_in.items()},
            _assignments_of={k: tuple(v) for k, v in assignments_of.items()},
            _keys_of={k: tuple(v) for k, v in keys_of.items()},
            _assignments_by_contact={k: tuple(v) for k, v in by_contact.items()},
            webhooks={w.id: w for w in webhooks or ()},
            _webhooks_of=_group(webhooks or []),
        )

    # -- the jurisdiction tree -------------------------------------------------------------
    def ancestors(self, jurisdiction_id: str) -> Iterator[Jurisdiction]:
        """Parents of a jurisdiction, nearest first (not including itself)."""
        parent = self.jurisdictions[jurisdiction_id].parent
        while parent is not None:
            node = self.jurisdictions[parent]
            yield node
            parent = node.parent

    def descendants(self, jurisdiction_id: str) -> Iterator[Jurisdiction]:
        """Every jurisdiction below this one, depth first (not including itself)."""
        for child in self._children.get(jurisdiction_id, ()):
            yield self.jurisdictions[child]
            yield from self.descendants(child)

    def children(self, jurisdiction_id: str) -> tuple[str, ...]:
        return self._children.get(jurisdiction_id, ())

    def country_of(self, jurisdiction_id: str) -> str:
        *_, root = (jurisdiction_id, *(j.id for j in self.ancestors(jurisdiction_id)))
        return root

    # -- roles, holders and keys -----------------------------------------------------------
    def roles_in(self, jurisdiction_id: str) -> tuple[Role, ...]:
        return tuple(self.roles[r] for r in self._roles_in.get(jurisdiction_id, ()))

    def jurisdiction_of_role(self, role_id: str) -> str:
        return self.organisations[self.roles[role_id].organisation].jurisdiction

    def assignments_of(self, role_id: str) -> tuple[Assignment, ...]:
        return self._assignments_of.get(role_id, ())

    def acting_for(self, role_id: str, when: datetime) -> tuple[tuple[Assignment, ...], bool]:
        """Who acts for a role at ``when``: the present holders, else the active deputies.

        Returns the assignments and whether they are deputies standing in.
        """
        assignments = self.assignments_of(role_id)
        holders = tuple(
            a for a in assignments if a.kind is AssignmentKind.HOLDER and a.present_at(when)
        )
        if holders:
            return holders, False
        deputies = tuple(
            a for a in assignments if a.kind is AssignmentKind.DEPUTY and a.present_at(when)
        )
        return deputies, True

    def webhooks_of(self, owner_id: str) -> tuple[Webhook, ...]:
        return self._webhooks_of.get(owner_id, ())

    def roles_held(self, contact_id: str, when: datetime) -> tuple[str, ...]:
        """Roles the contact holds or deputises for at ``when`` (absences do not end access)."""
        return tuple(
            sorted(
                {
                    a.role
                    for a in self._assignments_by_contact.get(contact_id, ())
                    if a.active_at(when)
                }
            )
        )

    def keys_of(self, owner_id: str) -> tuple[PublicKey, ...]:
        return self._keys_of.get(owner_id, ())

    def encryption_key(self, contact_id: str, when: datetime) -> PublicKey | None:
        """The contact's newest usable X25519 key at ``when``, if any."""
        usable = [
            k for k in self.keys_of(contact_id) if k.type is KeyType.X25519 and k.usable_at(when)
        ]
        if not usable:
            return None
        return max(
            usable,
            key=lambda k: (
                k.valid.start if k.valid else datetime.min.replace(tzinfo=when.tzinfo),
                k.id,
            ),
        )


def _group(webhooks: list[Webhook]) -> dict[str, tuple[Webhook, ...]]:
    grouped: dict[str, list[Webhook]] = defaultdict(list)
    for hook in webhooks:
        grouped[hook.owner].append(hook)
    return {owner: tuple(hooks) for owner, hooks in grouped.items()}
