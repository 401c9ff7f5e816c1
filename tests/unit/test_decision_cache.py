"""Cedar decisions about a notice are cached per authorizer (one directory revision and policy
set) by everything a policy can see: a cached answer is always the answer Cedar gives, and a
policy that names a notice by id keeps its notice apart."""

from __future__ import annotations

import json
from dataclasses import replace

import cedarpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.domain.directory import Directory
from broker.domain.notice import NoticeFacts
from broker.policy.cedar import split_statements, uid
from broker.policy.decide import Authorizer, Decision, _decision, _request, policies_name_notices
from broker.policy.load import PolicySet


def uncached(
    authorizer: Authorizer, notice: NoticeFacts, asks: list[tuple[str, str]]
) -> list[Decision]:
    """Cedar itself, over a fresh entity set, with nothing cached."""
    entities = authorizer._entities.with_added_json_str(
        json.dumps([authorizer.notice_entity(notice)])
    )
    requests = [_request(p, a, uid("Notice", notice.id)) for p, a in asks]
    results = cedarpy.is_authorized_batch(requests, authorizer.policies.cedar, entities)
    return [_decision(r) for r in results]


def with_extra(policies: PolicySet, text: str) -> PolicySet:
    statements, rest = split_statements(text)
    assert rest is None or not rest.strip()
    return PolicySet.from_parts(
        policies.channels, [*policies.statements, *statements], policies.hash + "+extra"
    )


def notices(directory: Directory, policies: PolicySet) -> st.SearchStrategy[NoticeFacts]:
    return st.builds(
        NoticeFacts,
        channel=st.sampled_from(sorted(policies.channels)),
        jurisdiction=st.sampled_from(sorted(directory.jurisdictions)),
        severity=st.sampled_from(["low", "medium", "high", "critical"]),
        sender=st.sampled_from(sorted(directory.organisations)),
        id=st.text("0123456789abcdef", min_size=32, max_size=32),
    )


def test_cached_decisions_are_cedars_decisions(directory: Directory, policies: PolicySet) -> None:
    authorizer = Authorizer(policies, directory)
    roles = sorted(directory.roles)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        notice=notices(directory, policies), picked=st.lists(st.sampled_from(roles), max_size=12)
    )
    def check(notice: NoticeFacts, picked: list[str]) -> None:
        asks = [(uid("Organisation", notice.sender), "publish")]
        asks += [(uid("Role", r), "receive") for r in picked]
        # Twice: the first may fill the cache, the second must come from it, and both agree.
        assert authorizer.about_notice(notice, asks) == uncached(authorizer, notice, asks)
        assert authorizer.about_notice(notice, asks) == uncached(authorizer, notice, asks)

    check()
    assert authorizer.cache_hits > 0


def test_a_second_notice_of_the_same_kind_asks_cedar_nothing(
    directory: Directory, policies: PolicySet
) -> None:
    authorizer = Authorizer(policies, directory)
    first = NoticeFacts("threat-assessment", "mk-kumanovo", "high", "mk-bjb", id="a" * 32)
    roles = sorted(r for r in directory.roles if r.startswith("mk-kumanovo."))
    authorizer.prepare(first, roles)
    misses = authorizer.cache_misses
    assert misses == len(roles) + 1  # publish and every receive, asked once
    second = replace(first, id="b" * 32)
    assert authorizer.publish(second).allowed
    authorizer.receive(second, roles)
    assert authorizer.cache_misses == misses
    assert authorizer.cache_hits == len(roles) + 1


def test_a_policy_naming_a_notice_keeps_that_notice_apart(
    directory: Directory, policies: PolicySet
) -> None:
    target = "f" * 32
    named = with_extra(
        policies,
        '@id("ops/hold-one-notice")\n'
        'forbid (principal, action == Liaison::Action::"receive", '
        f'resource == Liaison::Notice::"{target}");',
    )
    assert policies_name_notices(named)
    authorizer = Authorizer(named, directory)
    role = "mk-kumanovo.pcve-focal-point"
    assert role in directory.roles
    other = NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr", id="e" * 32)
    held = replace(other, id=target)
    assert authorizer.receive(other, [role])[0].allowed
    refused = authorizer.receive(held, [role])[0]
    assert not refused.allowed and refused.policy_ids == ("ops/hold-one-notice",)
    assert authorizer.receive(other, [role])[0].allowed


def test_only_a_real_notice_literal_counts(policies: PolicySet) -> None:
    assert not policies_name_notices(policies)  # the shipped set names no notice
    in_text = with_extra(
        policies,
        '@id("ops/comment")\n// resource == Liaison::Notice::"x"\n'
        'forbid (principal, action == Liaison::Action::"receive", resource) '
        'when { "Liaison::Notice::\\"x\\"" == "y" };',
    )
    assert not policies_name_notices(in_text)
