import asyncio

from broker.service.push import Hub, PushEvent


async def test_events_reach_only_their_contacts_connections() -> None:
    hub = Hub(queue_size=4)
    a1, a2, b = hub.subscribe("a"), hub.subscribe("a"), hub.subscribe("b")
    assert hub.connections == 3
    assert hub.publish([PushEvent(1, "a", {"n": 1})]) == 2
    assert [e.id for e in a1.take()] == [1] and [e.id for e in a2.take()] == [1]
    assert b.take() == []
    hub.unsubscribe(a1)
    hub.unsubscribe(a2)
    hub.unsubscribe(a2)  # twice: no harm, the count stays right
    hub.unsubscribe(b)
    assert hub.connections == 0 and hub.contacts() == []


async def test_a_slow_reader_is_marked_for_disconnection_not_buffered() -> None:
    hub = Hub(queue_size=2)
    slow = hub.subscribe("a")
    hub.publish([PushEvent(i, "a", {}) for i in range(1, 6)])
    assert len(slow.events) == 2  # bounded
    assert slow.overflowed
    await asyncio.wait_for(slow.wait(), 1)  # an overflowed stream does not wait: it ends


async def test_a_waiting_stream_wakes_on_mail_and_on_a_directory_change() -> None:
    hub = Hub()
    sub = hub.subscribe("a", beat=3600)
    waiting = asyncio.create_task(sub.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    hub.publish([PushEvent(7, "a", {})])
    await asyncio.wait_for(waiting, 1)
    assert [e.id for e in sub.take()] == [7] and not sub.beat
    waiting = asyncio.create_task(sub.wait())
    await asyncio.sleep(0.01)
    hub.wake_all()
    await asyncio.wait_for(waiting, 1)
    assert not sub.beat and sub.take() == []  # a re-check, not a keep-alive
    hub.unsubscribe(sub)


async def test_one_timer_beats_for_every_connection() -> None:
    """Idle connections hold no timer of their own: the hub's one timer knocks on all."""
    hub = Hub()
    subs = [hub.subscribe(f"c{i}", beat=0.05) for i in range(50)]
    loop = asyncio.get_running_loop()
    timers = len(loop._scheduled)  # type: ignore[attr-defined]  # the loop's pending timers
    waits = [asyncio.create_task(s.wait()) for s in subs]
    await asyncio.sleep(0.01)
    assert len(loop._scheduled) == timers  # type: ignore[attr-defined]  # waiting added none
    await asyncio.wait_for(asyncio.gather(*waits), 1)
    assert all(s.beat for s in subs)
    for s in subs:
        hub.unsubscribe(s)
    assert hub._timer is None  # the last connection gone: the timer stops


async def test_a_deadline_before_the_next_beat_wakes_the_stream() -> None:
    hub = Hub()
    sub = hub.subscribe("a", beat=3600)
    await asyncio.wait_for(sub.wait(0.02), 1)  # the token's expiry comes first
    assert not sub.beat and sub.take() == []
    hub.unsubscribe(sub)


async def test_close_all_cancels_the_connection_handlers() -> None:
    hub = Hub()

    async def handler() -> None:
        hub.subscribe("a")
        await asyncio.sleep(3600)

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    hub.close_all()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
