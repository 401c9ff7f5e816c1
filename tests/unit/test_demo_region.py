"""The federation demo's region agrees with the peer agreements the deploy examples ship: the
bilateral peering's send line is one of deploy/federation/peer-agreement.yaml's, under its
agreement id; the peerings through the hub are never bilateral and never TLP:AMBER+STRICT."""

from __future__ import annotations

from pathlib import Path

import yaml

from broker.demo_region import CHANNEL, PEERINGS, REGION, SENDERS, Peering

EXAMPLE = Path(__file__).parents[2] / "deploy" / "federation" / "peer-agreement.yaml"


def test_the_demo_peering_is_the_deploy_examples_agreement() -> None:
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    (peering,) = [p for p in PEERINGS if "hub" not in (p.sender, p.receiver)]  # xk -> mk
    assert example["id"] == peering.receiver and example["agreement"]["id"] == peering.agreement
    assert example["agreement"]["bilateral"] is peering.bilateral
    lines = example["agreement"]["crossings"]
    send = {
        "channel": CHANNEL,
        "direction": "send",
        "organisation_kinds": list(SENDERS),
        "jurisdictions": list(peering.to),
        "markings": ["AMBER+STRICT"],
    }
    assert send in lines
    assert {s.id for s in REGION} == {peering.sender, peering.receiver, "hub"}


def test_the_hub_peerings_relay_xk_to_mk_and_never_amber_strict() -> None:
    through: list[Peering] = [p for p in PEERINGS if "hub" in (p.sender, p.receiver)]
    assert [(p.sender, p.receiver, p.relay) for p in through] == [
        ("xk", "hub", True),
        ("hub", "mk", False),
    ]
    for p in through:
        assert not p.bilateral and p.marking != "AMBER+STRICT" and p.channel != CHANNEL
