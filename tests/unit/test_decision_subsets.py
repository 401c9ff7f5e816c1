"""Cedar decides over the directory entities a request can reach (its principal, its resource,
the entities policies name, their attributes and ancestors) instead of a copy of the whole
directory: every decision, with its policy ids and errors, must be the one Cedar gives over the
whole directory, whatever the policies read, however deep, and whichever entities they name."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import cedarpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.domain.directory import Directory
from broker.domain.notice import NoticeFacts
from broker.policy.cedar import Statement, directory_entities, uid
from broker.policy.decide import Authorizer, Decision, named_entities
from broker.policy.load import PolicySet
from tests.conftest import NOW
from tests.unit.test_decision_cache import notices as cache_notices


class Whole(Authorizer):
    """The reference: every decision over a copy of the whole directory."""

    def _part(self, roots: frozenset[str]) -> cedarpy.Entities:
        return self._entities


class Parts(Authorizer):
    """Always a subset, however large (the shipped one takes the whole directory beyond half)."""

    whole_share = 1.0


# Conditions reading the request's entities, attribute chains and named entities, for every
# kind of principal and resource; on the wrong kind they fail, and the error must match too.
CONDITIONS = [
    "principal.organisation.jurisdiction in {J}",
    "{R}.jurisdiction == principal.jurisdiction",
    "resource.sender.jurisdiction in principal.jurisdiction",
    "resource.country == {J}",
    "{O}.jurisdiction in resource.jurisdiction",
    "principal.organisation == {O}",
    "resource.jurisdiction in {R}.organisation.jurisdiction",
    "principal.roles.contains({R})",
    "{R}.organisation == principal.organisation",
    "resource.recipient_roles.containsAny(principal.roles)",
    "principal.jurisdiction in {J}",
    "resource in principal.organisation.jurisdiction",
    "resource in {R}.jurisdiction",
    '{J}.level == "municipality" && resource.jurisdiction in {J}',
    "resource.addressees.contains({O}) || principal in {J}",
    "[{R}].contains(principal) && {O}.jurisdiction in {J}",
]


def statement(n: int, effect: str, condition: str) -> Statement:
    return Statement(
        f'@id("test/{n}")\n{effect} (principal, action, resource)\nwhen {{ {condition} }};',
        1,
        f"test/{n}",
    )


def with_statements(policies: PolicySet, extra: list[Statement]) -> PolicySet:
    return PolicySet.from_parts(
        policies.channels,
        [*policies.statements, *extra],
        policies.hash + "+" + json.dumps([s.text for s in extra]),
    )


def notices(directory: Directory, policies: PolicySet) -> st.SearchStrategy[NoticeFacts]:
    """test_decision_cache's notices, some addressed (a subset root the cache's never has)."""
    addressees = st.lists(st.sampled_from(sorted(directory.organisations)), max_size=2)
    return st.tuples(cache_notices(directory, policies), addressees).map(
        lambda pair: replace(pair[0], addressees=tuple(pair[1]))
    )


def test_subsets_decide_as_the_whole_directory(directory: Directory, policies: PolicySet) -> None:
    jurisdictions = sorted(directory.jurisdictions)
    organisations = sorted(directory.organisations)
    roles = sorted(directory.roles)
    contacts = [*sorted(directory.contacts), "nobody-at-all"]
    named = st.fixed_dictionaries(
        {
            "J": st.sampled_from(jurisdictions).map(lambda j: uid("Jurisdiction", j)),
            "O": st.sampled_from(organisations).map(lambda o: uid("Organisation", o)),
            "R": st.sampled_from(roles).map(lambda r: uid("Role", r)),
        }
    )
    extra = st.lists(
        st.tuples(st.sampled_from(["permit", "forbid"]), st.sampled_from(CONDITIONS), named),
        max_size=3,
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        extra=extra,
        notice=notices(directory, policies),
        picked=st.lists(st.sampled_from(roles), max_size=6),
        contact=st.sampled_from(contacts),
        days=st.integers(-400, 400),
    )
    def check(
        extra: list[tuple[str, str, dict[str, str]]],
        notice: NoticeFacts,
        picked: list[str],
        contact: str,
        days: int,
    ) -> None:
        statements = [statement(n, e, c.format(**names)) for n, (e, c, names) in enumerate(extra)]
        chosen = with_statements(policies, statements)
        parts, whole = Parts(chosen, directory), Whole(chosen, directory)
        now = NOW + timedelta(days=days)
        asks = [(uid("Organisation", notice.sender), "publish")]
        asks += [(uid("Role", r), "receive") for r in picked]
        asks += [(uid("Organisation", notice.sender), "read_status")]
        calls = [
            lambda a: a.about_notice(notice, asks),
            lambda a: a.read_notices(contact, [(notice, picked)], now),
            lambda a: a.read_notices_for(
                [(c, notice, picked) for c in contacts[:: max(1, len(contacts) // 7)]], now
            ),
            lambda a: [a.read_audit(contact, now)],
            lambda a: [a.audit_scope(contact, now)],
        ]
        for call in calls:
            assert call(parts) == call(whole)

    check()


def test_subsets_are_small_and_kept(directory: Directory, policies: PolicySet) -> None:
    """The point of it: a receive decision in one municipality reads a handful of entities,
    not the directory, and the second notice there reuses the first one's subset."""
    authorizer = Authorizer(policies, directory)
    everything = len(directory_entities(directory, policies.channels))
    notice = NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr", id="n1")
    roles = [r for r in sorted(directory.roles) if r.startswith("mk-kumanovo.")]
    decisions = authorizer.receive(notice, roles)
    assert any(d.allowed for d in decisions)
    (key,) = authorizer._parts
    part = authorizer._parts[key]
    assert len(part) < everything / 2
    assert uid("Role", roles[0]) in key
    authorizer.receive(
        NoticeFacts("threat-assessment", "mk-kumanovo", "high", "mk-mvr", id="n2"), roles
    )
    assert authorizer._parts[key] is part and len(authorizer._parts) == 1


