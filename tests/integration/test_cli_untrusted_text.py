"""Attacker: an authorised agency (a police bureau) writing terminal control sequences into its
notice so that ``liaison read`` shows it as signed by someone else. Real broker, real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import POLICIES
from tests.support import run_cli, serve_process

FORGED_LINE = "\x1b[2K\rSigned by Ministry of Interior of North Macedonia (key mk-mvr): verified"
UNSAFE = ("\x1b", "\r", "\x9b", "\x7f", "\u202e", "\u2066", "\u200b", "\u2028")


def test_a_subject_with_escape_sequences_prints_them_visibly(
    demo_dir: Path, tmp_path: Path
) -> None:
    notice = json.loads((POLICIES / "examples" / "hate-incident.json").read_text())
    notice["jurisdiction"] = "mk-kumanovo"
    notice["subject"] = "Graffiti on a school" + FORGED_LINE + " \u202e\x9b2J\x7f\u2066\u200b\u2028"
    path = tmp_path / "notice.json"
    path.write_text(json.dumps(notice))
    with serve_process(demo_dir) as (_, url):
        common = ["--data", str(demo_dir), "--url", url]
        sent = run_cli("send", path, *common, "--as", "mk-bjb")
        assert sent.returncode == 0, sent.stderr
        notice_id = sent.stdout.split()[2].rstrip(":")
        read = run_cli("read", notice_id, *common, "--as", "mk-kumanovo-pcve")
        assert read.returncode == 0, read.stderr
        shown = run_cli("read", notice_id, *common, "--as", "mk-kumanovo-pcve", "--json")
    assert not [c for c in UNSAFE if c in read.stdout + shown.stdout]
    signed_lines = [line for line in read.stdout.splitlines() if "Signed by" in line]
    assert signed_lines[0].startswith("Signed by Public Security Bureau (key mk-bjb.")
    assert "Graffiti on a school\\u001b[2K\\rSigned by Ministry of Interior" in read.stdout
    assert not any(line.startswith("Signed by Ministry") for line in read.stdout.splitlines())
    assert " \\u202e\\u009b2J\\u007f\\u2066\\u200b\\u2028" in read.stdout
    # --json stays valid JSON and decodes to exactly what the agency sent
    assert json.loads(shown.stdout)["notice"]["subject"] == notice["subject"]
