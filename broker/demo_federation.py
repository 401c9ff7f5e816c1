"""``liaison demo --federation``: Kosovo, the regional hub and North Macedonia on loopback.

The region (broker/demo_region.py) is a declared list of brokers and peerings; each broker is a
``liaison serve`` process with a data directory of its own, and the peer files each side keeps
are written from the keys and roots the other generated. The story: a Kosovo ministry posts a
returnee notice for Kumanovo on Kosovo's broker — TLP:AMBER+STRICT, so it crosses under the
bilateral agreement, never through the hub — and Kosovo Police post a hate-incident notice for
Kumanovo, which the hub relays (holding metadata only once it is delivered); Kumanovo's focal
point, on North Macedonia's broker, decrypts both and verifies each agency's signature against
the Kosovo root it pinned for xk; the acknowledgements reach Prishtina, one through the hub;
each broker's auditor verifies its log with every peer's cosignature, and Kosovo's follows the
returnee notice through both logs. Real time, real processes: the brokers' own workers forward,
relay, report and cosign. ``once``: stop when the story is told; else the brokers keep running
for the user until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from adapters.client.errors import RecipientError, VerificationFailed
from adapters.client.recipient import RecipientClient
from adapters.client.sender import SenderClient, SenderError
from adapters.client.trust import PinnedRoot
from broker.crypto.keys import read_private_key
from broker.demo_region import (
    PEERINGS,
    REGION,
    RELAYED,
    BrokerSpec,
    Member,
    Peering,
    write_peer_files,
)
from broker.service.setup import DIRECTORY_FILE, SHIPPED_POLICIES, init_data_dir
from broker.trust.files import resign_demo_bindings

EXAMPLE = SHIPPED_POLICIES / "examples" / "returnee-repatriation.json"
RELAYED_EXAMPLE = SHIPPED_POLICIES / "examples" / f"{RELAYED}.json"
AGENCY = "xk-mpb"  # the Ministry of Internal Affairs of Kosovo
POLICE = "xk-kp"  # Kosovo Police
# What the narration shows of the hub's relay events (ids of peers and agreements, a digest).
HUB_DETAILS = ("from_peer", "relay_to", "to_peer", "received_under", "sent_under", "purpose",
               "escrow_wrap_kept", "ciphertext_sha256")  # fmt: skip
HUB_EVENTS = ("notice.received_from_peer", "notice.relayed", "escrow.used",
              "notice.relay_body_dropped", "notice.forwarded")  # fmt: skip
READER = "mk-kumanovo-pcve"  # Kumanovo's P/CVE focal point, on North Macedonia's broker
# The brokers' workers at a demo's pace: a checkpoint (and its cosigning) every second, and a
# forward retried after a second.
SERVE_ENV = {
    "LIAISON_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "1",
    "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1",
    "LIAISON_WEBHOOKS_MAX_BACKOFF_SECONDS": "2",
    "LIAISON_LOGGING_FORMAT": "json",
}
RETRY = b"try again after the next checkpoint"  # broker/audit/follow.py's words
DEADLINE = 60.0  # seconds for each wait (a start, a crossing, a report, a cosignature)
T = TypeVar("T")


class DemoFailed(Exception):
    """A step of the story did not happen within its deadline (the reason says which)."""


class FederationDemo:
    def __init__(
        self,
        root: Path,
        say: Callable[[str], None],
        region: tuple[BrokerSpec, ...] = REGION,
        peerings: tuple[Peering, ...] = PEERINGS,
    ) -> None:
        self.root = root
        self.say = say
        self.region = region
        self.peerings = peerings
        self.members: dict[str, Member] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- the region ------------------------------------------------------------------------
    async def start(self) -> None:
        _step(
            self.say,
            "Setting up",
            f"{len(self.region)} sovereign brokers on loopback, under {self.root} (DEMO below)",
        )
        now = datetime.now(UTC)
        for spec in self.region:
            member = Member(spec, self.root / spec.id, _free_port())
            # Its port and URL in its liaison.toml, so `--data DIR --as ID` reaches it.
            await init_data_dir(
                member.data, demo=True, now=now, environ={}, port=member.port, public_url=member.url
            )
            self.members[spec.id] = member
        files = write_peer_files(self.members, self.peerings)
        for member in self.members.values():
            # Each country's administrators sign its peers' roots with its key bindings: its
            # officials then verify a notice from abroad with only their own country's root.
            resign_demo_bindings(member.data, member.data / DIRECTORY_FILE, now=now)
        for member in self.members.values():
            self.say(
                f"   {member.spec.title} ({member.spec.id}): {member.url}, data {member.data}, "
                f"directory root {member.root_pin()[:23]}…"
            )
        for peering in self.peerings:
            self.say(
                f"   agreement {peering.agreement}: {peering.sender} may send {peering.channel} "
                f"({peering.marking}) to {', '.join(peering.to)}; {peering.receiver} receives it "
                f"within {', '.join(peering.within)}" + (", and relays it" if peering.relay else "")
            )
        self.say(
            f"   {len(files)} peer files, each pinning the other side's broker, escrow and log "
            "keys and its directory root: "
            + ", ".join(str(p.relative_to(self.root)) for p in files)
        )
        for member in self.members.values():
            self.procs[member.spec.id] = _serve(member)
        for member in self.members.values():
            await _until_ready(member, self.procs[member.spec.id])
        self.say("   every broker is serving; each witnesses its peers' logs")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def running(self) -> bool:
        return all(proc.poll() is None for proc in self.procs.values())

    # -- the story -------------------------------------------------------------------------
    async def story(self) -> bool:
        direct = next(p for p in self.peerings if not p.relay and p.sender != "hub")
        relay = next(p for p in self.peerings if p.relay)
        origin, destination = self.members[direct.sender], self.members[direct.receiver]
        hub = self.members[relay.receiver]
        returnee = await self._post(origin, direct)
        relayed = await self._post_relayed(origin, hub)
        roles = await self._cross(origin, {returnee: AGENCY, relayed: POLICE})
        await self._relay(hub, relayed)
        await self._read(origin, destination, hub, returnee, relayed)
        await self._acknowledge(origin, destination, [returnee, relayed], roles)
        verified = await self._verify()
        followed = await self._follow(origin, destination, hub, returnee, relayed)
        ok = verified and followed
        _step(
            self.say,
            "Done" if ok else "FAILED",
            "the story crossed a border, directly and through the hub, on this machine"
            if ok
            else "see above",
        )
        return ok

    async def _post(self, origin: Member, peering: Peering) -> str:
        notice = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        notice["jurisdiction"] = "mk-kumanovo"
        _step(
            self.say,
            "1. A Kosovo ministry posts",
            "the Ministry of Internal Affairs of Kosovo signs a returnee-repatriation notice for "
            "Kumanovo (RFC 9421, Ed25519) and posts it to Kosovo's own broker. It is "
            "TLP:AMBER+STRICT, which crosses only under a bilateral agreement between two "
            f"countries, never through the hub: it goes straight to {peering.receiver}",
        )
        async with _sender(origin, AGENCY) as ministry:
            posted = (await ministry.post_notice(notice)).body
        self._accepted(posted)
        return str(posted["id"])

    async def _post_relayed(self, origin: Member, hub: Member) -> str:
        notice = json.loads(RELAYED_EXAMPLE.read_text(encoding="utf-8"))
        notice["jurisdiction"] = "mk-kumanovo"
        _step(
            self.say,
            "2. Kosovo Police post through the hub",
            f"a {RELAYED} notice (TLP:AMBER) for Kumanovo: Kosovo's agreement with North "
            f"Macedonia does not cover it, its agreement with {hub.spec.title.lower()} does, "
            "so it goes to the hub",
        )
        async with _sender(origin, POLICE) as police:
            posted = (await police.post_notice(notice)).body
        self._accepted(posted)
        return str(posted["id"])

    def _accepted(self, posted: dict[str, Any]) -> None:
        forwarded = posted.get("forwarded") or {}
        self.say(
            f"   accepted: notice {posted['id']}, {posted['recipient_count']} recipients here; "
            f"for {forwarded.get('peer')} under agreement {forwarded.get('agreement')}: "
            f"{forwarded.get('state')} (the Kosovo broker holds only ciphertext)"
        )

    async def _cross(self, origin: Member, notices: dict[str, str]) -> list[str]:
        """Until each notice (id: its agency) is reported from abroad."""
        _step(
            self.say,
            "3. They cross",
            "the Kosovo broker forwards each signed with its broker key, the data key wrapped for "
            "the peer's escrow key; North Macedonia checks the agreement and the agency's "
            "signature, and routes each by its own policy to its own roles",
        )
        roles: list[str] = []
        for notice_id, sender in notices.items():

            async def abroad(notice_id: str = notice_id) -> dict[str, Any] | None:
                async with _sender(origin, notices[notice_id]) as agency:
                    status = (await agency.status(notice_id)).body
                foreign = [r for r in status["roles"] if r.get("foreign")]
                return status if foreign and status["abroad"]["forward"] == "sent" else None

            status = await _until(abroad, f"the first status report on {sender}'s {notice_id}")
            title = status["abroad"].get("peer_title") or status["abroad"]["peer"]
            self.say(f"   {notice_id}: forwarded to {title}: sent")
            for role in status["roles"]:
                if role.get("foreign"):
                    roles.append(str(role["role"]))
                    self.say(f"   [{role['role']}] (abroad, {role['peer']}): {role['state']}")
        return roles

    async def _relay(self, hub: Member, notice_id: str) -> None:
        _step(
            self.say,
            "4. The hub relays",
            "it routes nothing to roles of its own: it re-wraps the data key for North "
            "Macedonia's escrow key, forwards the notice with Kosovo's signature and directory "
            "unchanged, and once North Macedonia holds it drops the ciphertext and every wrap. "
            f"Its log, as {hub.spec.auditor} reads it (a relayed notice's events belong to "
            "the jurisdiction it is for, Kumanovo):",
        )
        wanted = ("notice.received_from_peer", "notice.relayed", "notice.relay_body_dropped")
        async with _recipient(hub, hub.spec.auditor, None) as auditor:

            async def logged() -> list[dict[str, Any]] | None:
                events = list((await auditor.audit_events(notice=notice_id))["events"])
                done = {e.get("action") for e in events} >= set(wanted)
                return events if done else None

            events = await _until(logged, "the hub to relay and drop its copy")
        for event in (e for e in events if e.get("action") in HUB_EVENTS):
            details = event.get("details") or {}
            shown = {k: details[k] for k in HUB_DETAILS if k in details}
            self.say(
                f"   {event['action']}  "
                + "  ".join(f"{k}={_shown(str(v), self.root)}" for k, v in shown.items())
            )
        self.say(
            "   the hub holds metadata only: routing fields, the agency's signature and digest, "
            "Kosovo's directory and the crossing rows; nothing it keeps opens the notice"
        )

    async def _read(
        self, origin: Member, destination: Member, hub: Member, returnee: str, relayed: str
    ) -> None:
        pin = origin.root_pin()
        _step(
            self.say,
            "5. Kumanovo's focal point reads them",
            "on their own device, with only North Macedonia's root pinned: decrypted, and each "
            "agency's signature verified with the key Kosovo's administrators bound, under the "
            f"Kosovo root ({pin[:23]}…) North Macedonia's administrators signed with their key "
            "bindings, whichever way the notice came",
        )
        async with _recipient(destination, READER, None) as reader:
            inbox = await reader.inbox()
            self.say(f"   {READER}: {len(inbox['items'])} notices in the inbox")
            for notice_id in (returnee, relayed):
                verified = await reader.read(notice_id)
                self.say(
                    f"   {notice_id}: signed by {verified.sender_name} "
                    f'(key {verified.sender_key_id}), verified; "{verified.notice["subject"]}"'
                )
        # A root the device pins itself for xk decides over the signed one: the hub's is not it.
        async with _recipient(destination, READER, {origin.spec.id: hub.root_pin()}) as wrong:
            await self._refused(wrong, relayed, "pinning the hub's root for xk instead")

    async def _refused(self, reader: RecipientClient, notice_id: str, how: str) -> None:
        try:
            await reader.read(notice_id)
        except VerificationFailed as e:
            self.say(f"   the same device {how} refuses: {e}")
            return
        self.say(f"   {how} it was shown as verified (this must never happen)")
        raise DemoFailed("a foreign notice verified without the origin's root pinned")

    async def _acknowledge(
        self, origin: Member, destination: Member, notices: list[str], roles: list[str]
    ) -> None:
        _step(
            self.say,
            "6. The acknowledgements reach Prishtina",
            "the focal point acknowledges each, signed over the content digest; North Macedonia "
            "reports each role's state back (roles and times, never persons), the relayed one "
            "through the hub",
        )
        async with _recipient(destination, READER, None) as reader:
            for notice_id in notices:
                acked = await reader.ack(notice_id)
                self.say(f"   {notice_id}: acknowledged in Kumanovo at {acked['acknowledged_at']}")
        sender = {notices[0]: AGENCY, notices[1]: POLICE}
        for notice_id in notices:

            async def reported(notice_id: str = notice_id) -> dict[str, Any] | None:
                async with _sender(origin, sender[notice_id]) as agency:
                    status = (await agency.status(notice_id)).body
                states = [r["state"] for r in status["roles"] if r.get("foreign")]
                return status if "acknowledged" in states else None

            status = await _until(reported, f"the acknowledgement of {notice_id} to reach Kosovo")
            self.say(f"   `liaison status {notice_id}` on the Kosovo broker ({sender[notice_id]}):")
            for role in status["roles"]:
                where = f" (abroad, {role['peer']})" if role.get("foreign") else ""
                self.say(f"     [{role['role']}]{where}: {role['state']}")

    async def _verify(self) -> bool:
        _step(
            self.say,
            "7. Each side's auditor verifies",
            "its own log against the log key pinned at enrolment, and that each peer cosigned a "
            "checkpoint of it (c2sp.org/tlog-cosignature)",
        )
        ok = True
        for member in self.members.values():
            peers = [self.members[p] for p in self.peers_of(member.spec.id)]
            await self._until_witnessed(member, peers)
            args = ["audit", "verify", *_auditor(member), "--checkpoint-key", _b64(member.log()[1])]
            for peer in peers:
                args += ["--peer", peer.url]
            self.say(f"   {member.spec.title}'s auditor ({member.spec.auditor}):")
            ok = await self._run(args) and ok
        return ok

    async def _follow(
        self, origin: Member, destination: Member, hub: Member, returnee: str, relayed: str
    ) -> bool:
        _step(
            self.say,
            "8. Following both notices through the logs",
            "each side's events with the other's ids, every one proved included in a checkpoint "
            "its neighbour on the way cosigned; the police notice through three logs, the hub's "
            "in the middle",
        )
        await self._until_witnessed(origin, [destination, hub])
        await self._until_witnessed(hub, [origin])
        await self._until_witnessed(destination, [origin, hub])
        direct = await self._run(_follow_args(origin, returnee, [destination]))
        through = await self._run(_follow_args(origin, relayed, [hub, destination]))
        return direct and through

    def peers_of(self, broker: str) -> list[str]:
        found = []
        for p in self.peerings:
            other = p.receiver if p.sender == broker else p.sender if p.receiver == broker else None
            if other is not None and other not in found:
                found.append(other)
        return found

    async def _until_witnessed(self, member: Member, peers: list[Member]) -> None:
        """Until every event of the log so far is under a checkpoint each peer cosigned."""
        async with _recipient(member, member.spec.auditor, None) as auditor:
            size = int((await auditor.audit_checkpoint(fresh=True))["size"])

            async def covered() -> bool | None:
                notes = await auditor.audit_checkpoints()
                return all(_cosigned_at(notes, p, size) for p in peers) or None

            await _until(covered, f"{member.spec.title}'s peers to cosign its log")

    async def _run(self, args: list[str]) -> bool:
        """Run a ``liaison`` command as the user would, and show it with its output. A follow
        that meets an event newer than the last cosigned checkpoint (a late status report) is
        run again after the next one, as its message says, within the deadline."""
        self.say("   $ liaison " + " ".join(_shown(a, self.root) for a in args))
        deadline = time.monotonic() + DEADLINE
        while True:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "broker.cli", "--lang", "en", *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            if proc.returncode == 0 or RETRY not in err or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        for line in (out + err).decode("utf-8", errors="replace").splitlines():
            if line.strip() and not line.startswith("note: the checkpoint key"):
                self.say(f"   {line}")
        return proc.returncode == 0


def _hints(demo: FederationDemo, say: Callable[[str], None]) -> None:
    """What to try while the brokers serve on (each data directory names its broker's URL)."""
    origin = demo.members[demo.peerings[0].sender]
    destination = demo.members[demo.peerings[-1].receiver]
    say("\nThe brokers keep running; try, in another terminal:")
    say(f"   liaison status NOTICE_ID --data {origin.data} --as {AGENCY}")
    say(f"   liaison inbox --data {destination.data} --as {READER}")
    for member in demo.members.values():
        peers = " ".join(f"--peer {demo.members[p].url}" for p in demo.peers_of(member.spec.id))
        say(f"   liaison audit verify --data {member.data} --as {member.spec.auditor} {peers}")
    say("Ctrl-C stops them.")


def _cosigned_at(notes: list[str], peer: Member, size: int) -> bool:
    """A served checkpoint of at least ``size`` carries ``peer``'s witness line."""
    from broker.federation.agreements import witness_name

    name = witness_name(peer.log()[0])
    for note in notes:
        lines = note.split("\n")
        big = len(lines) > 1 and lines[1].isdigit() and int(lines[1]) >= size
        if big and any(line.startswith(f"\u2014 {name} ") for line in lines):
            return True
    return False


def _shown(arg: str, root: Path) -> str:
    """An argument as the narration prints it: paths under the demo directory shortened."""
    if arg.startswith(str(root)):
        return "DEMO" + arg[len(str(root)) :]
    return arg[:12] + "…" if len(arg) > 40 else arg


def _auditor(member: Member) -> list[str]:
    return ["--data", str(member.data), "--url", member.url, "--as", member.spec.auditor]


def _follow_args(origin: Member, notice_id: str, way: list[Member]) -> list[str]:
    """``audit verify --follow`` from the origin's log through each broker on the notice's way."""
    args = ["audit", "verify", *_auditor(origin), "--checkpoint-key", _b64(origin.log()[1])]
    args += ["--follow", notice_id]
    for member in way:
        args += ["--peer", member.url, "--peer-data", str(member.data)]
        args += ["--peer-as", member.spec.auditor, "--peer-checkpoint-key", _b64(member.log()[1])]
    return args


def _step(say: Callable[[str], None], title: str, text: str) -> None:
    say(f"\n== {title}: {text}")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sender(member: Member, agency: str) -> SenderClient:
    pair = read_private_key(member.data / "keys" / f"{agency}.pem", expected="ed25519")
    return SenderClient.from_pem(member.url, pair.pem(), pair.key_id(agency), retries=0)


def _recipient(member: Member, contact: str, peer_roots: dict[str, str] | None) -> RecipientClient:
    keys = member.data / "keys"
    x25519 = keys / f"{contact}.x25519.pem"
    return RecipientClient(
        member.url,
        contact,
        read_private_key(keys / f"{contact}.pem", expected="ed25519"),
        read_private_key(x25519, expected="x25519") if x25519.exists() else None,
        trust=PinnedRoot.from_file(member.data / "trust" / "root.json"),
        peer_roots=peer_roots,
    )


def _serve(member: Member) -> subprocess.Popen[bytes]:
    """``liaison serve`` for one broker; its output to a file in its directory, never a pipe
    (a pipe nobody drains would block the broker)."""
    env = {**os.environ, **SERVE_ENV, "LIAISON_SERVER_PUBLIC_URL": member.url}
    with (member.data / "serve.log").open("wb") as sink:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "broker.cli", "serve", "--data", str(member.data),
             "--port", str(member.port), "--workers", "1"],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            # Its own session: Ctrl-C reaches the demo alone, which stops each broker in turn
            # (a broker that stopped first would fail the story's next call mid-step) ...
            start_new_session=True,
            preexec_fn=_die_with_demo(),
        )  # fmt: skip


