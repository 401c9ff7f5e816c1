"""The refusal counter's core: bounded keys, nothing counted is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broker.service.refusals import OTHER, RefusalCounter

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_flood_of_new_sources_is_bounded_and_every_refusal_is_counted() -> None:
    counter = RefusalCounter(max_sources=3)
    firsts = [
        counter.note(("notice.refused", "authentication_failed", f"10.0.0.{i % 50}"), T0)
        for i in range(1000)
    ]
    assert sum(firsts) == 3  # at most max_sources refusals are written on their own
    summary = counter.take(T0 + timedelta(seconds=60))
    assert summary is not None and summary.action == "auth.refused_summary"
    assert summary.details["total"] == 1000
    sources = [c["source"] for c in summary.details["counts"]]
    assert len(sources) == 4 and OTHER in sources
    assert summary.details["from"] == T0.isoformat()
    assert counter.take(T0 + timedelta(seconds=120)) is None  # a new, empty interval


def test_the_first_of_a_key_is_first_again_in_the_next_interval() -> None:
    counter = RefusalCounter(max_sources=10)
    key = ("token.refused", "authentication_failed", "127.0.0.1")
    assert [counter.note(key, T0) for _ in range(3)] == [True, False, False]
    counter.take(T0)
    assert counter.note(key, T0) is True


def test_a_summary_the_store_refused_is_counted_again() -> None:
    counter = RefusalCounter(max_sources=10)
    key = ("auth.refused", "authentication_failed", "127.0.0.1")
    for _ in range(5):
        counter.note(key, T0)
    lost = counter.take(T0 + timedelta(seconds=60))
    assert lost is not None
    counter.note(key, T0 + timedelta(seconds=61))
    counter.restore(lost)
    again = counter.take(T0 + timedelta(seconds=120))
    assert again is not None and again.details["total"] == 6
    assert again.details["from"] == T0.isoformat()
