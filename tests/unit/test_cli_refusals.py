"""The broker's refusals read in the CLI's language: the catalog's sentences are the ones the
broker raises, a 403's reason is said from its data as the broker says it in English, and what
the catalogs do not know passes through as the broker wrote it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import i18n
from broker.cli.refusals import BROKER_MESSAGES, WHY, refusal_line
from broker.domain.notice import NoticeFacts
from broker.service.intake_plan import _why_not, _why_not_data

BROKER = Path(__file__).parents[2] / "broker"


@pytest.fixture
def macedonian() -> object:
    i18n.use("mk")
    yield
    i18n.use("en")


def test_every_translated_refusal_is_a_sentence_the_broker_raises() -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for p in BROKER.rglob("*.py")
        if p.parent.name != "cli" and "locale" not in p.parts
    )
    assert [m for m in BROKER_MESSAGES if f'"{m}"' not in sources] == []


@pytest.mark.parametrize("policies", [(), ("deny-bjb",), ("a", "b")])
def test_the_reason_as_data_reads_in_english_as_the_broker_writes_it(
    policies: tuple[str, ...],
) -> None:
    facts = NoticeFacts("returnee-repatriation", "mk-kumanovo", "high", "mk-bjb")
    why = _why_not_data(facts, policies)
    assert why["rule"] in WHY
    problem = {"code": "forbidden", "detail": "x", "why": why, "reason": "not this"}
    assert refusal_line(403, problem, "-") == f"403 forbidden: x ({_why_not(facts, policies)})"


def test_a_refusal_in_macedonian_keeps_pointers_ids_and_unknown_words(macedonian: object) -> None:
    why = {"rule": "no_policy_permits", "sender": "mk-bjb", "channel": "c", "jurisdiction": "j"}
    forbidden = {"code": "forbidden", "detail": "this agency may not publish this notice"}
    assert refusal_line(403, {**forbidden, "why": why}, "-") == (
        "403 forbidden: оваа агенција не смее да го објави ова известување "
        "(ниедна политика не дозволува mk-bjb да објавува на c за j)"
    )
    invalid = {
        "code": "payload_invalid",
        "detail": "the notice does not match its schema",
        "violations": [{"pointer": "/body/adults", "message": "'three' is not of type 'integer'"}],
    }
    assert refusal_line(422, invalid, "-") == (
        "422 payload_invalid: известувањето не одговара на својата шема "
        "(/body/adults: 'three' is not of type 'integer')"
    )
    # A sentence the catalogs do not know, and a rule this CLI does not know: as written.
    odd = {"code": "x", "detail": "something new", "why": {"rule": "new"}, "reason": "because"}
    assert refusal_line(409, odd, "-") == "409 x: something new (because)"
    assert refusal_line(None, {}, "cannot reach the broker") == "cannot reach the broker"
    # A rule with a field missing falls back to the broker's English reason, not a traceback.
    short = {**forbidden, "why": {"rule": "no_policy_permits"}, "reason": "the reason"}
    assert refusal_line(403, short, "-").endswith("(the reason)")