def test_named_entities_come_from_cedar_not_from_comments(policies: PolicySet) -> None:
    fake = Statement(
        '@id("test/x")\n// Liaison::Role::"in-a-comment"\n'
        'permit (principal == Liaison::Role::"named", action, resource)\n'
        'when { resource.sender == Liaison::Organisation::"also" && "Liaison::Role::\\"s\\"" != "" };',
        1,
        "test/x",
    )
    found = named_entities(with_statements(policies, [fake]))
    assert {uid("Role", "named"), uid("Organisation", "also")} <= found
    assert uid("Role", "in-a-comment") not in found and uid("Role", "s") not in found


def test_a_subset_reaches_what_a_named_entity_points_at(
    directory: Directory, policies: PolicySet
) -> None:
    """A policy reading a named role's jurisdiction's parent: the subset must hold them all,
    or the condition would fail as an error on a missing entity and the permit not apply."""
    role = "mk-kumanovo.mayor"
    jurisdiction = directory.jurisdiction_of_role(role)
    parent = directory.jurisdictions[jurisdiction].parent
    assert parent
    rule = statement(
        0,
        "permit",
        f'action == Liaison::Action::"read_notice" && '
        f"{uid('Role', role)}.jurisdiction in {uid('Jurisdiction', parent)} && "
        f'resource.severity == "critical"',
    )
    chosen = with_statements(policies, [rule])
    notice = NoticeFacts("threat-assessment", "al-tirane", "critical", "mk-mvr", id="n9")
    outsider = next(c for c in sorted(directory.contacts) if c.startswith("al-"))
    got = Parts(chosen, directory).read_notices(outsider, [(notice, [])], NOW)
    assert got == [Decision(True, ("test/0",))]
    assert got == Whole(chosen, directory).read_notices(outsider, [(notice, [])], NOW)


def test_the_subsets_kept_are_bounded_in_entities(
    directory: Directory, policies: PolicySet
) -> None:
    authorizer = Authorizer(policies, directory)
    notice = NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr", id="n1")
    authorizer.receive(notice, [r for r in sorted(directory.roles) if r.startswith("mk-kumanovo.")])
    (first,) = authorizer._parts.values()
    authorizer._parted_limit = len(first)  # full: the next subset starts the cache over
    other = NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr", id="n2")
    authorizer.receive(other, [r for r in sorted(directory.roles) if r.startswith("mk-skopje")])
    assert first not in authorizer._parts.values() and len(authorizer._parts) == 1
    assert authorizer._parted == len(next(iter(authorizer._parts.values())))
