"""Exercise and test notices, as the people of a drill meet them, on a real broker on loopback.

The interior ministry posts a returnee notice marked ``"exercise": "exercise"``: it routes to
Kumanovo's focal point and social-welfare centre as a real one does, and every surface says so
— the live stream's event, the inbox, the webhook's payload, the e-mail alert (Macedonian, as
the directory gives), ``liaison inbox``/``read``/``status`` in the reader's language, the audit
leaves and the auditor's filter. The attacker is a compromised broker host editing the stored
copy of the marking (the agency signed the original inside the notice): the recipient's
verification refuses the notice. An update cannot make an exercise real. Past the deadline the
exercise does not escalate to the mayor while a real notice does, and the continuity report
counts it apart. A CAP 1.2 alert whose ``status`` is Exercise or Test, posted as
``application/cap+xml``, gets the marking from the broker's own mapping of the signed XML and is
alerted and kept from escalation the same way. One broker per store (SQLite file, then
PostgreSQL) for the whole module, its clock frozen so the test drives escalation; the tests that
move the clock run last.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from adapters.client.errors import RecipientError, VerificationFailed
from adapters.client.sender import SenderError
from broker.clock import FrozenClock
from broker.http.keys import ESCALATION, OUTBOX
from tests.conftest import fresh_pg_database
from tests.integration.intake_support import Broker, example, running_broker
from tests.integration.test_adapters import Mailbox, Receiver, add_webhooks
from tests.support import free_port, run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHANNEL, POSTER = "returnee-repatriation", "mk-mvr"
PCVE, SWC, MAYOR, CSC, AUDITOR = (
    "mk-kumanovo-pcve",
    "mk-kumanovo-swc",
    "mk-kumanovo-mayor",
    "mk-kumanovo-csc",
    "mk-ombudsman-auditor",
)
MAYOR_ROLE, PCVE_ROLE = "mk-kumanovo.mayor", "mk-kumanovo.pcve-focal-point"
CSC_ROLE = "mk-kumanovo.community-safety-council"
CAP_ALERT = Path(__file__).resolve().parents[1] / "data" / "cap" / "restricted-security.xml"
MK_LINE = "*** ВЕЖБА: ова известување е вежба, а не вистински настан. ***"


@dataclass
class Drill:
    broker: Broker
    clock: FrozenClock
    hook: Receiver
    mailbox: Mailbox


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def drill(
    request: pytest.FixtureRequest,
    demo_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Drill]:
    import contextlib
    import shutil

    data = tmp_path_factory.mktemp("exercise") / "demo"
    shutil.copytree(demo_template, data)
    hook, mailbox, smtp_port = Receiver(), Mailbox(), free_port()
    add_webhooks(data, {PCVE: hook.url, CSC: hook.url})  # CSC: only public-safety alerts reach it
    env = {
        "LIAISON_SMTP_HOST": "127.0.0.1",
        "LIAISON_SMTP_PORT": str(smtp_port),
        "LIAISON_SMTP_SECURITY": "none",
        "LIAISON_SMTP_FROM_ADDRESS": "liaison@broker.invalid",
        "LIAISON_WEBHOOKS_TIMEOUT_SECONDS": "2",
    }
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{data.parent / 'liaison.db'}"
        else:
            url = await stack.enter_async_context(fresh_pg_database("postgresql+asyncpg"))
        await hook.start()
        stack.push_async_callback(hook.stop)
        controller.start()
        stack.callback(controller.stop)
        broker = await stack.enter_async_context(running_broker(data, url, clock=clock, env=env))
        yield Drill(broker, clock, hook, mailbox)


def exercise(kind: str = "exercise") -> dict[str, Any]:
    return {**example(CHANNEL), "exercise": kind}


async def post(drill: Drill, notice: dict[str, Any]) -> str:
    async with drill.broker.sender(POSTER, drill.clock) as sender:
        return str((await sender.post_notice(notice)).body["id"])


async def cli(drill: Drill, *args: str) -> str:
    """A ``liaison`` run against the broker (in a thread: the broker serves on this loop)."""
    common = ("--data", str(drill.broker.data), "--url", drill.broker.url)
    done = await asyncio.to_thread(run_cli, *args, *common)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_an_exercise_routes_as_a_real_notice_and_every_surface_says_so(drill: Drill) -> None:
    notice_id = await post(drill, exercise())
    real_id = await post(drill, example(CHANNEL))
    # Routed as a real notice is: the same roles.
    routed = await drill.broker.rows(
        "SELECT notice_id, role_id FROM delivery WHERE notice_id IN (:a, :b)",
        a=notice_id,
        b=real_id,
    )
    roles = {n: sorted(r for m, r in routed if m == n) for n in (notice_id, real_id)}
    assert roles[notice_id] == roles[real_id] and len(roles[notice_id]) == 2
    async with drill.broker.recipient(PCVE, drill.clock) as pcve:
        items = {i["notice_id"]: i for i in (await pcve.inbox())["items"]}
        assert items[notice_id]["exercise"] == "exercise" and items[real_id]["exercise"] is None
        async with asyncio.timeout(10):  # the live stream's payload (its backlog, from the start)
            async for _, event in pcve.watch(last_event_id=0):
                if event["notice_id"] == notice_id:
                    assert event["exercise"] == "exercise"
                    break
        verified = await pcve.read(notice_id)
        assert verified.notice["exercise"] == verified.metadata["exercise"] == "exercise"
    # Webhook and e-mail alerts, as the outbox sends them.
    await drill.broker.app[OUTBOX].tick(drill.clock.now())
    payloads = {
        json.loads(body)["data"]["notice_id"]: json.loads(body)["data"]
        for _, body, _ in drill.hook.received
    }
    assert payloads[notice_id]["exercise"] == "exercise" and payloads[real_id]["exercise"] is None
    mails = [message_from_bytes(m.content, policy=policy.default) for m in drill.mailbox.messages]
    ours = [m for m in mails if notice_id in m.get_content()]
    assert len(ours) == 2  # the focal point and the social-welfare centre, both Macedonian
    for message in ours:
        assert message["Subject"] == "[ВЕЖБА] Liaison: ве чека ново известување"
        assert message.get_content().startswith(MK_LINE.strip("* ") + "\n")
    real_mail = next(m for m in mails if real_id in m.get_content())
    assert "ВЕЖБА" not in real_mail["Subject"] + real_mail.get_content()
    # The CLI, in the reader's language and the officer's.
    inbox = await cli(drill, "--lang", "mk", "inbox", "--as", PCVE)
    lines = {n: line for line in inbox.splitlines() for n in (notice_id, real_id) if n in line}
    assert lines[notice_id].startswith("[ВЕЖБА]  ") and "ВЕЖБА" not in lines[real_id]
    read = await cli(drill, "--lang", "mk", "read", notice_id, "--as", SWC)
    assert read.splitlines()[0] == MK_LINE
    status = await cli(drill, "--lang", "en", "status", notice_id, "--as", POSTER)
    assert status.splitlines()[0] == (
        "*** EXERCISE: this notice is an exercise, not a real event. ***"
    )


async def test_auditors_see_the_marking_and_can_filter_on_it(drill: Drill) -> None:
    notice_id = await post(drill, exercise("test"))
    posted = await drill.broker.rows(
        "SELECT body FROM audit_event WHERE object = :o ORDER BY seq", o=f"notice:{notice_id}"
    )
    leaves = {json.loads(r[0])["action"]: json.loads(r[0]) for r in posted}
    assert leaves["notice.posted"]["details"]["exercise"] == "test"
    assert leaves["notice.routed"]["details"]["exercise"] == "test"
    async with drill.broker.recipient(AUDITOR, drill.clock) as auditor:
        marked = await auditor._request("GET", "/v1/audit/events", params={"exercise": "test"})
        objects = {e["object"] for e in marked["events"]}
        assert f"notice:{notice_id}" in objects
        assert all(o.startswith("notice:") for o in objects)
        unmarked = await auditor._request("GET", "/v1/audit/events", params={"exercise": "none"})
        assert f"notice:{notice_id}" not in {e["object"] for e in unmarked["events"]}
        assert unmarked["events"]  # the real notices' events, and the log's own
        with pytest.raises(RecipientError) as bogus:
            await auditor._request("GET", "/v1/audit/events", params={"exercise": "drill"})
        assert bogus.value.status == 422


async def test_a_host_that_strips_or_adds_the_marking_is_caught_by_the_recipient(
    drill: Drill,
) -> None:
    """Attacker: the broker's host, editing the stored copy of the marking (THREATS.md, a
    compromised host). The agency signed the marking inside the notice, so the recipient's
    client, comparing the two after decryption, refuses either edit."""
    drill_id = await post(drill, exercise())
    real_id = await post(drill, example(CHANNEL))
    engine = drill.broker.state.engine
    from sqlalchemy import text

    async with engine.begin() as conn:
        await conn.execute(text("UPDATE notice SET exercise = NULL WHERE id = :n"), {"n": drill_id})
        await conn.execute(
            text("UPDATE notice SET exercise = 'exercise' WHERE id = :n"), {"n": real_id}
        )
    async with drill.broker.recipient(PCVE, drill.clock) as pcve:
        for notice_id in (drill_id, real_id):
            with pytest.raises(VerificationFailed, match="exercise marking differs"):
                await pcve.read(notice_id)
    async with engine.begin() as conn:  # put back: the other tests share this broker
        await conn.execute(
            text("UPDATE notice SET exercise = 'exercise' WHERE id = :n"), {"n": drill_id}
        )
        await conn.execute(text("UPDATE notice SET exercise = NULL WHERE id = :n"), {"n": real_id})


async def test_an_update_cannot_turn_an_exercise_real(drill: Drill) -> None:
    drill_id = await post(drill, exercise())
    async with drill.broker.sender(POSTER, drill.clock) as sender:
        with pytest.raises(SenderError) as refused:
            await sender.post_notice({**example(CHANNEL), "supersedes": drill_id})
        assert refused.value.status == 422
        assert "exercise" in json.dumps(refused.value.problem)
        kept = await sender.post_notice({**exercise(), "supersedes": drill_id})
        assert kept.status == 201


def cap_alert(status: str) -> bytes:
    """The Public Security Bureau's restricted alert for Kumanovo, with this ``status``."""
    data = CAP_ALERT.read_bytes().replace(b"2026-12-31", b"2099-12-31")
    data = data.replace(b"<status>Actual", f"<status>{status}".encode())
    return data.replace(b"-0042<", f"-0042-drill-{status}<".encode())


