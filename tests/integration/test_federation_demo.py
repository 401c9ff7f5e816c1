"""``liaison demo --federation`` as a user runs it, and ``audit verify --follow`` on its brokers.

The demo is a subprocess that starts three real brokers on loopback (Kosovo, the regional hub,
North Macedonia) and tells the crossings: the returnee notice directly, a police notice through
the hub. Once with ``--once``: it must tell the whole story and exit 0. Once
interactively: while its brokers serve on, an auditor follows the notice through both logs from
the command line (and is refused with a wrong pinned key, or a notice that never crossed); then
Ctrl-C stops the demo and its brokers.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker.demo_region import REGION, Member
from tests.support import LIAISON, as_a_shell_starts_it, run_cli

STORY = (
    "== 1. A Kosovo ministry posts",
    "for mk under agreement xk-mk-2026-returnees: queued",
    "== 2. Kosovo Police post through the hub",
    "for hub under agreement xk-hub-2026: queued",
    ": forwarded to Broker of North Macedonia: sent",
    ": forwarded to Regional hub: sent",
    # The hub's own log: it relayed under both agreements, re-wrapped, and dropped its copy.
    "== 4. The hub relays",
    "   notice.received_from_peer  relay_to=mk\n",
    "   notice.relayed  from_peer=xk  to_peer=mk  received_under=xk-hub-2026#1  "
    "sent_under=mk-hub-2026#1\n",
    "   escrow.used  purpose=federation.relay  escrow_wrap_kept=False\n",
    "   notice.relay_body_dropped  to_peer=mk  ciphertext_sha256=",
    "mk-kumanovo-pcve: 2 notices in the inbox",
    "signed by Ministry of Internal Affairs of Kosovo (key xk-mpb.ed25519.",
    "signed by Kosovo Police (key xk-kp.ed25519.",
    "with only North Macedonia's root pinned",
    "pinning the hub's root for xk instead refuses: the notice's origin root sha256:",
    "[mk-kumanovo.pcve-focal-point] (abroad, mk): acknowledged",
    "[mk-kumanovo.pcve-focal-point] (abroad, hub): acknowledged",
    "== 7. Each side's auditor verifies",
    "Regional hub's auditor (mk-ombudsman-auditor):",
    "== 8. Following both notices through the logs",
    "notice.forward_queued  peer=mk",
    "peer:mk  notice.acknowledged_abroad  peer=mk",
    "peer:xk  notice.received_from_peer  peer=xk",
    "contact:mk-kumanovo-pcve  delivery.acknowledged",
    "== Done: the story crossed a border, directly and through the hub, on this machine",
)


def test_the_federation_demo_tells_the_crossing_and_exits(tmp_path: Path) -> None:
    result = run_cli("demo", "--federation", "--once", "--keep", tmp_path / "region", timeout=240)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for expected in STORY:
        assert expected in out, expected
    # Three auditors' `audit verify --peer` (each log cosigned by both its peers) and the two
    # follows (this log cosigned by the first log on the way).
    assert len(re.findall(r"^   OK: verified \d+ events", out, re.MULTILINE)) == 5
    cosigned = (
        r"^   OK: verified \d+ events .*; witnessed: size \d+ cosigned by .*; size \d+ cosigned by "
    )
    assert len(re.findall(cosigned, out, re.MULTILINE)) == 3
    assert "OK: followed " in out and "each included in a checkpoint the other side cosigned" in out
    # The police notice through the hub: Kosovo's log, the hub's (both halves), Kumanovo's.
    assert re.search(
        r"OK: followed [0-9a-f]{32} through 3 logs: \d+ events here, \d+ at hub, \d+ at mk,", out
    ), out
    assert "notice.relayed" in out.split("== 8.")[1]
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out)  # no raw control characters
    pairs = (("xk", "mk"), ("mk", "xk"), ("xk", "hub"), ("hub", "xk"), ("hub", "mk"), ("mk", "hub"))
    for peer, other in pairs:
        assert (tmp_path / "region" / peer / "policies" / "peers" / f"{other}.yaml").exists()


@contextmanager
def interactive(root: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The demo without --once, until it says the brokers keep running; killed if still up."""
    output = root.with_name("demo.out")
    with output.open("w") as sink:
        # Its own process group, as a shell starts it: Ctrl-C goes to the demo and its brokers.
        demo = subprocess.Popen(
            [*LIAISON, "demo", "--federation", "--keep", str(root)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=as_a_shell_starts_it,  # whatever the test worker's own signal state
        )
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops them." not in output.read_text():
            assert demo.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        yield demo, output.read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()


def _members(root: Path, output: str) -> dict[str, Member]:
    ports = dict(re.findall(r"\((\w+)\): http://127\.0\.0\.1:(\d+)", output))
    return {s.id: Member(s, root / s.id, int(ports[s.id])) for s in REGION}


def _follow(
    xk: Member, mk: Member, notice_id: str, peer_key: bytes
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "audit", "verify", "--data", xk.data, "--url", xk.url, "--as", xk.spec.auditor,
        "--checkpoint-key", base64.b64encode(xk.log()[1]).decode(), "--peer", mk.url,
        "--follow", notice_id, "--peer-data", mk.data, "--peer-as", mk.spec.auditor,
        "--peer-checkpoint-key", base64.b64encode(peer_key).decode(),
    )  # fmt: skip


def _until_cosigned(
    run: Callable[[], subprocess.CompletedProcess[str]],
) -> subprocess.CompletedProcess[str]:
    """A late status report may be newer than the last cosigned checkpoint: run again then."""
    deadline = time.monotonic() + 60
    while "try again after the next checkpoint" in (done := run()).stderr:
        assert time.monotonic() < deadline, done.stderr
        time.sleep(1)
    return done


def _follow_way(
    xk: Member, notice_id: str, way: list[Member], keys: list[bytes] | None = None
) -> subprocess.CompletedProcess[str]:
    args = ["audit", "verify", "--data", xk.data, "--url", xk.url, "--as", xk.spec.auditor]
    args += ["--checkpoint-key", base64.b64encode(xk.log()[1]).decode(), "--follow", notice_id]
    for member, key in zip(way, keys or [m.log()[1] for m in way], strict=True):
        args += ["--peer", member.url, "--peer-data", member.data, "--peer-as", member.spec.auditor]
        args += ["--peer-checkpoint-key", base64.b64encode(key).decode()]
    return run_cli(*args)


def test_an_auditor_follows_the_crossing_through_both_logs_and_ctrl_c_stops_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "region"
    with interactive(root) as (demo, text):
        members = _members(root, text)
        xk, mk = members["xk"], members["mk"]
        found = re.search(r"accepted: notice ([0-9a-f]{32})", text)
        assert found is not None
        notice_id = found.group(1)
        deadline = time.monotonic() + 60
        while True:  # a late status report may be newer than the last cosigned checkpoint
            followed = _follow(xk, mk, notice_id, mk.log()[1])
            if "try again after the next checkpoint" not in followed.stderr:
                break
            assert time.monotonic() < deadline, followed.stderr
            time.sleep(1)
        assert followed.returncode == 0, followed.stderr
        assert f"received as {notice_id}" in followed.stdout
        assert "notice.received_from_peer" in followed.stdout
        assert "notice.routed_abroad" in followed.stdout
        # The peer's log held to a key that did not sign it: nothing there counts.
        wrong = _follow(xk, mk, notice_id, xk.log()[1])
        assert wrong.returncode == 1
        assert wrong.stderr.startswith(
            "liaison: NOT followed: no checkpoint signed with the pinned log key"
        )
        # On Kosovo's broker the crossing is Kosovo's to audit: North Macedonia's ombudsperson
        # (whom that broker's demo directory also knows) sees none of its events there.
        foreign = run_cli(
            "audit", "verify", "--data", xk.data, "--as", mk.spec.auditor, "--peer", mk.url,
            "--checkpoint-key", base64.b64encode(xk.log()[1]).decode(), "--follow", notice_id,
            "--peer-data", mk.data, "--peer-as", mk.spec.auditor,
            "--peer-checkpoint-key", base64.b64encode(mk.log()[1]).decode(),
        )  # fmt: skip
        assert foreign.returncode == 1 and "NOT followed: no event of notice" in foreign.stderr
        # The police notice went through the hub: three logs, in the order it went.
        relayed = re.findall(r"accepted: notice ([0-9a-f]{32})", text)[1]
        hub = members["hub"]
        through = _until_cosigned(lambda: _follow_way(xk, relayed, [hub, mk]))
        assert through.returncode == 0, through.stderr
        assert f"The peer's log (hub, {hub.url}): notice " in through.stdout
        assert f"received as {relayed}" in through.stdout
        assert re.search(
            r"The peer's log \(mk, .*\): notice [0-9a-f]{32}, received as ", through.stdout
        )
        # Stopped at the hub, the follow says where the notice went on.
        at_hub = _until_cosigned(lambda: _follow_way(xk, relayed, [hub]))
        assert at_hub.returncode == 0, at_hub.stderr
        assert "note: hub relayed it on to mk as notice " in at_hub.stdout
        # The way in the wrong order: Kumanovo never received it from Kosovo's log.
        wrong_way = _follow_way(xk, relayed, [mk, hub])
        assert wrong_way.returncode == 1 and wrong_way.stderr.startswith("liaison: NOT followed")
        # The hub's log held to North Macedonia's log key: the middle log does not count.
        forged = _follow_way(xk, relayed, [hub, mk], keys=[mk.log()[1], mk.log()[1]])
        assert forged.returncode == 1
        assert "no checkpoint signed with the pinned log key" in forged.stderr
        # A notice that never crossed has no half abroad to follow.
        local = _follow(xk, mk, "0" * 32, mk.log()[1])
        assert local.returncode == 1 and "NOT followed: no event of notice" in local.stderr
        # Ctrl-C (to the demo's process group, as a terminal sends it) stops it and its brokers.
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=180) == 130  # three brokers drain; bounded, not timed
    for member in members.values():
        # A broker that stopped cleanly removed its pid file and control socket; none answers.
        assert not list((member.data / "run").iterdir()), member.spec.id
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", member.port), timeout=2).close()
