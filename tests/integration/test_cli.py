"""The `liaison` command, run as a process the way an administrator runs it."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

from tests.conftest import POLICIES
from tests.support import run_cli, start_watch, stop_watch


def test_init_demo_creates_a_working_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    result = run_cli("init", data, "--demo")
    assert result.returncode == 0, result.stderr
    assert "Start it with:  liaison serve --data" in result.stdout
    keys = data / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    pem = keys / "mk-mvr.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert (keys / "mk-kumanovo-pcve.pem").exists() and (
        keys / "mk-kumanovo-pcve.x25519.pem"
    ).exists()
    assert (data / "policies" / "channels" / "returnee-repatriation.yaml").exists()
    assert not (data / "policies" / "demo").exists()
    directory_text = (data / "directory.yaml").read_text()
    assert "PRIVATE" not in directory_text and "mk-mvr.ed25519." in directory_text


def test_init_refuses_an_existing_data_directory(demo_dir: Path) -> None:
    result = run_cli("init", demo_dir)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"liaison: {demo_dir} is already a Liaison data directory (it has liaison.toml)"
    )


def test_init_without_demo_is_empty_and_ready(tmp_path: Path) -> None:
    data = tmp_path / "empty"
    assert run_cli("init", data).returncode == 0
    shown = run_cli("directory", "show", "--data", data, "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["jurisdictions"] == []


def test_directory_show_json_has_the_jurisdiction_tree(demo_dir: Path) -> None:
    result = run_cli("directory", "show", "--data", demo_dir, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    ba = next(n for n in document["tree"] if n["id"] == "ba")
    fbih = next(n for n in ba["children"] if n["id"] == "ba-fbih")
    canton = next(n for n in fbih["children"] if n["id"] == "ba-fbih-ks")
    assert {m["name"] for m in canton["children"]} == {"Sarajevo", "Ilidža", "Vogošća"}
    assert any(n["id"] == "ba-brcko" for n in ba["children"])


def test_directory_show_text(demo_dir: Path) -> None:
    result = run_cli("directory", "show", "--data", demo_dir)
    assert "Kumanovo [municipality, mk-kumanovo]  (4 roles)" in result.stdout
    assert "61 jurisdictions" in result.stdout


def test_a_malformed_directory_file_is_refused_and_nothing_changes(
    demo_dir: Path, tmp_path: Path
) -> None:
    before = run_cli("directory", "show", "--data", demo_dir, "--json").stdout
    broken = tmp_path / "directory.yaml"
    lines = (demo_dir / "directory.yaml").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "id: mk-kumanovo," in line)
    lines[index] = lines[index].replace("parent: mk-northeast", "parent: mk-atlantis")
    broken.write_text("\n".join(lines) + "\n")
    result = run_cli("directory", "apply", broken, "--data", demo_dir)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{broken}:{index + 1}: unknown parent jurisdiction 'mk-atlantis'",
        "liaison: refused (1 problem); nothing was changed",
    ]
    assert run_cli("directory", "show", "--data", demo_dir, "--json").stdout == before


def test_directory_apply_shows_changes_and_dry_run_changes_nothing(
    demo_dir: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "directory.yaml"
    changed.write_text(
        (demo_dir / "directory.yaml")
        .read_text()
        .replace("Municipality of Kumanovo", "Opština Kumanovo")
    )
    dry = run_cli("directory", "apply", changed, "--data", demo_dir, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines() == [
        "~ organisation mk-kumanovo.municipality",
        "    name.en: 'Municipality of Kumanovo' -> 'Opština Kumanovo'",
        "Dry run: 0 added, 0 removed, 1 changed; nothing applied.",
    ]
    # The municipality's names are signed in the key bindings: the change is not signed yet.
    assert "clients show the signed names until administrators sign new bindings" in dry.stderr
    real = run_cli("directory", "apply", changed, "--data", demo_dir)
    assert (
        real.stdout.splitlines()[-1]
        == "Applied directory revision 2: 0 added, 0 removed, 1 changed."
    )
    assert (
        run_cli("directory", "apply", changed, "--data", demo_dir).stdout.strip() == "No changes."
    )


def test_commands_outside_a_data_directory_say_what_to_do(tmp_path: Path) -> None:
    result = run_cli("directory", "show", "--data", tmp_path / "nope")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"liaison: {tmp_path / 'nope'} is not a Liaison data directory (run `liaison init {tmp_path / 'nope'}` first)"
    )
    assert "Traceback" not in result.stderr


def test_policy_check_passes_on_the_shipped_policies() -> None:
    result = run_cli("policy", "check", POLICIES)
    assert result.returncode == 0, result.stderr
    assert "5 channels, 22 Cedar policies, valid (sha256:" in result.stdout


def test_policy_check_refuses_a_set_with_no_channel_unless_told(tmp_path: Path) -> None:
    flat = tmp_path / "flat"  # what a ConfigMap mounted without its items makes of the folder
    flat.mkdir()
    for path in (*POLICIES.glob("*.cedar"), *(POLICIES / "channels").glob("*.yaml")):
        shutil.copy(path, flat / path.name)
    result = run_cli("policy", "check", flat)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"liaison: {flat}: no channel in {flat / 'channels'}; hate-incident.yaml, "
        "information-request.yaml, public-safety-alert.yaml, returnee-repatriation.yaml, "
        "threat-assessment.yaml at the top level would be read only in channels/ "
        "(--allow-empty to accept that)"
    )
    allowed = run_cli("policy", "check", flat, "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr
    assert ": 0 channels, " in allowed.stdout and "valid" in allowed.stdout


def test_policy_check_on_a_broken_copy_prints_file_line_reason(tmp_path: Path) -> None:
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    channel = copy / "channels" / "hate-incident.yaml"
    channel.write_text(channel.read_text().replace("marking: AMBER", "marking: PURPLE"))
    (copy / "guards.cedar").write_text(
        (copy / "guards.cedar").read_text()
        + '\n@id("x") permit (principal, action, resource) when { };\n'
    )
    result = run_cli("policy", "check", copy)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    marking_line = next(
        i
        for i, text in enumerate(channel.read_text().splitlines(), 1)
        if text.startswith("marking:")
    )
    assert lines[0].startswith(
        f"policies/channels/hate-incident.yaml:{marking_line}: marking: 'PURPLE' is not one of"
    )
    assert lines[1].startswith("policies/guards.cedar:") and "Cedar syntax" in lines[1]
    assert lines[-1] == "liaison: refused (2 problems); nothing was changed"


def test_explain_kumanovo_returnee_notice(demo_dir: Path) -> None:
    result = run_cli(
        "policy",
        "explain",
        "--data",
        demo_dir,
        POLICIES / "examples" / "returnee-repatriation.json",
        "--as",
        "mk-mvr",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["publish"] == {
        "allowed": True,
        "policy_ids": ["channel/returnee-repatriation/publish"],
    }
    assert [(r["role"], r["rule"]) for r in report["recipients"]] == [
        ("mk-kumanovo.pcve-focal-point", "municipal-pcve-focal-point"),
        ("mk-kumanovo.social-welfare-centre", "municipal-social-welfare"),
    ]
    assert all(r["jurisdiction"] == "mk-kumanovo" for r in report["recipients"])
    assert {(n["role"], n["reason"]) for n in report["not_reached"]} == {
        ("mk-kumanovo.mayor", "escalation_only"),
        ("mk-kumanovo.community-safety-council", "not_selected"),
    }
    assert report["payload_violations"] == []
    text = run_cli(
        "policy",
        "explain",
        "--data",
        demo_dir,
        POLICIES / "examples" / "returnee-repatriation.json",
    ).stdout
    assert "Would receive (2):" in text and "Sarajevo" not in text


def test_explain_canton_threat_assessment_stays_in_the_canton(demo_dir: Path) -> None:
    result = run_cli(
        "policy",
        "explain",
        "--data",
        demo_dir,
        POLICIES / "examples" / "threat-assessment.json",
        "--as",
        "ba-fbih-ks-mup",
        "--json",
    )
    report = json.loads(result.stdout)
    assert {r["jurisdiction"] for r in report["recipients"]} == {
        "ba-fbih-ks-sarajevo",
        "ba-fbih-ks-ilidza",
        "ba-fbih-ks-vogosca",
    }
    assert len(report["recipients"]) == 6


def test_every_shipped_example_is_accepted_by_explain(demo_dir: Path) -> None:
    senders = {
        "returnee-repatriation": "mk-mvr",
        "threat-assessment": "ba-fbih-ks-mup",
        "hate-incident": "me-uzp",
        "information-request": "al-shkoder.municipality",
    }
    for example in sorted((POLICIES / "examples").glob("*.json")):
        result = run_cli(
            "policy",
            "explain",
            "--data",
            demo_dir,
            example,
            "--as",
            senders[example.stem],
            "--json",
        )
        assert result.returncode == 0, (example, result.stderr)
        report = json.loads(result.stdout)
        assert report["publish"]["allowed"], example
        assert report["recipients"] and report["payload_violations"] == [], example


def test_explain_reports_payload_violations_with_pointers(demo_dir: Path, tmp_path: Path) -> None:
    notice = json.loads((POLICIES / "examples" / "returnee-repatriation.json").read_text())
    notice["body"]["names"] = ["Someone"]
    notice["body"]["adults"] = -1
    path = tmp_path / "n.json"
    path.write_text(json.dumps(notice))
    report = json.loads(run_cli("policy", "explain", "--data", demo_dir, path, "--json").stdout)
    assert {v["pointer"] for v in report["payload_violations"]} == {"/body/names", "/body/adults"}


def test_explain_refuses_a_malformed_notice(demo_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text('{"channel": "returnee-repatriation"}')
    result = run_cli("policy", "explain", "--data", demo_dir, path)
    assert result.returncode == 1 and result.stderr.startswith(
        "liaison: /: 'jurisdiction' is a required property"
    )
    path.write_text("{nope")
    assert "not valid JSON" in run_cli("policy", "explain", "--data", demo_dir, path).stderr


def test_keygen_writes_a_private_key_and_prints_the_public_entry(tmp_path: Path) -> None:
    out = tmp_path / "agency.pem"
    result = run_cli("keygen", "--type", "ed25519", "--out", out, "--owner", "mk-mvr")
    assert result.returncode == 0
    assert '"type": "ed25519"' in result.stdout and '"id": "mk-mvr.ed25519.' in result.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = run_cli("keygen", "--type", "ed25519", "--out", out)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    for command in ("init", "serve", "keygen", "directory", "policy"):
        assert command in result.stdout


def test_send_and_status_against_a_running_broker(demo_dir: Path) -> None:
    from tests.support import serve_process

    with serve_process(demo_dir) as (_, url):
        example = POLICIES / "examples" / "returnee-repatriation.json"
        sent = run_cli("send", example, "--data", demo_dir, "--as", "mk-mvr", "--url", url)
        assert sent.returncode == 0, sent.stderr
        assert (
            sent.stdout.startswith("Accepted notice ")
            and ": 2 recipient(s), policy sha256:" in sent.stdout
        )
        notice_id = sent.stdout.split()[2].rstrip(":")
        status = run_cli("status", notice_id, "--data", demo_dir, "--as", "mk-mvr", "--url", url)
        assert status.returncode == 0, status.stderr
        assert (
            "P/CVE focal point, Kumanovo [mk-kumanovo.pcve-focal-point]: pending" in status.stdout
        )
        keyid = json.loads(run_cli("directory", "show", "--data", demo_dir, "--json").stdout)
        mvr = next(o for o in keyid["organisations"] if o["id"] == "mk-mvr")["keys"][0]["id"]
        explicit = run_cli(
            "send",
            example,
            "--url",
            url,
            "--key",
            demo_dir / "keys" / "mk-mvr.pem",
            "--keyid",
            mvr,
            "--json",
        )
        assert explicit.returncode == 0 and json.loads(explicit.stdout)["recipient_count"] == 2
        refused = run_cli("send", example, "--data", demo_dir, "--as", "mk-bjb", "--url", url)
        assert refused.returncode == 1
        assert (
            refused.stderr.strip()
            == "liaison: 403 forbidden: this agency may not publish this notice "
            "(no policy permits mk-bjb to publish on returnee-repatriation for mk-kumanovo)"
        )
        other = run_cli("status", notice_id, "--data", demo_dir, "--as", "mk-anb", "--url", url)
        assert other.returncode == 1 and "404 not_found" in other.stderr


def test_send_without_a_broker_fails_in_one_line(demo_dir: Path) -> None:
    from tests.support import free_port

    result = run_cli(
        "send",
        POLICIES / "examples" / "returnee-repatriation.json",
        "--data",
        demo_dir,
        "--as",
        "mk-mvr",
        "--url",
        f"http://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 1
    assert (
        result.stderr.startswith("liaison: broker unreachable") and "Traceback" not in result.stderr
    )


def test_the_recipient_story_with_the_cli(demo_dir: Path) -> None:

    from tests.support import LIAISON, serve_process

    with serve_process(demo_dir) as (_, url):
        common = ["--data", str(demo_dir), "--url", url]
        watcher = start_watch([*LIAISON, "watch", *common, "--as", "mk-kumanovo-swc"])
        try:
            import time

            time.sleep(1.5)  # let the stream connect
            sent = run_cli(
                "send",
                POLICIES / "examples" / "returnee-repatriation.json",
                *common,
                "--as",
                "mk-mvr",
            )
            notice_id = sent.stdout.split()[2].rstrip(":")
            inbox = run_cli("inbox", *common, "--as", "mk-kumanovo-pcve")
            assert (
                inbox.returncode == 0
                and notice_id in inbox.stdout
                and "TLP:AMBER+STRICT" in inbox.stdout
            )
            read = run_cli("read", notice_id, *common, "--as", "mk-kumanovo-pcve")
            assert read.returncode == 0, read.stderr
            assert (
                "Signed by Ministry of Interior of North Macedonia" in read.stdout
                and ": verified" in read.stdout
            )
            assert "Repatriation of two families to Kumanovo" in read.stdout
            ack = run_cli(
                "ack", notice_id, *common, "--as", "mk-kumanovo-pcve", "--reply", "Places reserved."
            )
            assert ack.returncode == 0 and ack.stdout.startswith(f"Acknowledged {notice_id} at ")
            status = run_cli("status", notice_id, *common, "--as", "mk-mvr")
            assert "[mk-kumanovo.pcve-focal-point]: acknowledged" in status.stdout
            assert (
                "reply from mk-kumanovo.pcve-focal-point" in status.stdout
                and "'Places reserved.'" in status.stdout
            )
            nothing = run_cli("inbox", *common, "--as", "ba-fbih-ks-sarajevo-pcve")
            assert nothing.stdout.strip() == "No notices."
            denied = run_cli("read", notice_id, *common, "--as", "ba-fbih-ks-sarajevo-pcve")
            assert denied.returncode == 1 and "404 not_found" in denied.stderr
            time.sleep(1)
        finally:
            out = stop_watch(watcher)
        assert notice_id in out and "returnee-repatriation" in out


def test_liaison_demo_runs_to_the_end(tmp_path: Path) -> None:
    result = run_cli("demo", "--keep", tmp_path / "kept", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in (
        "== 1. An agency posts",
        "directory root pinned by every client: 2-of-2 demo administrators",
        "signed by Ministry of Interior of North Macedonia (key bound in the signed directory), verified",
        "the P/CVE focal point acknowledged at",
        "1 escalation: the Mayor of Kumanovo received it",
        "Sarajevo's P/CVE focal point: 0 notices in the inbox; asking for this one answered 404",
        "OK: verified",
        "rule=municipal-pcve-focal-point",
        "rule=municipal-social-welfare",
        "events giving Sarajevo any part of this notice: 0",
        "== Done",
    ):
        assert expected in out, expected
    assert (tmp_path / "kept" / "liaison.toml").exists()


def test_audit_export_and_verify_with_the_cli(demo_dir: Path, tmp_path: Path) -> None:
    from tests.support import serve_process

    with serve_process(demo_dir) as (_, url):
        common = ["--data", str(demo_dir), "--url", url]
        run_cli(
            "send", POLICIES / "examples" / "returnee-repatriation.json", *common, "--as", "mk-mvr"
        )
        live = run_cli("audit", "verify", *common, "--as", "mk-ombudsman-auditor")
        assert live.returncode == 0 and live.stdout.startswith("OK: verified"), live.stderr
        denied = run_cli("audit", "verify", *common, "--as", "mk-kumanovo-pcve")
        assert denied.returncode == 1 and "403 forbidden" in denied.stderr
    exported = tmp_path / "audit.jsonl"
    result = run_cli("audit", "export", "--data", demo_dir, "--out", exported)
    assert result.returncode == 0 and "events with their signed checkpoints" in result.stderr
    header = json.loads(exported.read_text().splitlines()[0])
    ok = run_cli("audit", "verify", exported, "--checkpoint-key", header["public_key"])
    assert ok.returncode == 0 and ok.stdout.startswith("OK: verified"), ok.stderr
    lines = exported.read_text().splitlines()
    lines[3] = lines[3].replace('"outcome":"ok"', '"outcome":"refused"')
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    bad = run_cli("audit", "verify", tampered)
    assert bad.returncode == 1
    assert (
        "liaison: audit log does NOT verify: event 3: altered (event 4 chains to a different hash)"
        in bad.stderr
    )


def test_send_a_cap_alert(demo_dir: Path) -> None:
    from tests.support import serve_process

    samples = Path(__file__).resolve().parents[1] / "data" / "cap"
    with serve_process(demo_dir) as (_, url):
        common = ["--data", str(demo_dir), "--url", url, "--as", "ba-fbih-ks-mup"]
        sent = run_cli("send", "--cap", samples / "private-flood.xml", *common, "--json")
        assert sent.returncode == 0, sent.stderr
        assert (
            json.loads(sent.stdout)["recipient_count"] == 6
        )  # 3 municipalities x (mayor, safety council)
        again = run_cli("send", "--cap", samples / "private-flood.xml", *common, "--json")
        assert (
            json.loads(again.stdout)["id"] == json.loads(sent.stdout)["id"]
        )  # same CAP id: same notice
        bad = run_cli("send", "--cap", samples / "unmapped-resource.xml", *common)
        assert bad.returncode == 1
        assert bad.stderr.strip().startswith(
            f"liaison: {samples / 'unmapped-resource.xml'}: alert/info/instruction: not valid CAP 1.2"
        )
        both = run_cli("send", "--cap", samples / "private-flood.xml", "x.json", *common)
        assert both.returncode == 1 and "give a NOTICE.json or --cap ALERT.xml" in both.stderr