async def test_a_cap_exercise_or_test_posted_as_xml_alerts_as_one_and_never_escalates(
    drill: Drill,
) -> None:
    """The alerts are the agency's signed XML; the marking comes from the broker's mapping of it.
    Moves the broker's clock past the channel's 12-hour deadline: runs after every CLI test."""
    async with drill.broker.sender("mk-bjb", drill.clock) as bureau:
        ids = {
            status: str((await bureau.post_cap(cap_alert(status))).body["id"])
            for status in ("Exercise", "Test", "Actual")
        }
    marking = {ids["Exercise"]: "exercise", ids["Test"]: "test", ids["Actual"]: None}
    routed = await drill.broker.rows(
        "SELECT notice_id, role_id FROM delivery WHERE notice_id IN (:a, :b, :c)",
        a=ids["Exercise"],
        b=ids["Test"],
        c=ids["Actual"],
    )
    for notice_id in marking:  # as the real alert: the mayor and the community-safety council
        assert sorted(r for n, r in routed if n == notice_id) == sorted([CSC_ROLE, MAYOR_ROLE])
    async with drill.broker.recipient(MAYOR, drill.clock) as mayor:
        items = {i["notice_id"]: i for i in (await mayor.inbox())["items"]}
        for notice_id, marked in marking.items():
            assert items[notice_id]["exercise"] == marked
            verified = await mayor.read(notice_id)  # mapped again from the signed XML, here
            assert verified.notice.get("exercise") == verified.metadata["exercise"] == marked
    await drill.broker.app[OUTBOX].tick(drill.clock.now())
    payloads = {
        json.loads(body)["data"]["notice_id"]: json.loads(body)["data"]
        for _, body, _ in drill.hook.received
    }
    for notice_id, marked in marking.items():  # the community-safety council's webhook
        assert payloads[notice_id]["exercise"] == marked
    mails = [message_from_bytes(m.content, policy=policy.default) for m in drill.mailbox.messages]
    subjects = {
        notice_id: {m["Subject"] for m in mails if notice_id in m.get_content()}
        for notice_id in marking
    }
    new_notice = "Liaison: ве чека ново известување"
    assert subjects[ids["Exercise"]] == {f"[ВЕЖБА] {new_notice}"}  # mayor and council, in mk
    assert subjects[ids["Test"]] == {f"[ТЕСТ] {new_notice}"}
    assert subjects[ids["Actual"]] == {new_notice}
    drill.clock.advance(timedelta(hours=13))  # public-safety-alert: 12 hours, then P/CVE
    await drill.broker.app[ESCALATION].tick(drill.clock.now())
    escalated = {
        n
        for (n,) in await drill.broker.rows(
            "SELECT notice_id FROM delivery WHERE role_id = :r", r=PCVE_ROLE
        )
    }
    assert ids["Actual"] in escalated
    assert ids["Exercise"] not in escalated and ids["Test"] not in escalated
    async with drill.broker.recipient(AUDITOR, drill.clock) as auditor:
        report = await auditor.continuity_report("mk-kumanovo")
    roles = {r["role"]: r for g in report["jurisdictions"] for r in g["roles"]}
    apart = json.dumps(roles[MAYOR_ROLE]["exercise_overdue_items"])
    assert ids["Exercise"] in apart and ids["Test"] in apart and ids["Actual"] not in apart
    assert ids["Exercise"] not in json.dumps(roles[MAYOR_ROLE]["overdue_items"])


