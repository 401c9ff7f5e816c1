"""Authorization decisions through Cedar, over a directory snapshot and a policy set.

The entity graph of the directory is parsed once per (directory, policy set) pair; each decision
is made over the directory entities it can reach (its principal and resource, the entities
policies name, their attributes and ancestors: a few per municipality, parsed once and kept)
plus the notice (or contact) it is about.

Decisions about a notice by an organisation or a role (publish, receive, read_status) are
cached for the life of the authorizer, that is, of one directory revision and policy set: a new
revision makes a new authorizer and so a fresh cache. The key is everything a policy can see —
the principal (whose entity is in the fixed directory set), the action and the notice entity's
attributes. The notice's id is part of the key only when some policy names a notice by id
(``policies_name_notices``): a fresh notice's random id cannot be named by any policy, so
otherwise every notice with the same attributes gets the same decision, and intake asks Cedar
once per distinct kind of notice instead of once per notice.

Every decision carries the ids of the policies that determined it: for an allow, the permits
that matched; for a deny, any forbid that matched (an empty list means nothing permitted it: the
default deny). Contacts are described as of the time passed in: the roles they hold then, so an
ended assignment ends access at once.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import cedarpy
import orjson

from broker.domain.directory import Directory
from broker.domain.notice import NoticeFacts
from broker.policy.cedar import NS, directory_entities, ref, uid
from broker.policy.load import PolicySet

CACHE_LIMIT = 20_000  # cached decisions per authorizer; the cache starts over beyond it
PART_LIMIT = 1_024  # cached entity subsets per authorizer (and at most four directories' worth
# of entities, or 20,000, in them all): the cache starts over beyond it


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()


class Authorizer:
    """Decides publish / receive / read_status / read_notice / read_audit / audit_jurisdiction."""

    whole_share = 0.5  # an entity subset larger than this share of the directory: the whole one

    def __init__(self, policies: PolicySet, directory: Directory) -> None:
        self.policies = policies
        self.directory = directory
        base = directory_entities(directory, policies.channels)
        self._entities = cedarpy.Entities.from_json_str(json.dumps(base))
        self._static = {_uid_of(e["uid"]): e for e in base}
        self._edges = {k: tuple(_references(e)) for k, e in self._static.items()}
        self._named = tuple(k for k in named_entities(policies) if k in self._static)
        self._parts: dict[frozenset[str], cedarpy.Entities] = {}
        self._parted = 0  # entities held in the cached subsets (the whole set not counted)
        self._parted_limit = max(20_000, 4 * len(base))
        self._ids_matter = policies_name_notices(policies)
        self._literals = _named_literals(policies)  # (names a contact, names a notice)
        self._cache: dict[tuple[str, str, bytes], Decision] = {}
        self._counts = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        # Live push's decisions, by (contact attributes, notice facts but its id, roles): kept
        # only while no policy names a contact or a notice (``_Plan.cacheable``).
        self._reads: dict[tuple[str, Any], Decision] = {}
        self.read_hits = 0
        self.read_misses = 0

    def _with(
        self, extra: list[dict[str, Any]], requests: Sequence[dict[str, Any]]
    ) -> cedarpy.Entities:
        """The entity set ``requests`` are decided over: ``extra`` (the notices and contacts
        they are about) and the directory entities Cedar can reach from them.

        Cedar reads an entity only when evaluation reaches it: a request's principal or
        resource, an entity a policy names, an attribute's value or an ancestor of one of
        those. So the directory entities reachable from those roots through attributes and
        parents decide exactly as the whole directory does, and copying a few of them costs
        far less than copying thousands (``with_added_json_str`` clones its base: 1.4 ms at
        2,000 entities, 8 ms at 5,000, on every decision). The subset is parsed once per set
        of roots and cached with the authorizer; a subset of more than half the directory
        uses the whole one."""
        roots = set(self._named)
        for request in requests:
            roots.add(request["principal"])
            roots.add(request["resource"])
        for entity in extra:
            roots.update(_references(entity))
        key = frozenset(r for r in roots if r in self._static)
        part = self._parts.get(key)
        if part is None:
            part = self._part(key)
            size = len(part) if part is not self._entities else 0
            if len(self._parts) >= PART_LIMIT or self._parted + size > self._parted_limit:
                self._parts.clear()
                self._parted = 0
            self._parts[key] = part
            self._parted += size
        return part.with_added_json_str(_json(extra)) if extra else part

    def _part(self, roots: frozenset[str]) -> cedarpy.Entities:
        reached, queue = set(roots), list(roots)
        while queue:
            for to in self._edges[queue.pop()]:
                if to not in reached and to in self._static:
                    reached.add(to)
                    queue.append(to)
        if len(reached) > self.whole_share * len(self._static):
            return self._entities
        return cedarpy.Entities.from_json_str(json.dumps([self._static[k] for k in reached]))

    def _decide(self, requests: list[dict[str, Any]], entities: cedarpy.Entities) -> list[Decision]:
        if not requests:
            return []
        results = cedarpy.is_authorized_batch(requests, self.policies.cedar, entities)
        return [_decision(r) for r in results]

    # -- entities made per decision --------------------------------------------------------
    def notice_entity(
        self, notice: NoticeFacts, recipient_roles: Sequence[str] = ()
    ) -> dict[str, Any]:
        d = self.directory
        reply_roles = [notice.reply_to_role] if notice.reply_to_role else []
        return {
            "uid": {"type": f"{NS}::Notice", "id": notice.id},
            "attrs": {
                "channel": ref("Channel", notice.channel),
                "jurisdiction": ref("Jurisdiction", notice.jurisdiction),
                "country": ref("Jurisdiction", d.country_of(notice.jurisdiction)),
                "severity": notice.severity,
                "sender": ref("Organisation", notice.sender),
                "addressees": [ref("Organisation", o) for o in notice.addressees],
                "reply_to_roles": [ref("Role", r) for r in reply_roles],
                "recipient_roles": [ref("Role", r) for r in recipient_roles if r in d.roles],
            },
            "parents": [],
        }

    def contact_entity(self, contact_id: str, now: datetime) -> dict[str, Any] | None:
        contact = self.directory.contacts.get(contact_id)
        if contact is None:
            return None
        held = self.directory.roles_held(contact_id, now)
        return {
            "uid": {"type": f"{NS}::Contact", "id": contact_id},
            "attrs": {
                "organisation": ref("Organisation", contact.organisation),
                "role_kinds": sorted({self.directory.roles[r].kind for r in held}),
                "roles": [ref("Role", r) for r in held],
            },
            "parents": [],
        }

    # -- decisions about a notice, cached ---------------------------------------------------
    def about_notice(self, notice: NoticeFacts, asks: Sequence[tuple[str, str]]) -> list[Decision]:
        """Decisions on ``notice`` for each (principal uid, action), in order: cached ones from
        the cache, the others in one Cedar batch over one entity set."""
        entity = self.notice_entity(notice)
        key = attributes_key(entity["attrs"])
        if self._ids_matter:
            key += b"\0" + notice.id.encode("utf-8", "surrogatepass")
        found = [self._cache.get((principal, action, key)) for principal, action in asks]
        missing = [k for k, decision in enumerate(found) if decision is None]
        with self._counts:
            self.cache_hits += len(asks) - len(missing)
            self.cache_misses += len(missing)
        if missing:
            resource = uid("Notice", notice.id)
            requests = [_request(asks[k][0], asks[k][1], resource) for k in missing]
            if len(self._cache) + len(missing) > CACHE_LIMIT:
                self._cache.clear()
            for k, decision in zip(
                missing, self._decide(requests, self._with([entity], requests)), strict=True
            ):
                found[k] = self._cache[(asks[k][0], asks[k][1], key)] = decision
        return [d for d in found if d is not None]

    def prepare(self, notice: NoticeFacts, role_ids: Sequence[str]) -> None:
        """Decide publish for the sender and receive for every candidate role in one batch, so
        that the ``publish`` and ``receive`` calls of an intake find their answers cached."""
        self.about_notice(notice, [*_publish_asks(notice), *_receive_asks(role_ids)])

    def publish(self, notice: NoticeFacts) -> Decision:
        return self.about_notice(notice, _publish_asks(notice))[0]

    def receive(self, notice: NoticeFacts, role_ids: Sequence[str]) -> list[Decision]:
        """One decision per candidate role, in order."""
        return self.about_notice(notice, _receive_asks(role_ids))

    def read_status(self, organisation: str, notice: NoticeFacts) -> Decision:
        return self.about_notice(notice, [(uid("Organisation", organisation), "read_status")])[0]

    def read_notices(
        self, contact_id: str, notices: Sequence[tuple[NoticeFacts, Sequence[str]]], now: datetime
    ) -> list[Decision]:
        """May the contact read each notice, given the roles it was delivered to them through?"""
        contact = self.contact_entity(contact_id, now)
        if contact is None:
            return [Decision(False, ()) for _ in notices]
        requests = [
            _request(uid("Contact", contact_id), "read_notice", uid("Notice", n.id))
            for n, _ in notices
        ]
        extra = [contact, *(self.notice_entity(n, roles) for n, roles in notices)]
        return self._decide(requests, self._with(extra, requests))

    def read_notices_for(
        self, pairs: Sequence[tuple[str, NoticeFacts, Sequence[str]]], now: datetime
    ) -> list[Decision]:
        """``read_notices`` for many contacts at once (live push), each answer exactly the
        one-contact one. Cedar sees a contact only through its attributes and a notice only
        through its attributes (the roles it reached the contact through among them), unless a
        policy names an entity: so contacts with equal attributes share one principal, each
        (notice, roles) one entity, and each distinct pair of them one decision. A policy that
        names a contact keeps every contact its own principal; one that names a notice gets
        the notice's own id, one batch per set of roles (``_Plan``). Where neither is named,
        each answer is kept by what it was decided on (``_Plan.cache_key``), so a broadcast
        like an earlier one asks Cedar nothing (2,000 decisions: about 85 ms)."""
        plan = _Plan(*self._literals)
        for contact in dict.fromkeys(c for c, _, _ in pairs):
            plan.add_contact(contact, self.contact_entity(contact, now))
        keys = [plan.add_pair(c, n, tuple(roles)) for c, n, roles in pairs]
        decided: dict[tuple[str, int], Decision] = {}
        cached = plan.cacheable  # no policy names a contact or a notice
        if cached:  # a broadcast like an earlier one (channel, place, roles): its answers
            for request in plan.requests:
                hit = self._reads.get(plan.cache_key(request))
                if hit is not None:
                    decided[request] = hit
            with self._counts:
                self.read_hits += len(decided)
                self.read_misses += len(plan.requests) - len(decided)
        for variants in plan.batches():
            requests = [(p, v) for p, v in plan.requests if v in variants and (p, v) not in decided]
            if not requests:
                continue
            entities = [*plan.principals.values(), *(plan.entity(self, v) for v in variants)]
            asked = [
                _request(uid("Contact", p), "read_notice", plan.resource(v)) for p, v in requests
            ]
            found = self._decide(asked, self._with(entities, asked))
            decided.update(zip(requests, found, strict=True))
            if cached:
                if len(self._reads) + len(requests) > CACHE_LIMIT:
                    self._reads.clear()
                for request, decision in zip(requests, found, strict=True):
                    self._reads[plan.cache_key(request)] = decision
        return [decided[k] if k is not None else Decision(False, ()) for k in keys]

    def read_audit(self, contact_id: str, now: datetime) -> Decision:
        contact = self.contact_entity(contact_id, now)
        if contact is None:
            return Decision(False, ())
        audit_log = {"uid": {"type": f"{NS}::AuditLog", "id": "log"}, "attrs": {}, "parents": []}
        request = _request(uid("Contact", contact_id), "read_audit", uid("AuditLog", "log"))
        return self._decide([request], self._with([contact, audit_log], [request]))[0]

    def audit_scope(self, contact_id: str, now: datetime) -> AuditScope:
        """The jurisdictions whose events this contact may see in the audit log (Cedar
        ``audit_jurisdiction``, one decision per jurisdiction of the directory, in one batch)."""
        contact = self.contact_entity(contact_id, now)
        if contact is None:
            return AuditScope(frozenset(), ())
        ids = sorted(self.directory.jurisdictions)
        requests = [
            _request(uid("Contact", contact_id), "audit_jurisdiction", uid("Jurisdiction", j))
            for j in ids
        ]
        decisions = self._decide(requests, self._with([contact], requests))
        allowed = [(j, d) for j, d in zip(ids, decisions, strict=True) if d.allowed]
        return AuditScope(
            frozenset(j for j, _ in allowed),
            tuple(sorted({p for _, d in allowed for p in d.policy_ids})),
        )


@dataclass(frozen=True, slots=True)
class AuditScope:
    """What an auditor sees: events about these jurisdictions, by these policies."""

    jurisdictions: frozenset[str]
    policy_ids: tuple[str, ...]


def attributes_key(attrs: dict[str, Any]) -> bytes:
    """A notice entity's attributes as the decision cache's key: equal keys for equal attributes
    and only then. orjson with sorted keys (a tenth of ``json.dumps``'s cost, three times per
    intake); a string orjson refuses (a lone surrogate) falls back to ``json.dumps``, under
    another first byte, so the two encodings never meet."""
    try:
        return b"o" + orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return b"j" + json.dumps(attrs, sort_keys=True, separators=(",", ":")).encode()


def _json(entities: list[dict[str, Any]]) -> str:
    """Entities as JSON for Cedar: orjson (a sixth of ``json.dumps``'s cost on a broadcast's
    thousand principals and notice entities), ``json.dumps`` for a string orjson refuses (a
    lone surrogate)."""
    try:
        return orjson.dumps(entities).decode()
    except TypeError:
        return json.dumps(entities)


def _uid_of(ref: dict[str, Any]) -> str:
    """``{"type": "Liaison::Role", "id": "x"}`` as ``uid`` writes it: ``Liaison::Role::"x"``."""
    return f"{ref['type']}::{json.dumps(ref['id'])}"


def _references(entity: dict[str, Any]) -> Iterator[str]:
    """The entities an entity points at: its parents and every entity among its attributes."""
    for parent in entity.get("parents", ()):
        yield _uid_of(parent)
    yield from _entity_values(entity.get("attrs", {}))


def _entity_values(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "__entity" in node:
            yield _uid_of(node["__entity"])
            return
        for value in node.values():
            yield from _entity_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _entity_values(value)


def named_entities(policies: PolicySet) -> set[str]:
    """Every entity a policy names (``Liaison::Role::"x"``), from Cedar's own JSON form of the
    policies, so that comments and strings can neither hide nor fake one."""
    if not policies.statements:
        return set()
    text = "\n\n".join(s.text for s in policies.statements)
    found = _entity_literals(json.loads(cedarpy.policies_to_json_str(text)))
    return {_uid_of(e) for e in found if isinstance(e.get("id"), str)}


def _publish_asks(notice: NoticeFacts) -> list[tuple[str, str]]:
    return [(uid("Organisation", notice.sender), "publish")]


def _receive_asks(role_ids: Sequence[str]) -> list[tuple[str, str]]:
    return [(uid("Role", r), "receive") for r in role_ids]


def policies_name_notices(policies: PolicySet) -> bool:
    """Does any policy name a notice entity by its id (``Notice::"…"``)? Read from Cedar's own
    JSON form of the policies, so comments and strings cannot hide or fake one."""
    if not policies.statements:
        return False
    text = "\n\n".join(s.text for s in policies.statements)
    return any(
        str(e.get("type", "")).rsplit("::", 1)[-1] == "Notice"
        for e in _entity_literals(json.loads(cedarpy.policies_to_json_str(text)))
    )


def _entity_literals(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "type" in node and "id" in node:
            yield node
        for value in node.values():
            yield from _entity_literals(value)
    elif isinstance(node, list):
        for value in node:
            yield from _entity_literals(value)


def _request(principal: str, action: str, resource: str) -> dict[str, Any]:
    return {
        "principal": principal,
        "action": f'{NS}::Action::"{action}"',
        "resource": resource,
        "context": {},
    }


def _decision(result: cedarpy.AuthzResult) -> Decision:
    diagnostics = result.diagnostics
    names = diagnostics.id_annotations_by_reason
    ids = tuple(sorted(names.get(r, r) for r in diagnostics.reasons))
    # An evaluation error inside a policy is treated as "that policy did not apply" by Cedar;
    # the error is kept so that the audit log and `policy explain` can show it.
    return Decision(result.allowed, ids, tuple(diagnostics.errors))


_LITERAL = r"\b{}(?:\s|//[^\n]*)*::"  # `Contact::"x"`, spaced or commented: a named entity


def _named_literals(policies: PolicySet) -> tuple[bool, bool]:
    """Does any policy name a contact, a notice? (Conservative: a comment that looks like a
    name counts.) Types alone (``is Liaison::Contact``) are never followed by ``::``. Read
    once per authorizer from its own statements (never memoised by a hash another policy set
    could share: the push decision cache trusts this answer)."""
    text = "\n".join(s.text for s in policies.statements)
    contact, notice = (re.search(_LITERAL.format(k), text) for k in ("Contact", "Notice"))
    return contact is not None, notice is not None


class _Plan:
    """The principals, notice entities and requests of a ``read_notices_for`` call."""

    def __init__(self, contacts_named: bool, notices_named: bool) -> None:
        self.contacts_named, self.notices_named = contacts_named, notices_named
        self.principals: dict[str, dict[str, Any]] = {}  # representative id -> entity
        self._by_attrs: dict[str, str] = {}  # attributes -> representative
        self._principal_of: dict[str, str] = {}  # contact -> representative
        self._variants: dict[tuple[NoticeFacts, tuple[str, ...]], int] = {}
        self._facts: list[tuple[NoticeFacts, tuple[str, ...]]] = []
        self._ordinal: list[int] = []  # per variant: how many variants of its notice came before
        self._per_notice: dict[str, int] = {}
        self.requests: dict[tuple[str, int], None] = {}  # (representative, variant), in order
        self._attrs_of: dict[str, str] = {}  # representative -> its attributes, as JSON

    @property
    def cacheable(self) -> bool:
        """Whether a decision here is one of attributes only, the same for any call: Cedar sees
        a principal and a resource through their attributes unless a policy names one, and
        the static entities and the policies are the authorizer's own."""
        return not self.contacts_named and not self.notices_named

    def cache_key(self, request: tuple[str, int]) -> tuple[str, Any]:
        """What decides ``request`` (``cacheable`` only): the principal's attributes and the
        notice's facts but its id (``notice_entity`` reads nothing else of it), with the roles."""
        principal, variant = request
        notice, roles = self._facts[variant]
        return self._attrs_of[principal], (replace(notice, id=""), roles)

    def add_contact(self, contact: str, entity: dict[str, Any] | None) -> None:
        if entity is None:  # unknown contact: denied without asking
            return
        key = contact if self.contacts_named else json.dumps(entity["attrs"], sort_keys=True)
        representative = self._by_attrs.setdefault(key, contact)
        if representative == contact:
            self.principals[contact] = entity
            self._attrs_of[contact] = key
        self._principal_of[contact] = representative

    def add_pair(
        self, contact: str, notice: NoticeFacts, roles: tuple[str, ...]
    ) -> tuple[str, int] | None:
        principal = self._principal_of.get(contact)
        if principal is None:
            return None
        variant = self._variants.get((notice, roles))
        if variant is None:
            variant = self._variants[(notice, roles)] = len(self._facts)
            self._facts.append((notice, roles))
            self._ordinal.append(self._per_notice.get(notice.id, 0))
            self._per_notice[notice.id] = self._ordinal[-1] + 1
        self.requests[(principal, variant)] = None
        return principal, variant

    def _id(self, variant: int) -> str:
        notice, ordinal = self._facts[variant][0], self._ordinal[variant]
        return notice.id if self.notices_named else f"{notice.id}#{ordinal}"

    def resource(self, variant: int) -> str:
        return uid("Notice", self._id(variant))

    def entity(self, authorizer: Authorizer, variant: int) -> dict[str, Any]:
        notice, roles = self._facts[variant]
        entity = authorizer.notice_entity(notice, roles)
        entity["uid"] = {"type": f"{NS}::Notice", "id": self._id(variant)}
        return entity

    def batches(self) -> list[set[int]]:
        """The variants decided together: all in one batch, or (a policy names a notice, so
        each variant keeps the notice's id) one batch per ordinal, since an entity set holds
        one entity of an id."""
        out: list[set[int]] = []
        for variant in range(len(self._facts)):
            k = self._ordinal[variant] if self.notices_named else 0
            while len(out) <= k:
                out.append(set())
            out[k].add(variant)
        return out
