"""OASIS CAP 1.2 import: samples of the kind the specification shows, and every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from broker.cap.export import notice_to_cap
from broker.cap.mapping import CapError, cap_to_notice
from broker.policy.load import load_policies
from broker.policy.payload import payload_violations
from broker.service.notices import notice_facts_from_document
from tests.conftest import POLICIES

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "cap"
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"


def test_a_restricted_security_alert_becomes_a_kumanovo_notice() -> None:
    notice = cap_to_notice((SAMPLES / "restricted-security.xml").read_bytes())
    assert notice["channel"] == "public-safety-alert"
    assert (notice["jurisdiction"], notice["severity"]) == ("mk-kumanovo", "high")
    assert notice["subject"] == "Heightened risk around the Saturday market gathering"
    assert notice["expires_at"] == "2026-12-31T18:00:00+01:00"
    assert notice["body"]["urgency"] == "Expected" and notice["body"]["category"] == ["Security"]
    assert notice["idempotency_key"] == "cap:duty-desk@mk-bjb.demo.invalid:MK-BJB-2026-11-0042"
    channel = load_policies(POLICIES).channels["public-safety-alert"]
    assert payload_violations(channel, notice["body"]) == []  # it fits the channel's schema


def test_a_private_canton_alert_maps_extreme_to_critical() -> None:
    notice = cap_to_notice((SAMPLES / "private-flood.xml").read_bytes())
    assert (notice["jurisdiction"], notice["severity"]) == ("ba-fbih-ks", "critical")
    assert notice["body"]["category"] == ["Met", "Safety"] and "expires_at" not in notice


def test_update_and_cancel_supersede_a_notice() -> None:
    data = (SAMPLES / "restricted-security.xml").read_bytes()
    with pytest.raises(CapError, match="needs the Liaison notice it supersedes"):
        cap_to_notice(data.replace(b"<msgType>Alert", b"<msgType>Update"))
    cancel = cap_to_notice(data.replace(b"<msgType>Alert", b"<msgType>Cancel"), supersedes="n1")
    assert cancel["supersedes"] == "n1" and cancel["cancel"] is True
    assert cancel["body"]["cap_msg_type"] == "Cancel"  # the Cancel's own text is kept


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (
            "public-scope.xml",
            "alert/scope: 'Public'; only Restricted or Private alerts are imported",
        ),
        (
            "unmapped-resource.xml",
            "alert/info/instruction: not valid CAP 1.2 (line 21): Element 'instruction': "
            "This element is not expected",
        ),
        ("no-geocode.xml", "alert/info/area: 'Kumanovo' is not mapped to one Liaison jurisdiction"),
        ("truncated.xml", "not valid XML"),
        ("entity-bomb.xml", "not valid XML"),
    ],
)
def test_refusals_name_the_element(sample: str, message: str) -> None:
    with pytest.raises(CapError) as caught:
        cap_to_notice((SAMPLES / sample).read_bytes())
    assert message in str(caught.value)


def test_exercise_and_test_are_carried_system_and_draft_refused() -> None:
    data = (SAMPLES / "restricted-security.xml").read_bytes()
    assert "exercise" not in cap_to_notice(data)  # an Actual alert is a real notice
    for status, marking in (("Exercise", "exercise"), ("Test", "test")):
        notice = cap_to_notice(data.replace(b"<status>Actual", f"<status>{status}".encode()))
        assert notice["body"]["cap_status"] == status
        assert notice["exercise"] == marking  # the notice's own marking: labelled, not escalated
        assert notice_facts_from_document(notice, sender="mk-bjb").exercise == marking
        # Exported (built, with no carried original), the marking is the CAP status again.
        built = {k: v for k, v in notice.items() if k != "body"} | {"body": {"event": "drill"}}
        root = etree.fromstring(notice_to_cap({"id": "n1", "sender": "mk-bjb"}, built, "MVR"))
        assert root.findtext(f"{CAP}status") == status
    for status in ("System", "Draft"):
        with pytest.raises(CapError, match=f"alert/status: '{status}'; only Actual"):
            cap_to_notice(data.replace(b"<status>Actual", f"<status>{status}".encode()))


def test_several_info_blocks_are_kept_and_the_worst_severity_routes() -> None:
    data = (SAMPLES / "restricted-security.xml").read_bytes()
    start, end = data.index(b"<info>"), data.index(b"</info>") + len(b"</info>")
    second = data[start:end].replace(b"<language>en", b"<language>mk")
    second = second.replace(b"<severity>Severe", b"<severity>Extreme")
    notice = cap_to_notice(data[:end] + second + data[end:])
    assert notice["body"]["languages"] == ["en", "mk"] and notice["severity"] == "critical"
    assert notice["body"]["language"] == "en"  # the first block gives the fields


def test_polygon_or_circle_alone_is_refused_by_name() -> None:
    data = (SAMPLES / "no-geocode.xml").read_bytes()
    shaped = data.replace(b"</areaDesc>", b"</areaDesc><circle>42.13,21.71 5</circle>")
    with pytest.raises(CapError, match="alert/info/area/circle: not resolved to a jurisdiction"):
        cap_to_notice(shaped)


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("mk-MK", "mk"),
        ("mk", "mk"),
        ("sq", "sq"),
        ("sq-AL", "sq"),
        ("sq-XK", "sq"),
        ("sr-Cyrl", "sr-Cyrl"),
        ("sr-Cyrl-RS", "sr-Cyrl"),
        ("sr", "sr-Latn"),
        ("sr-RS", "sr-Latn"),
        ("sr-Latn-ME", "sr-Latn"),
        ("hr-HR", "hr"),
        ("bs-BA", "bs"),
        ("cnr", "cnr"),
        ("cnr-ME", "cnr"),
        ("me", "cnr"),
        ("en-US", "en"),
        ("EN-us", "en"),
        ("fr-CA", None),
        ("de", None),
        ("", None),
    ],
)
def test_cap_language_tags_map_to_the_eight_page_languages(tag: str, code: str | None) -> None:
    from broker.cap.languages import page_language

    assert page_language(tag) == code


def test_the_reader_gets_their_block_else_the_first() -> None:
    from broker.cap.document import parse
    from broker.cap.languages import blocks, choose, localised

    data = (SAMPLES / "restricted-security.xml").read_bytes()
    start, end = data.index(b"<info>"), data.index(b"</info>") + len(b"</info>")
    second = data[start:end].replace(b"<language>en", b"<language>sr-Cyrl-RS")
    second = second.replace(b"<headline>Heightened", "<headline>Повећан".encode())
    found = blocks(parse(data[:end] + second + data[end:]))
    assert [(b.tag, b.language) for b in found] == [("en", "en"), ("sr-Cyrl-RS", "sr-Cyrl")]
    chosen, others = choose(found, "sr-Cyrl")
    assert chosen.tag == "sr-Cyrl-RS" and [b.tag for b in others] == ["en"]
    subject, body = localised(
        {"subject": "x", "body": {"event": "e", "cap_status": "Actual"}}, chosen
    )
    assert subject.startswith("Повећан") and body["language"] == "sr-Cyrl-RS"
    assert body["cap_status"] == "Actual" and body["area"] == "Kumanovo"
    assert choose(found, "hr")[0].tag == "en"  # no Croatian block: the alert's first
