"""Routing on the demo directory, table-driven for every shipped channel."""

from __future__ import annotations

import dataclasses

import pytest

from broker.domain.directory import Directory, KeyStatus
from broker.domain.notice import NoticeFacts
from broker.errors import UnknownChannel, UnknownJurisdiction
from broker.policy.decide import Authorizer
from broker.policy.load import PolicySet
from broker.policy.route import route
from tests.conftest import NOW


@pytest.fixture(scope="module")
def authorizer(policies: PolicySet, directory: Directory) -> Authorizer:
    return Authorizer(policies, directory)


def munis(*ids: str, roles: tuple[str, ...]) -> set[str]:
    return {f"{m}.{r}" for m in ids for r in roles}


LEADERSHIP = ("mayor", "community-safety-council")
FBIH = [
    "ba-fbih-ks-sarajevo",
    "ba-fbih-ks-ilidza",
    "ba-fbih-ks-vogosca",
    "ba-fbih-tk-tuzla",
    "ba-fbih-tk-gracanica",
    "ba-fbih-zdk-zenica",
    "ba-fbih-zdk-maglaj",
    "ba-fbih-usk-bihac",
    "ba-fbih-usk-velika-kladusa",
]

CASES = [
    # (name, channel, jurisdiction, severity, sender, extra, expected roles, may publish, deciding policy)
    (
        "returnee to Kumanovo",
        "returnee-repatriation",
        "mk-kumanovo",
        "high",
        "mk-mvr",
        {},
        {"mk-kumanovo.pcve-focal-point", "mk-kumanovo.social-welfare-centre"},
        True,
        "channel/returnee-repatriation/publish",
    ),
    (
        "returnee by the security service",
        "returnee-repatriation",
        "mk-kumanovo",
        "high",
        "mk-anb",
        {},
        {"mk-kumanovo.pcve-focal-point", "mk-kumanovo.social-welfare-centre"},
        True,
        "channel/returnee-repatriation/publish",
    ),
    (
        "police may not post returnee notices",
        "returnee-repatriation",
        "mk-kumanovo",
        "high",
        "mk-bjb",
        {},
        {"mk-kumanovo.pcve-focal-point", "mk-kumanovo.social-welfare-centre"},
        False,
        None,
    ),
    (
        "another country's ministry may not",
        "returnee-repatriation",
        "ba-fbih-ks-sarajevo",
        "high",
        "mk-mvr",
        {},
        {"ba-fbih-ks-sarajevo.pcve-focal-point", "ba-fbih-ks-sarajevo.social-welfare-centre"},
        False,
        "guard/publish-within-own-jurisdiction",
    ),
    (
        "returnee notices go to municipalities only",
        "returnee-repatriation",
        "ba-fbih-ks",
        "high",
        "ba-osa",
        {},
        set(),
        False,
        None,
    ),
    (
        "returnee severity below medium",
        "returnee-repatriation",
        "mk-kumanovo",
        "low",
        "mk-mvr",
        {},
        {"mk-kumanovo.pcve-focal-point", "mk-kumanovo.social-welfare-centre"},
        False,
        None,
    ),
    (
        "canton threat assessment",
        "threat-assessment",
        "ba-fbih-ks",
        "medium",
        "ba-fbih-ks-mup",
        {},
        munis("ba-fbih-ks-sarajevo", "ba-fbih-ks-ilidza", "ba-fbih-ks-vogosca", roles=LEADERSHIP),
        True,
        "channel/threat-assessment/publish",
    ),
    (
        "entity threat assessment",
        "threat-assessment",
        "ba-fbih",
        "high",
        "ba-fbih-fup",
        {},
        munis(*FBIH, roles=LEADERSHIP),
        True,
        "channel/threat-assessment/publish",
    ),
    (
        "canton police cannot address another entity",
        "threat-assessment",
        "ba-rs-banja-luka",
        "high",
        "ba-fbih-ks-mup",
        {},
        munis("ba-rs-banja-luka", roles=LEADERSHIP),
        False,
        "guard/publish-within-own-jurisdiction",
    ),
    (
        "municipal threat assessment",
        "threat-assessment",
        "me-danilovgrad",
        "medium",
        "me-uzp",
        {},
        munis("me-danilovgrad", roles=LEADERSHIP),
        True,
        "channel/threat-assessment/publish",
    ),
    (
        "hate incident",
        "hate-incident",
        "me-danilovgrad",
        "medium",
        "me-uzp",
        {},
        {"me-danilovgrad.pcve-focal-point"},
        True,
        "channel/hate-incident/publish",
    ),
    (
        "information request to an agency",
        "information-request",
        "al-shkoder",
        "low",
        "al-shkoder.municipality",
        {"addressees": ("al-mb",)},
        {"al-mb.liaison-officer"},
        True,
        "channel/information-request/publish",
    ),
    (
        "request across a border reaches no one",
        "information-request",
        "al-shkoder",
        "low",
        "al-shkoder.municipality",
        {"addressees": ("mk-mvr",)},
        set(),
        True,
        "channel/information-request/publish",
    ),
    (
        "answer goes to the requesting role only",
        "information-request",
        "al-shkoder",
        "low",
        "al-mb",
        {"reply_to_role": "al-shkoder.pcve-focal-point"},
        {"al-shkoder.pcve-focal-point"},
        True,
        "channel/information-request/publish",
    ),
]


