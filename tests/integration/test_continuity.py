"""Continuity: `liaison directory report`, and `directory apply` warning before it breaks a role.

Run as commands on a demo data directory: a directory change that leaves a routed role vacant,
a holder without an encryption key, a key removed and a role-kind typo is shown field by field
in the dry run, refused without --force, and once forced, the report names the vacancy. A notice
nobody acknowledged by its deadline is listed against its role (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.clock import FrozenClock
from tests.integration.intake_support import running_broker
from tests.integration.test_cli_answers import _cli
from tests.support import run_cli

KUMANOVO = "mk-kumanovo"
WARNINGS = [
    "warning: role mk-kumanovo.pcve-focal-point (P/CVE focal point, Kumanovo): "
    "no one acting has a usable encryption key",
    "warning: role mk-kumanovo.social-welfare-centre (Social-welfare centre, Kumanovo): vacant",
    "warning: role mk-kumanovo.mayor: kind 'mayr' is one no channel knows",
]


def _broken(demo: Path, tmp_path: Path) -> tuple[Path, str, datetime]:
    """The demo directory with the P/CVE focal point's X25519 key removed, the social-welfare
    centre's holder gone, a typo in the mayor's role kind and the council's key ending soon."""
    text = (demo / "directory.yaml").read_text()
    pcve_key = re.search(r", (\{id: (mk-kumanovo-pcve\.x25519\.[0-9a-f]+),[^}]*\})", text)
    assert pcve_key is not None
    text = text.replace(pcve_key.group(0), "")
    text = "\n".join(
        x for x in text.splitlines() if "contact: mk-kumanovo-swc, as: holder" not in x
    )
    mayor = "organisation: mk-kumanovo.municipality, kind: mayor, title: {en: 'Mayor, Kumanovo'"
    assert mayor in text
    text = text.replace(mayor, mayor.replace("kind: mayor", "kind: mayr"))
    ends = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    csc = re.search(r"\{id: mk-kumanovo-csc\.x25519\.[0-9a-f]+,[^}]*status: active", text)
    assert csc is not None
    until = ends.isoformat().replace("+00:00", "Z")
    text = text.replace(
        csc.group(0), csc.group(0) + f", from: '2026-01-01T00:00:00Z', until: '{until}'"
    )
    path = tmp_path / "directory.yaml"
    path.write_text(text + "\n")
    return path, pcve_key.group(2), ends


def test_apply_warns_in_the_dry_run_refuses_without_force_and_the_report_names_the_vacancy(
    demo_dir: Path, tmp_path: Path
) -> None:
    changed, removed_key, ends = _broken(demo_dir, tmp_path)
    before = run_cli("directory", "show", "--data", demo_dir, "--json").stdout
    assert "0 need attention" in run_cli("directory", "report", "--data", demo_dir).stdout
    dry = run_cli("directory", "apply", changed, "--data", demo_dir, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "~ role mk-kumanovo.mayor\n    kind: 'mayor' -> 'mayr'\n" in dry.stdout
    assert f"~ contact mk-kumanovo-pcve\n    keys: - {removed_key}\n" in dry.stdout
    assert "    keys: ~ mk-kumanovo-csc.x25519." in dry.stdout  # what changed inside that key
    for warning in [*WARNINGS, f"warning: 1 key(s) removed with no replacement: {removed_key}"]:
        assert warning in dry.stderr.splitlines()
    refused = run_cli("directory", "apply", changed, "--data", demo_dir)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[-1] == (
        "liaison: refused: 4 warning(s) above; nothing was applied "
        "(fix the file, or apply it anyway with --force)"
    )
    assert run_cli("directory", "show", "--data", demo_dir, "--json").stdout == before
    forced = run_cli("directory", "apply", changed, "--data", demo_dir, "--force")
    assert forced.returncode == 0 and "Applied directory revision 2" in forced.stdout

    text = run_cli("directory", "report", "--data", demo_dir, "--jurisdiction", KUMANOVO)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "Kumanovo [municipality, mk-kumanovo]"
    assert "  Social-welfare centre, Kumanovo [mk-kumanovo.social-welfare-centre]: VACANT" in lines
    assert "    ! vacant" in lines
    assert "    ! no one acting has a usable encryption key" in lines
    assert lines[-1] == "3 routed role(s) in 1 jurisdiction(s); 3 need attention."
    report = json.loads(
        run_cli(
            "directory", "report", "--data", demo_dir, "--jurisdiction", KUMANOVO, "--json"
        ).stdout
    )
    roles = {r["role"]: r for r in report["jurisdictions"][0]["roles"]}
    assert "mk-kumanovo.mayor" not in roles  # no channel routes to kind 'mayr'
    assert roles["mk-kumanovo.social-welfare-centre"]["problems"] == ["vacant"]
    council = roles["mk-kumanovo.community-safety-council"]
    assert council["ending"] and council["ending"][0].endswith(
        "ends " + ends.isoformat().replace("+00:00", "Z")
    )
    unknown = run_cli("directory", "report", "--data", demo_dir, "--jurisdiction", "atlantis")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "liaison: no jurisdiction 'atlantis' in the directory"


async def test_the_report_lists_notices_past_their_acknowledgement_deadline(
    demo_dir: Path, database_url: str
) -> None:
    from tests.integration.intake_support import example

    clock = FrozenClock(datetime.now(UTC) - timedelta(hours=25))  # posted yesterday
    async with running_broker(demo_dir, database_url, clock=clock) as broker:
        async with broker.sender("mk-mvr", clock) as sender:
            posted = await sender.post_notice(example("returnee-repatriation"))
        notice_id = posted.body["id"]
        async with broker.recipient("mk-kumanovo-pcve", clock) as pcve:
            await pcve.ack(notice_id)
    env = ["--data", demo_dir, "--jurisdiction", KUMANOVO, "--json"]
    code, out, err = await _cli_env(database_url, "directory", "report", *env)
    assert code == 0, err
    roles = {r["role"]: r for r in json.loads(out)["jurisdictions"][0]["roles"]}
    assert roles["mk-kumanovo.pcve-focal-point"]["overdue"] == []  # acknowledged in time
    [late] = roles["mk-kumanovo.social-welfare-centre"]["overdue"]
    assert late.startswith(f"{notice_id} on returnee-repatriation, due ")


async def _cli_env(database_url: str, *args: str | Path) -> tuple[int, str, str]:
    import os

    previous = os.environ.get("LIAISON_DATABASE_URL")
    os.environ["LIAISON_DATABASE_URL"] = database_url
    try:
        return await _cli(*args)
    finally:
        if previous is None:
            del os.environ["LIAISON_DATABASE_URL"]
        else:
            os.environ["LIAISON_DATABASE_URL"] = previous
