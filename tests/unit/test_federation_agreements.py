"""Peer files and the crossing decision (issue 20, item 1): strict at load, fail closed at use."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import PolicyFileError
from broker.federation.agreements import Direction, Peer
from broker.federation.crossing import CrossingRequest, decide_crossing
from broker.policy.channel import Marking
from broker.policy.load import load_policies

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "federation" / "peer-agreement.yaml"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def policy_set(tmp_path: Path, **files: dict[str, object] | str) -> Path:
    """A copy of the shipped policies with ``peers/<name>.yaml`` for each keyword."""
    target = Path(tempfile.mkdtemp(dir=tmp_path)) / "policies"
    shutil.copytree(ROOT / "policies", target)
    (target / "peers").mkdir()
    for name, content in files.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        (target / "peers" / f"{name}.yaml").write_text(text)
    return target


def example() -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load(EXAMPLE.read_text())
    agreement = data["agreement"]
    assert isinstance(agreement, dict)
    for name in ("valid_from", "valid_until"):  # yaml.safe_load made datetimes of them
        agreement[name] = agreement[name].isoformat().replace("+00:00", "Z")
    return data


def problems(tmp_path: Path, data: dict[str, object] | str, name: str = "mk") -> list[str]:
    with pytest.raises(PolicyFileError) as refused:
        load_policies(policy_set(tmp_path, **{name: data}))
    return [str(p) for p in refused.value.problems]


def peers(tmp_path: Path) -> dict[str, Peer]:
    text = EXAMPLE.read_text()
    return load_policies(policy_set(tmp_path, mk=text)).peers


def send(channel: str = "returnee-repatriation", **overrides: object) -> CrossingRequest:
    marking = {"returnee-repatriation": Marking.AMBER_STRICT}.get(channel, Marking.AMBER)
    fields: dict[str, object] = {
        "direction": Direction.SEND,
        "channel": channel,
        "marking": marking,
        "organisation_kind": "security-service",
        "lineage": ("mk-kumanovo",),
        "country": None,
    }
    fields.update(overrides)
    return CrossingRequest(**fields)  # type: ignore[arg-type]


# -- load time -------------------------------------------------------------------------------


def test_the_deploy_example_agreement_is_a_valid_peer_file(tmp_path: Path) -> None:
    policies = load_policies(policy_set(tmp_path, mk=EXAMPLE.read_text()))
    peer = policies.peers["mk"]
    assert peer.countries == ("mk",) and len(peer.broker_key) == 32
    assert peer.agreement.bilateral and len(peer.agreement.crossings) == 3
    assert "peers/mk.yaml" in policies.files  # in the set's hash, like every policy file


def test_a_peer_file_changes_the_policy_hash(tmp_path: Path) -> None:
    bare = load_policies(ROOT / "policies").hash
    assert load_policies(policy_set(tmp_path, mk=EXAMPLE.read_text())).hash != bare


def test_red_is_refused_at_load_naming_the_field(tmp_path: Path) -> None:
    data = example()
    data["agreement"]["crossings"][0]["markings"] = ["AMBER+STRICT", "RED"]  # type: ignore[index]
    found = problems(tmp_path, data)
    assert any(
        "agreement/crossings/0/markings: TLP:RED never crosses a border" in p for p in found
    ), found


def test_amber_strict_needs_a_bilateral_agreement(tmp_path: Path) -> None:
    data = example()
    data["agreement"]["bilateral"] = False  # type: ignore[index]
    found = problems(tmp_path, data)
    assert any(
        "crossings/0/markings: TLP:AMBER+STRICT crosses only under a bilateral" in p for p in found
    )


def test_an_agreement_with_the_hub_is_never_bilateral(tmp_path: Path) -> None:
    data = example()
    data.update(id="hub", kind="hub", countries=["mk", "ba", "rs"])
    del data["country"]
    found = problems(tmp_path, data, name="hub")
    assert any(
        "agreement/bilateral: an agreement with the hub is never bilateral" in p for p in found
    )


def test_schema_errors_name_file_line_and_field(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("direction: send", "direction: sideways", 1)
    found = problems(tmp_path, text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "sideways" in t)
    assert found == [
        f"policies/peers/mk.yaml:{line}: agreement/crossings/0/direction: 'sideways' is not one of "
        "['send', 'receive', 'both']"
    ]


def test_an_unknown_key_is_refused_at_its_line(tmp_path: Path) -> None:
    text = EXAMPLE.read_text() + "forward_everything: true\n"
    (found,) = problems(tmp_path, text)
    assert "unknown key" in found and "forward_everything" in found


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"broker_key": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh"},
            "broker_key: not an Ed25519 public key",
        ),
        ({"directory_root": "sha256:abc"}, "directory_root: 'sha256:abc' does not match"),
        ({"id": "xk"}, "id: peer id 'xk' must match its file name 'mk'"),
        ({"country": None}, "country: None is not of type 'string'"),
    ],
)
def test_bad_fields_are_refused_by_name(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    data = {**example(), **change}
    found = problems(tmp_path, data)
    assert any(expected in p for p in found), found


def test_a_crossing_must_name_a_channel_of_the_set_and_its_marking(tmp_path: Path) -> None:
    data = example()
    crossings = data["agreement"]["crossings"]  # type: ignore[index]
    crossings[0]["channel"] = "gossip"
    crossings[2]["markings"] = ["GREEN"]
    found = problems(tmp_path, data)
    assert any("crossings/0/channel: no channel 'gossip' in this policy set" in p for p in found)
    assert any(
        "crossings/2/markings: channel 'information-request' is TLP:AMBER" in p for p in found
    )


def test_a_channel_crosses_once_per_direction(tmp_path: Path) -> None:
    data = example()
    crossings = data["agreement"]["crossings"]  # type: ignore[index]
    crossings[1]["direction"] = "both"
    found = problems(tmp_path, data)
    assert any("already crosses (send) in agreement/crossings/0" in p for p in found), found


def test_the_period_must_parse_and_end_after_it_starts(tmp_path: Path) -> None:
    data = example()
    data["agreement"]["valid_until"] = "2026-01-01T00:00:00Z"  # type: ignore[index]
    assert any(
        "agreement/valid_until: must be after valid_from" in p for p in problems(tmp_path, data)
    )
    data["agreement"]["valid_until"] = "in the next year"  # type: ignore[index]
    assert any("not an ISO 8601 time with a zone" in p for p in problems(tmp_path, data))


def test_two_peers_cannot_serve_one_country_or_share_a_key(tmp_path: Path) -> None:
    twin = {**example(), "id": "mk2"}
    with pytest.raises(PolicyFileError) as refused:
        load_policies(policy_set(tmp_path, mk=example(), mk2=twin))
    found = [str(p) for p in refused.value.problems]
    assert any("country: 'mk' is already served by peer 'mk'" in p for p in found)
    assert any("broker_key: the same key as peer 'mk'" in p for p in found)


# -- the decision ----------------------------------------------------------------------------


def test_the_agreed_crossing_is_allowed_with_its_agreement_line(tmp_path: Path) -> None:
    decision = decide_crossing(send(), peers(tmp_path), NOW)
    assert decision.allowed and decision.code == "allowed"
    assert (decision.peer, decision.agreement, decision.crossing) == (
        "mk",
        "xk-mk-2026-returnees",
        1,
    )


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        (send("hate-incident"), "no_agreement", "no agreement with mk for hate-incident (to send)"),
        (send(marking=Marking.RED), "red_never_crosses", "TLP:RED never crosses a border"),
        (send(lineage=("rs-nis",)), "no_peer", "no peer agreement covers rs-nis"),
        (send(lineage=("mk-skopje",), country="mk"), "jurisdiction_not_agreed", "not mk-skopje"),
        (send(organisation_kind="police"), "organisation_kind_not_agreed", "not police"),
        (send(organisation_kind=None), "sender_unknown", "not known"),
        (
            send("information-request", organisation_kind="municipality", marking=Marking.GREEN),
            "marking_not_agreed",
            "does not let TLP:GREEN cross",
        ),
    ],
)
def test_refusals_say_why(
    tmp_path: Path, request_: CrossingRequest, code: str, reason: str
) -> None:
    decision = decide_crossing(request_, peers(tmp_path), NOW)
    assert not decision.allowed and decision.code == code
    assert reason in decision.reason, decision.reason


def test_an_agreement_out_of_force_refuses(tmp_path: Path) -> None:
    decision = decide_crossing(send(), peers(tmp_path), datetime(2029, 1, 1, tzinfo=UTC))
    assert decision.code == "agreement_not_in_force"
    assert "until 2028-02-01T00:00:00Z, not at 2029-01-01T00:00:00Z" in decision.reason


def test_receiving_checks_this_brokers_jurisdictions_at_or_below(tmp_path: Path) -> None:
    known = peers(tmp_path)
    inbound = send(
        direction=Direction.RECEIVE, peer="mk", lineage=("xk-prizren", "xk-prizren-district", "xk")
    )
    assert decide_crossing(inbound, known, NOW).allowed
    elsewhere = send(direction=Direction.RECEIVE, peer="mk", lineage=("al-tirane", "al"))
    assert decide_crossing(elsewhere, known, NOW).code == "jurisdiction_not_agreed"
    unknown = send(direction=Direction.RECEIVE, peer="rs", lineage=("xk",))
    assert decide_crossing(unknown, known, NOW).code == "no_peer"


def test_with_no_peers_nothing_crosses() -> None:
    assert decide_crossing(send(), {}, NOW).code == "no_peer"


# -- properties: whatever is asked, the decision is fail-closed --------------------------------

WORDS = st.sampled_from(
    [
        "returnee-repatriation",
        "information-request",
        "hate-incident",
        "mk-kumanovo",
        "xk",
        "mk-lipkovo",
        "security-service",
        "municipality",
        "police",
        "mk",
    ]
)
REQUESTS = st.builds(
    CrossingRequest,
    direction=st.sampled_from(list(Direction)[:2]),
    channel=WORDS,
    marking=st.sampled_from(list(Marking)),
    organisation_kind=st.one_of(st.none(), WORDS),
    lineage=st.lists(WORDS, min_size=1, max_size=4).map(tuple),
    country=st.one_of(st.none(), WORDS),
    peer=st.one_of(st.none(), st.just("mk"), WORDS),
)
TIMES = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@pytest.fixture(scope="module")
def example_peers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Peer]:
    return peers(tmp_path_factory.mktemp("peers"))


@given(request_=REQUESTS, now=TIMES)
def test_an_allowed_crossing_meets_every_term_of_one_agreement_line(
    example_peers: dict[str, Peer], request_: CrossingRequest, now: datetime
) -> None:
    decision = decide_crossing(request_, example_peers, now)
    if not decision.allowed:
        assert decision.reason and decision.code != "allowed"
        return
    peer = example_peers[decision.peer or ""]
    line = peer.agreement.crossings[(decision.crossing or 0) - 1]
    assert request_.marking is not Marking.RED
    assert peer.agreement.valid_from <= now < peer.agreement.valid_until
    assert line.channel == request_.channel and line.direction.covers(request_.direction)
    assert request_.organisation_kind in line.organisation_kinds
    assert set(request_.lineage) & set(line.jurisdictions)
    assert request_.marking in line.markings
    assert request_.marking is not Marking.AMBER_STRICT or peer.agreement.bilateral


@given(request_=REQUESTS, now=TIMES)
def test_red_never_crosses_and_no_peers_means_no_crossing(
    example_peers: dict[str, Peer], request_: CrossingRequest, now: datetime
) -> None:
    assert not decide_crossing(request_, {}, now).allowed
    assert not decide_crossing(replace(request_, marking=Marking.RED), example_peers, now).allowed


def test_the_hub_relays_to_a_country_without_a_national_peer_but_never_amber_strict(
    tmp_path: Path,
) -> None:
    hub = example()
    hub.update(
        id="hub",
        kind="hub",
        countries=["mk", "rs"],
        broker_key="AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
    )
    del hub["country"]
    hub["agreement"] = {  # type: ignore[assignment]
        "id": "region-2026",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2030-01-01T00:00:00Z",
        "crossings": [
            {
                "channel": "information-request",
                "direction": "send",
                "organisation_kinds": ["municipality"],
                "jurisdictions": ["rs", "mk"],
                "markings": ["AMBER"],
            }
        ],
    }
    known = load_policies(policy_set(tmp_path, mk=example(), hub=hub)).peers
    asked = send("information-request", organisation_kind="municipality")
    to_serbia = replace(asked, lineage=("rs-nis", "rs"), country="rs")
    decision = decide_crossing(to_serbia, known, NOW)
    assert decision.allowed and decision.peer == "hub"
    to_kumanovo = replace(asked, lineage=("mk-kumanovo", "mk"), country="mk")
    assert decide_crossing(to_kumanovo, known, NOW).peer == "mk"  # the national peer first
    strict = replace(to_serbia, channel="returnee-repatriation", marking=Marking.AMBER_STRICT)
    assert decide_crossing(strict, known, NOW).code == "no_agreement"


def test_a_channel_the_national_agreement_lacks_goes_through_the_hub_amber_strict_never(
    tmp_path: Path,
) -> None:
    """Kosovo keeps its bilateral agreement with North Macedonia for returnees and sends police
    notices through the hub: the peer chosen is the first serving mk whose agreement sends the
    channel; with none, the national peer, whose agreement gives the refusal."""
    hub = example()
    hub.update(id="hub", kind="hub", countries=["mk"])
    hub["broker_key"] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
    del hub["country"]
    line = {"channel": "hate-incident", "direction": "send", "organisation_kinds": ["police"]}
    hub["agreement"] = {  # type: ignore[assignment]
        "id": "xk-hub-2026",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2030-01-01T00:00:00Z",
        "crossings": [line | {"jurisdictions": ["mk-kumanovo"], "markings": ["AMBER"]}],
    }
    known = load_policies(policy_set(tmp_path, mk=example(), hub=hub)).peers
    kumanovo = {"lineage": ("mk-kumanovo", "mk"), "country": "mk"}
    returnees = decide_crossing(send(**kumanovo), known, NOW)
    assert returnees.allowed and returnees.peer == "mk"  # AMBER+STRICT: bilateral, direct
    incident = decide_crossing(send("hate-incident", organisation_kind="police", **kumanovo),
                               known, NOW)  # fmt: skip
    assert incident.allowed and incident.peer == "hub"
    neither = decide_crossing(send("threat-assessment", **kumanovo), known, NOW)
    assert neither.peer == "mk" and neither.reason == (
        "no agreement with mk for threat-assessment (to send)"
    )


def test_amber_strict_is_refused_at_use_too_if_an_agreement_is_not_bilateral(
    tmp_path: Path,
) -> None:
    """Load refuses such a file; the decision does not rely on that alone."""
    peer = peers(tmp_path)["mk"]
    loose = replace(peer, agreement=replace(peer.agreement, bilateral=False))
    decision = decide_crossing(send(), {"mk": loose}, NOW)
    assert decision.code == "amber_strict_needs_bilateral"
    assert "only under a bilateral agreement" in decision.reason


def test_a_peer_file_pins_the_escrow_key_and_refuses_a_bad_one_or_a_bad_url(
    tmp_path: Path,
) -> None:
    peer = peers(tmp_path)["mk"]
    assert peer.url == "https://liaison.mk.example" and len(peer.escrow_key or b"") == 32
    data = example()
    data["escrow_key"] = "bm90IGEga2V5IGF0IGFsbCwgbm90IDMyIGJ5dGVz"
    assert any("escrow_key: not an X25519 public key" in p for p in problems(tmp_path, data))
    data = example()
    data["url"] = "ftp://liaison.mk.example"
    assert any("url" in p for p in problems(tmp_path, data))


def test_a_peer_file_declares_its_log_whole_or_not_at_all_and_once(tmp_path: Path) -> None:
    key = "5xq2dHKt0h3I2J0Wm9vC4vq7rKoiR4ZxP2mmC9S3yfA="
    data = {**example(), "log_origin": "liaison.mk.example/audit", "log_key": key}
    peer = load_policies(policy_set(tmp_path, mk=data)).peers["mk"]
    assert peer.log_origin == "liaison.mk.example/audit" and len(peer.log_key or b"") == 32
    assert peer.witness_name == "liaison.mk.example/audit/witness"
    alone = {**example(), "log_origin": "liaison.mk.example/audit"}
    assert any(
        "log_key: log_key and log_origin go together" in p for p in problems(tmp_path, alone)
    )
    plus = {**data, "log_origin": "liaison.mk.example/a+b"}  # a signed-note name has no '+'
    assert any("log_origin" in p for p in problems(tmp_path, plus))
    twin = {**data, "id": "rs", "country": "rs", "broker_key": "A" * 43 + "="}
    with pytest.raises(PolicyFileError) as refused:
        load_policies(policy_set(tmp_path, mk=data, rs=twin))
    found = [str(p) for p in refused.value.problems]
    assert any("log_origin: the same log as peer 'mk'" in p for p in found)


def test_pinned_client_certificates_are_read_and_malformed_ones_refused(tmp_path: Path) -> None:
    digest = "ab" * 32
    pinned = load_policies(
        policy_set(tmp_path, mk={**example(), "tls_client_sha256": [f"sha256:{digest}"]})
    ).peers["mk"]
    assert pinned.holds_certificate(bytes.fromhex(digest))
    assert not pinned.holds_certificate(bytes(32))
    assert pinned.holds_certificate(None)  # without mutual TLS there is nothing to bind
    assert not peers(tmp_path)["mk"].holds_certificate(bytes.fromhex(digest))
    found = problems(tmp_path, {**example(), "tls_client_sha256": ["ab" * 32]})
    assert any("tls_client_sha256/0" in p and "does not match" in p for p in found), found
