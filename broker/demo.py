"""``liaison demo``: the whole story against a temporary embedded broker, narrated step by step.

An agency posts a returnee-repatriation notice for Kumanovo; the P/CVE focal point and the
social-welfare centre receive, decrypt and verify it; one acknowledges, the other does not; the
mayor receives it on escalation; Sarajevo received nothing; an auditor exports and verifies the
log, which shows who saw what and by which rule. Time is simulated, so the 24-hour deadline
passes in a moment. Everything runs on loopback with a throwaway data directory.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.client.errors import RecipientError
from adapters.client.recipient import RecipientClient
from adapters.client.sender import SenderClient
from adapters.client.trust import PinnedRoot
from broker.app import create_app
from broker.audit.verify import read_export, verify_export
from broker.clock import FrozenClock
from broker.config import load_settings
from broker.crypto.keys import read_private_key
from broker.http.keys import ESCALATION
from broker.service.setup import SHIPPED_POLICIES, init_data_dir

EXAMPLE = SHIPPED_POLICIES / "examples" / "returnee-repatriation.json"


class Demo:
    def __init__(self, data: Path, say: Callable[[str], None]) -> None:
        self.data = data
        self.say = say
        self.clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
        self.url = ""
        self.trust: PinnedRoot | None = None

    def sender(self, agency: str) -> SenderClient:
        pair = read_private_key(self.data / "keys" / f"{agency}.pem", expected="ed25519")
        return SenderClient.from_pem(
            self.url,
            pair.pem(),
            pair.key_id(agency),
            retries=0,
            clock=lambda: self.clock.now().timestamp(),
        )

    def recipient(self, contact: str) -> RecipientClient:
        keys = self.data / "keys"
        return RecipientClient(
            self.url,
            contact,
            read_private_key(keys / f"{contact}.pem", expected="ed25519"),
            read_private_key(keys / f"{contact}.x25519.pem", expected="x25519"),
            clock=self.clock.now,
            trust=self.trust,
        )

    async def run(self) -> bool:
        step = _steps(self.say)
        step(
            "Setting up",
            f"a temporary broker with the Western Balkans demo directory in {self.data}",
        )
        await init_data_dir(self.data, demo=True, now=self.clock.now(), environ={})
        # Enrolment: every demo client pins the administrators' root, not the broker's word.
        self.trust = PinnedRoot.from_file(self.data / "trust" / "root.json")
        self.say(
            f"   directory root pinned by every client: 2-of-2 demo administrators, "
            f"fingerprint {self.trust.fingerprint[:16]}…"
        )
        sock = socket.create_server(("127.0.0.1", 0))  # bound first: its URL is configuration
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env = {"LIAISON_SERVER_PUBLIC_URL": self.url}
        app = create_app(load_settings(self.data, env), env, clock=self.clock, run_workers=False)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            return await self._story(app, step)
        finally:
            await runner.cleanup()

    async def _story(self, app: web.Application, step: Callable[..., None]) -> bool:
        notice_id = await self._post(step)
        await self._receive(step, notice_id)
        await self._acknowledge(step, notice_id)
        escalated = await self._escalate(app, step, notice_id)
        denied = await self._elsewhere(step, notice_id)
        await self._status(step, notice_id)
        verified, sarajevo_events = await self._audit(step, notice_id)
        ok = verified and "must never" not in denied and not sarajevo_events and escalated == 1
        step(
            "Done" if ok else "FAILED", "the whole story ran on this machine" if ok else "see above"
        )
        return ok

    async def _post(self, step: Callable[..., None]) -> str:
        notice = json.loads(EXAMPLE.read_text())
        step(
            "1. An agency posts",
            "the Ministry of Interior of North Macedonia signs a returnee-repatriation "
            "notice for Kumanovo (RFC 9421, Ed25519) and posts it",
        )
        async with self.sender("mk-mvr") as ministry:
            posted = (await ministry.post_notice(notice)).body
        notice_id = posted["id"]
        self.say(
            f"   accepted: notice {notice_id}, {posted['recipient_count']} recipients, "
            f"routed under policy {posted['policy_hash'][:19]}…; the broker stored only ciphertext"
        )
        return str(notice_id)

    async def _receive(self, step: Callable[..., None], notice_id: str) -> None:
        step(
            "2. The right roles receive it",
            "each decrypts it on their own device and checks the agency's signature over the "
            "decrypted bytes, with the agency key the administrators signed under the pinned root",
        )
        for contact, role in (
            ("mk-kumanovo-pcve", "P/CVE focal point"),
            ("mk-kumanovo-swc", "social-welfare centre"),
        ):
            async with self.recipient(contact) as client:
                inbox = await client.inbox()
                verified = await client.read(notice_id)
            self.say(
                f"   {role} of Kumanovo ({contact}): {len(inbox['items'])} notice in the inbox; "
                f"signed by {verified.sender_name} (key bound in the signed directory), verified; "
                f'"{verified.notice["subject"]}"'
            )

    async def _acknowledge(self, step: Callable[..., None], notice_id: str) -> None:
        step(
            "3. One acknowledges, the other does not",
            "the acknowledgement is signed over the content digest",
        )
        async with self.recipient("mk-kumanovo-pcve") as pcve:
            acked = await pcve.ack(notice_id)
        self.say(
            f"   the P/CVE focal point acknowledged at {acked['acknowledged_at']}; "
            "the social-welfare centre stays silent"
        )

    async def _escalate(
        self, app: web.Application, step: Callable[..., None], notice_id: str
    ) -> int:
        step(
            "4. Escalation",
            "24 hours pass without an acknowledgement from the social-welfare centre",
        )
        self.clock.advance(timedelta(hours=25))
        result = await app[ESCALATION].tick(self.clock.now())
        async with self.recipient("mk-kumanovo-mayor") as mayor:
            verified = await mayor.read(notice_id)
        self.say(
            f"   {result.escalated} escalation: the Mayor of Kumanovo received it (re-wrapped from the "
            f'broker\'s escrow, an audited use), decrypted it and verified: "{verified.notice["subject"]}"'
        )
        return int(result.escalated)

    async def _elsewhere(self, step: Callable[..., None], notice_id: str) -> str:
        step(
            "5. Sarajevo received nothing",
            "institutional routing: only Kumanovo's roles are in scope",
        )
        async with self.recipient("ba-fbih-ks-sarajevo-pcve") as sarajevo:
            items = (await sarajevo.inbox())["items"]
            try:
                await sarajevo.read(notice_id)
                denied = "READ IT (this must never happen)"
            except RecipientError as e:
                denied = f"answered {e.status}, as for a notice that does not exist"
        self.say(
            f"   Sarajevo's P/CVE focal point: {len(items)} notices in the inbox; asking for this one {denied}"
        )
        return denied

    async def _status(self, step: Callable[..., None], notice_id: str) -> None:
        step("6. The sender sees", "delivery and acknowledgement per role, never the persons")
        async with self.sender("mk-mvr") as ministry:
            status = (await ministry.status(notice_id)).body
        for role in status["roles"]:
            self.say(f"   {role['role_title']}: {role['state']}")

    async def _audit(self, step: Callable[..., None], notice_id: str) -> tuple[bool, list[bytes]]:
        step(
            "7. An auditor verifies",
            "North Macedonia's ombudsperson exports the log through the API and "
            "checks every event against a signed checkpoint",
        )
        async with self.recipient("mk-ombudsman-auditor") as auditor:
            lines = [line async for line in auditor.audit_export()]
        header, events = read_export(lines)
        events = list(events)
        verdict = verify_export(header, events)
        self.say(f"   {'OK' if verdict.ok else 'FAILED'}: {verdict.message}")
        self.say("   who saw what, and by which rule:")
        for event in (json.loads(e) for e in events):
            if event.get("object") == f"notice:{notice_id}":  # hidden lines have none
                for why in _whys(event):
                    self.say(
                        f"     #{event['seq']:<3} {event['actor']:<36} {event['action']:<22} {why}"
                    )
        sarajevo_events = [
            e
            for e in events
            if b"sarajevo" in e and notice_id.encode() in e and b"fetch_refused" not in e
        ]
        self.say(f"   events giving Sarajevo any part of this notice: {len(sarajevo_events)}")
        return verdict.ok, sarajevo_events


def _whys(event: dict[str, Any]) -> list[str]:
    """One line per recipient of a ``notice.routed`` event (it lists them all), else one."""
    recipients = (event.get("details") or {}).get("recipients")
    if event.get("action") != "notice.routed" or not isinstance(recipients, list):
        return [_why(event)]
    return [_why({"details": r, "policies": r.get("policies")}) for r in recipients] or [""]


def _why(event: dict[str, Any]) -> str:
    details = event.get("details") or {}
    parts = [f"{k}={details[k]}" for k in ("role", "rule", "via") if details.get(k)]
    if event.get("policies") and not details.get("rule"):
        parts.append("policy=" + ",".join(event["policies"]))
    if event.get("reason"):
        parts.append(f"reason={event['reason']}")
    return ", ".join(parts)


def _steps(say: Callable[[str], None]) -> Callable[..., None]:
    def step(title: str, text: str) -> None:
        say(f"\n== {title}: {text}")

    return step


async def run_demo(say: Callable[[str], None], keep: Path | None = None) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix="liaison-demo-"))
    try:
        return await Demo(keep or workdir / "data", say).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