async def test_an_overdue_exercise_does_not_escalate_while_a_real_notice_does(
    drill: Drill,
) -> None:
    """Runs last in this module (after the CAP one): it moves the broker's clock past the deadline."""
    drill_id = await post(drill, exercise())
    real_id = await post(drill, example(CHANNEL))
    drill.clock.advance(timedelta(hours=25))  # the channel's deadline is 24 hours
    await drill.broker.app[ESCALATION].tick(drill.clock.now())
    reached = {
        n: {
            r[0]
            for r in await drill.broker.rows(
                "SELECT role_id FROM delivery WHERE notice_id = :n", n=n
            )
        }
        for n in (drill_id, real_id)
    }
    assert MAYOR_ROLE in reached[real_id]
    assert MAYOR_ROLE not in reached[drill_id]  # never beyond the roles the exercise was for
    async with drill.broker.recipient(MAYOR, drill.clock) as mayor:
        mine = {i["notice_id"] for i in (await mayor.inbox())["items"]}
    assert real_id in mine and drill_id not in mine
    async with drill.broker.recipient(AUDITOR, drill.clock) as auditor:
        report = await auditor.continuity_report("mk-kumanovo")
    roles = {r["role"]: r for g in report["jurisdictions"] for r in g["roles"]}
    pcve = roles[PCVE_ROLE]
    assert drill_id not in json.dumps(pcve["overdue_items"])  # not counted as really overdue
    assert real_id in json.dumps(pcve["overdue_items"])
    drills = {o["notice"]: o for o in pcve["exercise_overdue_items"]}
    assert drills[drill_id]["exercise"] == "exercise" and real_id not in drills
