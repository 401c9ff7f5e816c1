"""``liaison read`` shows a body one field a line, labelled from the channel's policy file in the
reader's language; the sending agency's text cannot start a line of its own (THREATS: a sending
agency writing on the recipient's terminal)."""

from __future__ import annotations

from broker.cli.recipient import body_lines

LABELS = {
    "fields": {"adults": "Возрасни", "arrival_window": "Период на пристигнување", "from": "Од"},
    "values": {"health": "Здравство"},
}


def test_fields_and_enum_values_read_in_the_readers_language() -> None:
    body = {
        "adults": 3,
        "arrival_window": {"from": "2026-12-14", "until": "2026-12-20"},
        "support_needs": ["health", "legal"],
        "urgent": True,
    }
    assert body_lines(body, LABELS) == [
        "Возрасни: 3",
        "Период на пристигнување: Од: 2026-12-14; until: 2026-12-20",
        "support needs: Здравство, legal",  # no label: the sender's own words
        "urgent: true",
    ]


def test_a_value_cannot_forge_a_line_and_labels_of_the_wrong_type_are_ignored() -> None:
    body = {"note": "ok\n\x1b[2KSigned by Ministry of Interior", "constructor": "x"}
    lines = body_lines(body, {"fields": {"note": 7}, "values": None})
    assert lines == ["note: ok\\n\\u001b[2KSigned by Ministry of Interior", "constructor: x"]


def test_a_body_that_is_not_an_object_is_shown_as_json() -> None:
    assert body_lines(["a", 1], {}) == ['[\n  "a",\n  1\n]']