def _die_with_demo() -> Callable[[], None] | None:
    """... and, should the demo itself be killed, the kernel stops its brokers: Linux's
    PR_SET_PDEATHSIG, set in the child before exec (elsewhere, None: they outlive a killed demo).
    The C function is looked up here, in the parent, so the child only calls it."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


async def _until_ready(member: Member, proc: subprocess.Popen[bytes]) -> None:
    async def ready() -> bool | None:
        if proc.poll() is not None:
            tail = (member.data / "serve.log").read_text(errors="replace")[-600:]
            raise DemoFailed(f"{member.spec.title} stopped (exit {proc.returncode}): {tail}")
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(member.url + "/readyz") as answer,
            ):
                return answer.status == 200 or None
        except (aiohttp.ClientError, TimeoutError):
            return None

    await _until(ready, f"{member.spec.title} to start", 0.2)


async def _until(check: Callable[[], Awaitable[T | None]], what: str, pause: float = 1.0) -> T:
    """Poll ``check`` until it gives something, within ``DEADLINE`` seconds (every poll of a
    notice's status is an audit event: once a second is plenty)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = await check()
        if found is not None:
            return found
        await asyncio.sleep(pause)
    raise DemoFailed(f"waited {DEADLINE:.0f} s for {what}")


async def run_federation_demo(
    say: Callable[[str], None], keep: Path | None = None, *, once: bool = True
) -> bool:
    """Tell the story; then, unless ``once``, keep the brokers serving until Ctrl-C."""
    workdir = None if keep is not None else Path(tempfile.mkdtemp(prefix="liaison-federation-"))
    demo = FederationDemo(keep or (workdir or Path()) / "region", say)
    try:
        await demo.start()
        ok = await demo.story()
        if ok and not once:
            _hints(demo, say)
            while demo.running():  # noqa: ASYNC110 - child processes have no event to await
                await asyncio.sleep(0.5)
        return ok
    except (DemoFailed, RecipientError, SenderError) as e:
        _step(say, "FAILED", str(e))
        return False
    finally:
        demo.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
