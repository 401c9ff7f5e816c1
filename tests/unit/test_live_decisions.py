"""Live push decides for thousands of connected contacts in one batch, sharing principals among
contacts of equal attributes and notice entities among equal (notice, roles): every answer must
equal the one-contact ``read_notices`` decision, whatever the policies say, including policies
that name a contact or a notice (which turn the sharing off)."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest

from broker.domain.directory import Directory, Period
from broker.domain.notice import NoticeFacts
from broker.policy.cedar import Statement
from broker.policy.decide import Authorizer
from broker.policy.load import PolicySet
from tests.conftest import NOW

CHANNELS = ("returnee-repatriation", "threat-assessment")
SEVERITIES = ("low", "medium", "high", "critical")

FORBID_MAYORS_LOW = Statement(
    '@id("test/forbid-mayors-low")\n'
    'forbid (principal is Liaison::Contact, action == Liaison::Action::"read_notice", '
    "resource is Liaison::Notice)\n"
    'when { principal.role_kinds.contains("mayor") && resource.severity == "low" };',
    1,
    "test/forbid-mayors-low",
)


def _named(contact: str, notice: str) -> Statement:
    return Statement(
        '@id("test/forbid-named")\n'
        'forbid (principal, action == Liaison::Action::"read_notice", resource)\n'
        f'when {{ principal == Liaison::Contact  ::  "{contact}" || '
        f'resource == Liaison::Notice::"{notice}" }};',
        1,
        "test/forbid-named",
    )


def _with(policies: PolicySet, *extra: Statement) -> PolicySet:
    return PolicySet.from_parts(
        policies.channels, [*policies.statements, *extra], f"{policies.hash}+{len(extra)}"
    )


def _ended_some(directory: Directory) -> Directory:
    """Every third assignment ended a day before NOW: contacts whose roles ended."""
    assignments = [
        dataclasses.replace(a, period=Period(a.period.start, NOW - timedelta(days=1)))
        if k % 3 == 0
        else a
        for k, a in enumerate(directory.assignments)
    ]
    return Directory.build(
        list(directory.jurisdictions.values()),
        list(directory.organisations.values()),
        list(directory.roles.values()),
        list(directory.contacts.values()),
        assignments,
        list(directory.keys.values()),
    )


def _triples(directory: Directory, count: int) -> list[tuple[str, NoticeFacts, list[str]]]:
    rng = random.Random(16)
    contacts = [*sorted(directory.contacts), "nobody-at-all"]
    roles = sorted(directory.roles)
    jurisdictions = sorted(directory.jurisdictions)
    organisations = sorted(directory.organisations)
    notices = [
        NoticeFacts(
            rng.choice(CHANNELS),
            rng.choice(jurisdictions),
            rng.choice(SEVERITIES),
            rng.choice(organisations),
            id=f"n{k}",
        )
        for k in range(12)
    ]
    out = []
    for _ in range(count):
        contact = rng.choice(contacts)
        held = list(directory.roles_held(contact, NOW)) if contact in directory.contacts else []
        some = rng.sample(roles, rng.randint(0, 2))
        # mostly roles the contact holds (so many are allowed), sometimes others or none
        picked = held[: rng.randint(1, 2)] if held and rng.random() < 0.6 else some
        out.append((contact, rng.choice(notices), picked))
    return out


def _assert_equal(authorizer: Authorizer, triples: list[tuple[str, NoticeFacts, list[str]]]):
    together = authorizer.read_notices_for(triples, NOW)
    alone = [authorizer.read_notices(c, [(n, roles)], NOW)[0] for c, n, roles in triples]
    assert together == alone
    # Again, and for notices like these but new (fresh ids, as each broadcast has): answered
    # from the cache where no policy names a contact or a notice, and the same answers.
    hits = authorizer.read_hits
    assert authorizer.read_notices_for(triples, NOW) == alone
    fresh = [(c, dataclasses.replace(n, id=f"{n.id}-again"), r) for c, n, r in triples]
    assert authorizer.read_notices_for(fresh, NOW) == [
        authorizer.read_notices(c, [(n, roles)], NOW)[0] for c, n, roles in fresh
    ]
    assert (authorizer.read_hits > hits) == (authorizer.read_misses > 0)
    return together


@pytest.mark.parametrize("ended", [False, True], ids=["current", "roles-ended"])
@pytest.mark.parametrize("extra", ["shipped", "forbid", "named"])
def test_batched_live_decisions_equal_the_one_contact_decisions(
    directory: Directory, policies: PolicySet, ended: bool, extra: str
) -> None:
    snapshot = _ended_some(directory) if ended else directory
    triples = _triples(snapshot, 600)
    deputy = "mk-kumanovo-pcve-deputy"  # a deputy of the focal-point role
    focal = NoticeFacts("returnee-repatriation", "mk-kumanovo", "low", "mk-mvr", id="n0")
    triples += [
        (deputy, focal, ["mk-kumanovo.pcve-focal-point"]),
        ("mk-kumanovo-pcve", focal, ["mk-kumanovo.pcve-focal-point"]),
    ]
    statements = {
        "shipped": (),
        "forbid": (FORBID_MAYORS_LOW,),
        "named": (FORBID_MAYORS_LOW, _named("mk-kumanovo-pcve", "n3")),
    }[extra]
    authorizer = Authorizer(_with(policies, *statements), snapshot)
    decisions = _assert_equal(authorizer, triples)
    assert (authorizer.read_hits > 0) == (extra != "named")  # a named entity: never cached
    allowed = sum(d.allowed for d in decisions)
    assert 0 < allowed < len(decisions)  # both answers occur: the comparison means something
    if not ended:
        assert decisions[-2].allowed  # the deputy reads what reached the role it deputises
    if extra == "named":
        assert not decisions[-1].allowed  # the named contact is refused, the others are not
        assert not any(
            d.allowed for (_, n, _), d in zip(triples, decisions, strict=True) if n.id == "n3"
        )


def test_a_forbid_refuses_the_live_push_as_it_refuses_the_inbox(
    directory: Directory, policies: PolicySet
) -> None:
    authorizer = Authorizer(_with(policies, FORBID_MAYORS_LOW), directory)
    mayor = next(
        c
        for c in sorted(directory.contacts)
        if any(directory.roles[r].kind == "mayor" for r in directory.roles_held(c, NOW))
    )
    [role] = [r for r in directory.roles_held(mayor, NOW) if directory.roles[r].kind == "mayor"]
    low = NoticeFacts("threat-assessment", directory.jurisdiction_of_role(role), "low", "mk-bjb")
    [live] = authorizer.read_notices_for([(mayor, low, [role])], NOW)
    assert not live.allowed and live.policy_ids == ("test/forbid-mayors-low",)
    [high] = authorizer.read_notices_for(
        [(mayor, dataclasses.replace(low, severity="high"), [role])], NOW
    )
    assert high.allowed


def test_push_decides_a_notice_with_every_role_it_reached_the_contact_through(
    directory: Directory, policies: PolicySet
) -> None:
    """A contact who got one notice through two roles: the inbox decides it with both
    (``Recipients.visible``), so live push must too, or a forbid on one of the roles lets push
    show the notice the inbox then refuses."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from broker.service.live import Publisher
    from broker.store.deliveries_repo import InboxItem

    mayor = next(
        c
        for c in sorted(directory.contacts)
        if any(directory.roles[r].kind == "mayor" for r in directory.roles_held(c, NOW))
    )
    [held] = [r for r in directory.roles_held(mayor, NOW) if directory.roles[r].kind == "mayor"]
    other = next(r for r in sorted(directory.roles) if r != held)
    forbid = Statement(
        '@id("test/forbid-other-role")\n'
        'forbid (principal, action == Liaison::Action::"read_notice", resource)\n'
        f'when {{ resource.recipient_roles.contains(Liaison::Role::"{other}") }};',
        1,
        "test/forbid-other-role",
    )
    authorizer = Authorizer(_with(policies, forbid), directory)
    at = datetime(2026, 12, 7, tzinfo=UTC)
    jurisdiction = directory.jurisdiction_of_role(held)
    items = [
        InboxItem(k, mayor, "n-two-roles", role, "pending", None, None, "threat-assessment",
                  jurisdiction, "high", "AMBER", "notice", "active", None, "mk-bjb", at)
        for k, role in ((1, held), (2, other))
    ]  # fmt: skip
    pushed: list[object] = []
    hub = SimpleNamespace(
        streams_of=lambda contact: 1, publish=lambda events: pushed.extend(events)
    )
    state = SimpleNamespace(
        view=SimpleNamespace(authorizer=authorizer), clock=SimpleNamespace(now=lambda: NOW)
    )
    Publisher(state, hub).publish(items)  # type: ignore[arg-type]
    inbox = authorizer.read_notices(mayor, [(items[0].facts(), [held, other])], NOW)
    assert not inbox[0].allowed and pushed == []
    Publisher(state, hub).publish(items[:1])  # type: ignore[arg-type]  # one role only: allowed
    assert [e.id for e in pushed] == [1]  # type: ignore[attr-defined]