@pytest.mark.parametrize(
    (
        "name",
        "channel",
        "jurisdiction",
        "severity",
        "sender",
        "extra",
        "expected",
        "may_publish",
        "publish_policy",
    ),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_shipped_channel_routing(
    authorizer: Authorizer,
    name: str,
    channel: str,
    jurisdiction: str,
    severity: str,
    sender: str,
    extra: dict[str, object],
    expected: set[str],
    may_publish: bool,
    publish_policy: str | None,
) -> None:
    notice = NoticeFacts(channel, jurisdiction, severity, sender, **extra)  # type: ignore[arg-type]
    result = route(notice, authorizer, NOW)
    assert {r.role for r in result.recipients} == expected
    assert not [n for n in result.not_reached if n.reason in ("vacant", "no_encryption_key")]
    decision = authorizer.publish(notice)
    assert decision.allowed is may_publish
    assert decision.policy_ids == ((publish_policy,) if publish_policy else ())
    for r in result.recipients:
        assert r.policy_ids == (f"channel/{channel}/receive/{r.rule}",)


def test_notice_for_kumanovo_never_reaches_sarajevo(authorizer: Authorizer) -> None:
    result = route(
        NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr"), authorizer, NOW
    )
    assert result.recipients and all(r.jurisdiction == "mk-kumanovo" for r in result.recipients)
    assert not any("sarajevo" in r.role or "sarajevo" in r.contact for r in result.recipients)
    assert result.contacts == ("mk-kumanovo-pcve", "mk-kumanovo-swc")


def test_cross_border_request_is_denied_by_the_guard(authorizer: Authorizer) -> None:
    notice = NoticeFacts(
        "information-request",
        "al-shkoder",
        "low",
        "al-shkoder.municipality",
        addressees=("mk-mvr",),
    )
    [denied] = route(notice, authorizer, NOW).not_reached
    assert denied.role == "mk-mvr.liaison-officer" and denied.reason == "denied_by_policy"
    assert denied.policy_ids == ("guard/receive-within-country",)


def test_unknown_channel_and_jurisdiction_are_refused(authorizer: Authorizer) -> None:
    with pytest.raises(UnknownChannel):
        route(NoticeFacts("gossip", "mk-kumanovo", "high", "mk-mvr"), authorizer, NOW)
    with pytest.raises(UnknownJurisdiction):
        route(NoticeFacts("hate-incident", "atlantis", "high", "mk-bjb"), authorizer, NOW)


def _with(directory: Directory, **changes: object) -> Directory:
    d = dataclasses.replace(directory, **changes)  # type: ignore[arg-type]
    return Directory.build(
        list(d.jurisdictions.values()),
        list(d.organisations.values()),
        list(d.roles.values()),
        list(d.contacts.values()),
        list(d.assignments),
        list(d.keys.values()),
    )


def test_deputy_receives_while_the_holder_is_away(
    policies: PolicySet, directory: Directory
) -> None:
    from broker.domain.directory import Period

    assignments = tuple(
        dataclasses.replace(a, absences=(Period(NOW.replace(day=1), NOW.replace(day=28)),))
        if a.contact == "mk-kumanovo-pcve"
        else a
        for a in directory.assignments
    )
    result = route(
        NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr"),
        Authorizer(policies, _with(directory, assignments=assignments)),
        NOW,
    )
    pcve = [r for r in result.recipients if r.role == "mk-kumanovo.pcve-focal-point"]
    assert [(r.contact, r.deputy) for r in pcve] == [("mk-kumanovo-pcve-deputy", True)]


def test_a_vacant_role_is_reported_not_dropped(policies: PolicySet, directory: Directory) -> None:
    assignments = tuple(
        a for a in directory.assignments if a.role != "mk-kumanovo.social-welfare-centre"
    )
    result = route(
        NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr"),
        Authorizer(policies, _with(directory, assignments=assignments)),
        NOW,
    )
    assert [r.role for r in result.recipients] == ["mk-kumanovo.pcve-focal-point"]
    [vacant] = result.not_reached
    assert (vacant.role, vacant.reason, vacant.rule) == (
        "mk-kumanovo.social-welfare-centre",
        "vacant",
        "municipal-social-welfare",
    )


def test_a_holder_with_a_revoked_key_is_reported(policies: PolicySet, directory: Directory) -> None:
    keys = {
        k: (dataclasses.replace(v, status=KeyStatus.REVOKED) if v.owner == "mk-kumanovo-swc" else v)
        for k, v in directory.keys.items()
    }
    result = route(
        NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr"),
        Authorizer(policies, _with(directory, keys=keys)),
        NOW,
    )
    assert [r.contact for r in result.recipients] == ["mk-kumanovo-pcve"]
    [missing] = result.not_reached
    assert (missing.role, missing.reason) == (
        "mk-kumanovo.social-welfare-centre",
        "no_encryption_key",
    )


def test_an_ended_assignment_no_longer_receives(policies: PolicySet, directory: Directory) -> None:
    from broker.domain.directory import Period

    assignments = tuple(
        dataclasses.replace(a, period=Period(a.period.start, NOW.replace(day=1)))
        if a.contact == "mk-kumanovo-swc"
        else a
        for a in directory.assignments
    )
    result = route(
        NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr"),
        Authorizer(policies, _with(directory, assignments=assignments)),
        NOW,
    )
    assert "mk-kumanovo-swc" not in result.contacts
    assert any(n.reason == "vacant" for n in result.not_reached)


def test_access_policies(authorizer: Authorizer) -> None:
    notice = NoticeFacts("hate-incident", "me-danilovgrad", "medium", "me-uzp", id="n-1")
    assert authorizer.read_status("me-uzp", notice).allowed
    assert not authorizer.read_status("me-anb", notice).allowed
    assert authorizer.read_audit("ba-ombudsman-auditor", NOW).policy_ids == (
        "access/auditors-read-audit-log",
    )
    assert not authorizer.read_audit("mk-kumanovo-pcve", NOW).allowed
    assert not authorizer.read_audit("nobody", NOW).allowed
    assert not authorizer.read_audit(
        "ba-ombudsman-auditor", NOW.replace(year=2025)
    ).allowed  # not yet assigned
    facts = NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr", id="n-2")
    own, other = authorizer.read_notices(
        "mk-kumanovo-pcve",
        [
            (facts, ["mk-kumanovo.pcve-focal-point"]),
            (dataclasses.replace(facts, id="n-3"), ["mk-kumanovo.social-welfare-centre"]),
        ],
        NOW,
    )
    assert own.policy_ids == ("access/recipients-read-their-notices",)
    assert not other.allowed
    [before] = authorizer.read_notices(
        "mk-kumanovo-pcve", [(facts, ["mk-kumanovo.pcve-focal-point"])], NOW.replace(year=2025)
    )
    assert not before.allowed


def test_read_decisions_for_many_contacts_equal_the_one_contact_decisions(
    authorizer: Authorizer,
) -> None:
    """Live push decides for every connected recipient in one batch; the answers must be
    exactly those of asking for each contact alone."""
    kumanovo = NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-mvr", id="n1")
    sarajevo = NoticeFacts("threat-assessment", "ba-fbih-ks", "medium", "ba-fbih-ks-mup", id="n2")
    pairs = [
        ("mk-kumanovo-pcve", kumanovo, ["mk-kumanovo.pcve-focal-point"]),
        ("mk-kumanovo-swc", kumanovo, ["mk-kumanovo.pcve-focal-point"]),  # not its role
        ("ba-fbih-ks-sarajevo-pcve", kumanovo, ["mk-kumanovo.pcve-focal-point"]),
        ("ba-fbih-ks-sarajevo-mayor", sarajevo, ["ba-fbih-ks-sarajevo.mayor"]),
        ("mk-kumanovo-pcve", sarajevo, ["ba-fbih-ks-sarajevo.mayor"]),
        ("nobody-at-all", kumanovo, ["mk-kumanovo.pcve-focal-point"]),
    ]
    together = authorizer.read_notices_for(pairs, NOW)
    alone = [authorizer.read_notices(c, [(n, roles)], NOW)[0] for c, n, roles in pairs]
    assert [d.allowed for d in together] == [d.allowed for d in alone]
    assert [d.allowed for d in together] == [True, False, False, True, False, False]
    assert [d.policy_ids for d in together] == [d.policy_ids for d in alone]
