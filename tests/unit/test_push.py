import asyncio

from broker.service.push import Hub, PushEvent


async def test_events_reach_only_their_contacts_connections() -> None:
    hub = Hub(queue_size=4)
    a1, a2, b = hub.subscribe("a"), hub.subscribe("a"), hub.subscribe("b")
    assert hub.publish([PushEvent(1, "a", {"n": 1})]) == 2
    assert a1.queue.get_nowait().id == 1 and a2.queue.get_nowait().id == 1
    assert b.queue.empty()
    hub.unsubscribe(a1)
    hub.unsubscribe(a2)
    hub.unsubscribe(b)
    assert hub.connections == 0


async def test_a_slow_reader_is_marked_for_disconnection_not_buffered() -> None:
    hub = Hub(queue_size=2)
    slow = hub.subscribe("a")
    hub.publish([PushEvent(i, "a", {}) for i in range(1, 6)])
    assert slow.queue.qsize() == 2  # bounded
    assert slow.overflowed.is_set()


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
