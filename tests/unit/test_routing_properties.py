"""Properties of routing, checked against an oracle that reads the raw directory document.

- a notice never reaches a role outside its channel rule's jurisdiction scope, nor its country;
- every recipient holds a role kind its rule names, at a level its rule allows;
- a policy set without Cedar permits reaches no one, whatever the channel rules say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.directory.load import load_directory_file
from broker.domain.directory import Directory
from broker.domain.notice import SEVERITIES, NoticeFacts
from broker.policy.decide import Authorizer
from broker.policy.load import PolicySet, load_policies
from broker.policy.route import route
from tests.conftest import NOW, POLICIES

DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo" / "directory.yaml"
RAW: dict[str, Any] = yaml.safe_load(DEMO.read_text())
PARENT = {j["id"]: j.get("parent") for j in RAW["jurisdictions"]}
LEVEL = {j["id"]: j["level"] for j in RAW["jurisdictions"]}
ORG_JURISDICTION = {o["id"]: o["jurisdiction"] for o in RAW["organisations"]}
ROLE = {r["id"]: r for r in RAW["roles"]}


def chain(jid: str) -> list[str]:
    out = [jid]
    while PARENT[out[-1]] is not None:
        out.append(PARENT[out[-1]])  # type: ignore[arg-type]
    return out


def role_jurisdiction(role_id: str) -> str:
    return ORG_JURISDICTION[ROLE[role_id]["organisation"]]


def in_scope(scope: str, role_j: str, notice_j: str) -> bool:
    if scope == "same":
        return role_j == notice_j
    if scope == "within":
        return notice_j in chain(role_j)
    if scope == "above":
        return role_j in chain(notice_j)[1:]
    raise AssertionError(scope)


@pytest.fixture(scope="module")
def setup(demo_template: Path) -> tuple[PolicySet, Directory, Authorizer]:
    policies = load_policies(POLICIES)
    directory = load_directory_file(demo_template / "directory.yaml", max_bytes=10_000_000)[0]
    return policies, directory, Authorizer(policies, directory)


JURISDICTIONAL = ["returnee-repatriation", "threat-assessment", "hate-incident"]
notices = st.builds(
    NoticeFacts,
    channel=st.sampled_from(JURISDICTIONAL),
    jurisdiction=st.sampled_from(sorted(PARENT)),
    severity=st.sampled_from(SEVERITIES),
    sender=st.sampled_from(sorted(ORG_JURISDICTION)),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(notice=notices)
def test_no_recipient_outside_the_rule_scope(
    setup: tuple[PolicySet, Directory, Authorizer], notice: NoticeFacts
) -> None:
    policies, _, authorizer = setup
    rules = {r.rule: r for r in policies.channels[notice.channel].recipients}
    for recipient in route(notice, authorizer, NOW).recipients:
        rule = rules[recipient.rule]
        role_j = role_jurisdiction(recipient.role)
        assert recipient.jurisdiction == role_j
        assert in_scope(rule.scope.value, role_j, notice.jurisdiction), (recipient, notice)
        assert chain(role_j)[-1] == chain(notice.jurisdiction)[-1], "crossed a border"
        assert ROLE[recipient.role]["kind"] in rule.roles
        assert not rule.levels or LEVEL[role_j] in rule.levels


addressed = st.builds(
    NoticeFacts,
    channel=st.just("information-request"),
    jurisdiction=st.sampled_from(sorted(PARENT)),
    severity=st.sampled_from(SEVERITIES),
    sender=st.sampled_from(sorted(ORG_JURISDICTION)),
    addressees=st.lists(st.sampled_from(sorted(ORG_JURISDICTION)), max_size=3, unique=True).map(
        tuple
    ),
    reply_to_role=st.one_of(st.none(), st.sampled_from(sorted(ROLE))),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(notice=addressed)
def test_requests_reach_only_addressees_or_the_requester_in_the_same_country(
    setup: tuple[PolicySet, Directory, Authorizer], notice: NoticeFacts
) -> None:
    _, _, authorizer = setup
    for recipient in route(notice, authorizer, NOW).recipients:
        assert (
            ROLE[recipient.role]["organisation"] in notice.addressees
            and ROLE[recipient.role]["kind"] == "liaison-officer"
        ) or recipient.role == notice.reply_to_role
        assert chain(role_jurisdiction(recipient.role))[-1] == chain(notice.jurisdiction)[-1]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(notice=st.one_of(notices, addressed))
def test_without_cedar_permits_nobody_receives(
    setup: tuple[PolicySet, Directory, Authorizer], notice: NoticeFacts
) -> None:
    policies, directory, _ = setup
    for kept in ([], [s for s in policies.statements if not s.text.startswith('@id("channel/')]):
        bare = PolicySet.from_parts(policies.channels, kept, "sha256:test")
        result = route(notice, Authorizer(bare, directory), NOW)
        assert result.recipients == ()
        assert all(n.reason == "denied_by_policy" for n in result.not_reached)
        assert not Authorizer(bare, directory).publish(notice).allowed
