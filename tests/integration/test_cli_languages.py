"""The recipient's `liaison inbox` and `read` speak the language of the locale, against a real broker."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import POLICIES
from tests.support import run_cli, serve_process


def locale(lang: str) -> dict[str, str]:
    """Only ``LANG`` set, as on a desktop in Skopje or Belgrade (the others emptied)."""
    return {"LANG": lang, "LC_ALL": "", "LANGUAGE": "", "LIAISON_LANG": ""}


def test_inbox_and_read_in_macedonian_and_serbian_cyrillic(demo_dir: Path) -> None:
    with serve_process(demo_dir) as (_, url):
        common = ["--data", str(demo_dir), "--url", url]
        sent = run_cli(
            "send",
            POLICIES / "examples" / "returnee-repatriation.json",
            *common,
            "--as",
            "mk-mvr",
            env=locale("C.UTF-8"),
        )
        assert sent.returncode == 0 and sent.stdout.startswith("Accepted notice "), sent.stderr
        notice_id = sent.stdout.split()[2].rstrip(":")

        inbox = run_cli("inbox", *common, "--as", "mk-kumanovo-pcve", env=locale("mk_MK.UTF-8"))
        assert inbox.returncode == 0, inbox.stderr
        line = next(li for li in inbox.stdout.splitlines() if notice_id in li)
        assert line.endswith("(како mk-kumanovo.pcve-focal-point)"), line
        empty = run_cli("inbox", *common, "--as", "ba-fbih-ks-sarajevo-pcve", env=locale("mk_MK"))
        assert empty.stdout.strip() == "Нема известувања."

        read = run_cli("read", notice_id, *common, "--as", "mk-kumanovo-pcve", env=locale("sr_RS"))
        assert read.returncode == 0, read.stderr
        signed = next(li for li in read.stdout.splitlines() if "Ministry of Interior" in li)
        assert signed.startswith("Потписао Ministry of Interior of North Macedonia (кључ ")
        assert signed.endswith("): проверено према потписаном именику")
        assert "Repatriation of two families to Kumanovo" in read.stdout  # the notice as sent

        latin = run_cli(
            "read", notice_id, *common, "--as", "mk-kumanovo-pcve", env=locale("sr_RS@latin")
        )
        assert "provereno prema potpisanom imeniku" in latin.stdout
        # --lang wins over the locale; --json is for programs and stays as the API wrote it.
        flag = run_cli(
            "--lang",
            "en",
            "read",
            notice_id,
            *common,
            "--as",
            "mk-kumanovo-pcve",
            env=locale("mk_MK"),
        )
        assert ": verified against the signed directory" in flag.stdout
        as_json = run_cli(
            "inbox", *common, "--as", "ba-fbih-ks-sarajevo-pcve", "--json", env=locale("mk_MK")
        )
        assert json.loads(as_json.stdout)["items"] == []


def test_a_refusal_is_one_line_in_the_chosen_language(demo_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "directory.yaml"
    text = (demo_dir / "directory.yaml").read_text()
    broken.write_text(text.replace("parent: mk-northeast", "parent: mk-atlantis", 1))
    result = run_cli("directory", "apply", broken, "--data", demo_dir, env={"LIAISON_LANG": "cnr"})
    assert result.returncode == 1
    assert (
        result.stderr.splitlines()[-1] == "liaison: odbijeno (1 problem); ništa nije promijenjeno"
    )
