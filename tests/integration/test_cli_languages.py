"""The recipient's `liaison inbox` and `read` speak the language of the locale, against a real
broker: their own messages, and the names of channels, roles, places and the signing agency from
the policy and directory files (the API answers them in the Accept-Language asked)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from adapters.client.recipient import RecipientClient
from broker.crypto.keys import read_private_key
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
        # Names from the policy and directory files, in the CLI's language (Accept-Language).
        assert "  Репатријација на повратници [returnee-repatriation] · Куманово  " in line, line
        pcve = "Лице за контакт за спречување на насилен екстремизам, Куманово"
        assert line.endswith(f"(како {pcve})"), line
        albanian = run_cli("--lang", "sq", "inbox", *common, "--as", "mk-kumanovo-pcve")
        line = next(li for li in albanian.stdout.splitlines() if notice_id in li)
        assert "  Riatdhesimi i të kthyerve [returnee-repatriation] · Kumanovë  " in line, line
        assert "Pika e kontaktit për parandalimin e ekstremizmit të dhunshëm, Kumanovë" in line
        status = run_cli("status", notice_id, *common, "--as", "mk-mvr", env=locale("mk_MK"))
        assert f"  {pcve} [mk-kumanovo.pcve-focal-point]: " in status.stdout, status.stdout
        assert "на Репатријација на повратници [returnee-repatriation]" in status.stdout
        assert asyncio.run(_names_over_the_api(demo_dir, url, notice_id)) == EXPECTED
        empty = run_cli("inbox", *common, "--as", "ba-fbih-ks-sarajevo-pcve", env=locale("mk_MK"))
        assert empty.stdout.strip() == "Нема известувања."

        read = run_cli("read", notice_id, *common, "--as", "mk-kumanovo-pcve", env=locale("sr_RS"))
        assert read.returncode == 0, read.stderr
        # The sender's name in Serbian Cyrillic, as the administrators signed it in the bindings.
        ministry = "Министарство унутрашњих послова Северне Македоније"
        signed = next(li for li in read.stdout.splitlines() if ministry in li)
        assert signed.startswith(f"Потписао {ministry} (кључ "), signed
        assert signed.endswith("): проверено према потписаном именику")
        assert "  Репатријација повратника [returnee-repatriation] · Куманово  " in read.stdout
        assert "Repatriation of two families to Kumanovo" in read.stdout  # the notice as sent
        # The body one field a line, labelled from the channel's file in the reader's language.
        body = read.stdout.splitlines()[-5:]
        assert body == [
            "Одрасли: 3",
            "Деца: 5",
            "Период доласка: Од: 2026-12-14; До: 2026-12-20",
            "Потребе за подршком: Психосоцијална, Образовање, Здравство, Становање",
            "Улога за везу у агенцији: mk-mvr.liaison-officer",
        ], read.stdout

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
        assert "Signed by Ministry of Interior of North Macedonia (key " in flag.stdout
        assert "  Returnee repatriation [returnee-repatriation] · Kumanovo  " in flag.stdout
        assert "\nSupport needs: Psychosocial, Education, Health, Housing\n" in flag.stdout
        as_json = run_cli(
            "inbox", *common, "--as", "ba-fbih-ks-sarajevo-pcve", "--json", env=locale("mk_MK")
        )
        assert json.loads(as_json.stdout)["items"] == []


EXPECTED = {
    "mk": ("Репатријација на повратници", "Куманово", "Возрасни", "Психосоцијална"),
    "sq": ("Riatdhesimi i të kthyerve", "Kumanovë", "Të rritur", "Psikosociale"),
    None: ("Returnee repatriation", "Kumanovo", "Adults", "Psychosocial"),
}


async def _names_over_the_api(
    demo_dir: Path, url: str, notice_id: str
) -> dict[str | None, tuple[str, ...]]:
    """The inbox item's and the fetched notice's names and labels for each Accept-Language."""
    keys = demo_dir / "keys"
    signing = read_private_key(keys / "mk-kumanovo-pcve.pem", expected="ed25519")
    own = read_private_key(keys / "mk-kumanovo-pcve.x25519.pem", expected="x25519")
    found: dict[str | None, tuple[str, ...]] = {}
    for language in EXPECTED:
        async with RecipientClient(url, "mk-kumanovo-pcve", signing, own, language=language) as c:
            item = next(i for i in (await c.inbox())["items"] if i["notice_id"] == notice_id)
            fetched = await c._request("GET", f"/v1/notices/{notice_id}")
        assert fetched["channel_title"] == item["channel_title"]
        found[language] = (
            item["channel_title"],
            item["jurisdiction_name"],
            fetched["labels"]["fields"]["adults"],
            fetched["labels"]["values"]["psychosocial"],
        )
    return found


def test_a_refusal_is_one_line_in_the_chosen_language(demo_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "directory.yaml"
    text = (demo_dir / "directory.yaml").read_text()
    broken.write_text(text.replace("parent: mk-northeast", "parent: mk-atlantis", 1))
    result = run_cli("directory", "apply", broken, "--data", demo_dir, env={"LIAISON_LANG": "cnr"})
    assert result.returncode == 1
    assert (
        result.stderr.splitlines()[-1] == "liaison: odbijeno (1 problem); ništa nije promijenjeno"
    )
