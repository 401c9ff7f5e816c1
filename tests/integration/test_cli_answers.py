"""What the `liaison` command says back, run as a process against a real broker on loopback:
the broker's reasons in full, exit codes that mean what they say, times that are the real ones,
an auditor's verification with only an auditor's key, and one line for a bad argument."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.clock import FrozenClock
from broker.http.keys import ESCALATION
from tests.conftest import POLICIES
from tests.integration.intake_support import running_broker
from tests.support import LIAISON, run_cli, serve_process, start_watch, stop_watch

EXAMPLE = POLICIES / "examples" / "returnee-repatriation.json"


def _notice_id(sent: subprocess.CompletedProcess[str]) -> str:
    assert sent.returncode == 0, sent.stderr
    return sent.stdout.split()[2].rstrip(":")


def test_send_prints_each_violation_with_its_pointer_and_a_403_with_its_reason(
    demo_dir: Path, tmp_path: Path
) -> None:
    bad = json.loads(EXAMPLE.read_text())
    bad["body"]["adults"] = "three"
    del bad["body"]["arrival_window"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with serve_process(demo_dir) as (_, url):
        common = ["--data", demo_dir, "--url", url]
        invalid = run_cli("send", path, *common, "--as", "mk-mvr")
        refused = run_cli("send", EXAMPLE, *common, "--as", "mk-bjb")
        # The same refusal in the CLI's language: the broker's sentence and its reason (as data).
        in_albanian = run_cli(
            "send", EXAMPLE, *common, "--as", "mk-bjb", env={"LIAISON_LANG": "sq"}
        )
    assert invalid.returncode == 1 and len(invalid.stderr.splitlines()) == 1
    line = invalid.stderr.strip()
    assert line.startswith("liaison: 422 payload_invalid: the notice does not match its schema (")
    assert "/body/adults: " in line and "arrival_window" in line
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "liaison: 403 forbidden: this agency may not publish this notice "
        "(no policy permits mk-bjb to publish on returnee-repatriation for mk-kumanovo)"
    )
    assert in_albanian.returncode == 1
    assert in_albanian.stderr.strip() == (
        "liaison: 403 forbidden: kjo agjenci nuk mund ta publikojë këtë njoftim (asnjë politikë "
        "nuk e lejon mk-bjb të publikojë në returnee-repatriation për mk-kumanovo)"
    )


def test_explain_as_an_agency_that_may_not_publish_exits_non_zero(demo_dir: Path) -> None:
    allowed = run_cli("policy", "explain", EXAMPLE, "--data", demo_dir, "--as", "mk-mvr")
    assert allowed.returncode == 0, allowed.stderr
    denied = run_cli("policy", "explain", EXAMPLE, "--data", demo_dir, "--as", "mk-bjb")
    assert denied.returncode == 1
    assert "Sender mk-bjb may NOT publish it" in denied.stdout
    assert denied.stderr.strip() == "liaison: mk-bjb may not publish this notice"
    as_json = run_cli("policy", "explain", EXAMPLE, "--data", demo_dir, "--as", "mk-bjb", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["publish"]["allowed"] is False


async def _cli(*args: str | Path) -> tuple[int, str, str]:
    """The command as a child process, awaited: the broker runs in this test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        *LIAISON,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_status_prints_when_a_role_escalated_not_when_it_was_delivered(
    demo_dir: Path, database_url: str
) -> None:
    start = datetime.now(UTC)
    clock = FrozenClock(start)
    async with running_broker(demo_dir, database_url, clock=clock) as broker:
        common = ["--data", demo_dir, "--url", broker.url, "--as", "mk-mvr"]
        code, out, err = await _cli("send", EXAMPLE, *common)
        assert code == 0, err
        notice_id = out.split()[2].rstrip(":")
        clock.advance(timedelta(hours=25))  # past the channel's acknowledgement deadline
        assert (await broker.app[ESCALATION].tick(clock.now())).escalated >= 1
        escalated_at = clock.now()
        clock.set(datetime.now(UTC))  # the CLI signs with the real time
        code, out, err = await _cli("status", notice_id, *common)
    assert code == 0, err
    line = next(x for x in out.splitlines() if "[mk-kumanovo.pcve-focal-point]" in x)
    assert line.split(": ", 1)[1] == "escalated " + escalated_at.isoformat().replace("+00:00", "Z")


def test_audit_verify_with_only_an_auditors_signing_key(demo_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "auditor-laptop"  # no data directory, no X25519 key, no LIAISON_DATA
    elsewhere.mkdir()
    key = elsewhere / "auditor.pem"
    key.write_bytes((demo_dir / "keys" / "mk-ombudsman-auditor.pem").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "LIAISON_DATA"}
    with serve_process(demo_dir) as (_, url):
        run_cli("send", EXAMPLE, "--data", demo_dir, "--url", url, "--as", "mk-mvr")
        argv = ["audit", "verify", "--url", url, "--as", "mk-ombudsman-auditor", "--key", key]
        ok = subprocess.run(
            [*LIAISON, *map(str, argv)], capture_output=True, text=True, cwd=elsewhere, env=env
        )
        header = run_cli("audit", "export", "--data", demo_dir).stdout.splitlines()[0]
        pinned = json.loads(header)["public_key"]
        pinned_ok = run_cli(*argv, "--checkpoint-key", pinned, cwd=elsewhere)
        typo = run_cli(*argv, "--checkpoint-key", pinned[:-3] + "!x=", cwd=elsewhere)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: verified"), ok.stderr
    assert pinned_ok.returncode == 0 and pinned_ok.stdout.startswith("OK: verified")
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    assert typo.stderr.strip().splitlines() == [
        "liaison: --checkpoint-key: not an Ed25519 public key (a verifier key from "
        "/v1/keys/log, or base64 of 32 bytes, as the export's header and /v1/audit/checkpoint "
        "give it)"
    ]


def test_a_mistyped_checkpoint_key_on_a_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("audit", "verify", tmp_path / "none.jsonl", "--checkpoint-key", "not-base64")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("liaison: --checkpoint-key: not an Ed25519 public key")


def _watch(common: list[str], *extra: str) -> subprocess.Popen[str]:
    return start_watch([*LIAISON, "watch", *common, "--as", "mk-kumanovo-pcve", *extra])


def _stop(watcher: subprocess.Popen[str]) -> str:
    return stop_watch(watcher)


def test_watch_starts_from_now_unless_given_a_last_event_id(demo_dir: Path) -> None:
    with serve_process(demo_dir) as (_, url):
        common = ["--data", str(demo_dir), "--url", url]
        earlier = _notice_id(run_cli("send", EXAMPLE, *common, "--as", "mk-mvr"))
        now, replay = _watch(common), _watch(common, "--last-event-id", "0")
        try:
            time.sleep(2)  # let both streams connect
            later = _notice_id(
                run_cli("send", EXAMPLE, *common, "--as", "mk-mvr", "--idempotency-key", "b")
            )
            time.sleep(2)
        finally:
            from_now, replayed = _stop(now), _stop(replay)
    assert later in from_now and earlier not in from_now
    assert earlier in replayed and later in replayed
