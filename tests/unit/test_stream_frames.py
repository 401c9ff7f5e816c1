"""A pushed event is one server-sent event whose data is one line of JSON, whatever the strings
in it hold: non-Latin letters, newlines, a lone surrogate (orjson refuses it; json.dumps
escapes it)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from broker.service.stream import _frame


@given(values=st.dictionaries(st.text(max_size=8), st.text() | st.none() | st.integers()))
def test_a_frame_is_one_event_with_one_line_of_json(values: dict[str, object]) -> None:
    frame = _frame(42, values)
    assert frame.endswith(b"\n\n") and frame.count(b"\n\n") == 1
    head, event, data = frame[:-2].split(b"\n")
    assert (head, event) == (b"id: 42", b"event: notice")
    assert data.startswith(b"data: ")
    assert json.loads(data[6:].decode("utf-8", "surrogatepass")) == values


def test_a_lone_surrogate_falls_back_to_an_escape() -> None:
    frame = _frame(1, {"role": "x\ud800"})
    assert b"\\ud800" in frame
