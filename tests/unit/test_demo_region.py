"""The federation demo's region agrees with the peer agreement the deploy example ships: each
peering's send line is one of the example's, under the example's agreement id."""

from __future__ import annotations

from pathlib import Path

import yaml

from broker.demo_region import CHANNEL, PEERINGS, REGION, SENDERS

EXAMPLE = Path(__file__).parents[2] / "deploy" / "federation" / "peer-agreement.yaml"


def test_the_demo_peering_is_the_deploy_examples_agreement() -> None:
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    (peering,) = PEERINGS  # xk -> mk; the hub would add xk -> hub -> mk
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
    assert {s.id for s in REGION} == {peering.sender, peering.receiver}
