"""E-mail alerts in the language each contact has in the directory, through a real SMTP server.

Eight focal points in four municipalities are given the eight languages in the directory file
(some in the spellings people write: ``cnr-ME``, ``sr``, ``mk-MK``); the ministry posts a notice to
each municipality; the broker's outbox sends the alerts to a local aiosmtpd server, and each message
arrives in its reader's language: Serbian Cyrillic in Cyrillic, Croatian with its own words,
Montenegrin and Bosnian ijekavian, Serbian Latin ekavian.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller

from broker.clock import FrozenClock
from broker.http.keys import OUTBOX
from broker.locale import match
from tests.integration.intake_support import example, running_broker
from tests.integration.test_adapters import ENV, Mailbox, clock
from tests.support import free_port
from tests.unit.test_i18n import SUBJECTS

__all__ = ["clock"]  # the frozen clock fixture, shared with the adapter tests

# Four municipalities' P/CVE and social-work focal points: the returnee channel reaches both.
LANGUAGE = {
    "mk-kumanovo-pcve": "sr-Cyrl",
    "mk-kumanovo-swc": "cnr-ME",
    "mk-lipkovo-pcve": "hr",
    "mk-lipkovo-swc": "sr",
    "mk-tetovo-pcve": "bs",
    "mk-tetovo-swc": "sq",
    "mk-gostivar-pcve": "en",
    "mk-gostivar-swc": "mk-MK",
}
BODY_WORDS = {  # a word of each body, in its own language and script
    "en": "is waiting for you",
    "sq": "ju pret",
    "bs": "sandučić",
    "hr": "pretinac",
    "sr-Latn": "obaveštenje",
    "sr-Cyrl": "обавештење",
    "cnr": "obavještenje",
    "mk": "известување",
}


def set_languages(data: Path) -> None:
    text = (data / "directory.yaml").read_text()
    for contact, language in LANGUAGE.items():
        text, found = re.subn(
            rf"(  - \{{id: {re.escape(contact)}, [^\n]*?language: )[\w-]+",
            rf"\g<1>{language}",
            text,
        )
        assert found == 1, f"demo contact {contact} changed"
    (data / "directory.yaml").write_text(text)


async def test_each_alert_is_in_its_readers_directory_language(
    demo_dir: Path, database_url: str, clock: FrozenClock
) -> None:
    set_languages(demo_dir)
    port = free_port()
    mailbox = Mailbox()
    env = {
        **ENV,
        "LIAISON_SMTP_HOST": "127.0.0.1",
        "LIAISON_SMTP_PORT": str(port),
        "LIAISON_SMTP_SECURITY": "none",
        "LIAISON_SMTP_FROM_ADDRESS": "liaison@broker.invalid",
    }
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with running_broker(demo_dir, database_url, clock=clock, env=env) as broker:
            async with broker.sender("mk-mvr", clock) as ministry:
                for municipality in ("mk-kumanovo", "mk-lipkovo", "mk-tetovo", "mk-gostivar"):
                    notice = {**example("returnee-repatriation"), "jurisdiction": municipality}
                    assert (await ministry.post_notice(notice)).status == 201
            while await broker.app[OUTBOX].tick(clock.now()):
                clock.advance(timedelta(seconds=1))
    finally:
        controller.stop()

    by_address = {
        f"{c.split('-')[-1]}@{c.rsplit('-', 1)[0]}.demo.invalid": tag for c, tag in LANGUAGE.items()
    }
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == sorted(by_address)
    seen: set[str] = set()
    for envelope in mailbox.messages:
        message = message_from_bytes(envelope.content, policy=policy.default)
        language = match(by_address[envelope.rcpt_tos[0]])
        assert message["Subject"] == SUBJECTS[language], envelope.rcpt_tos
        text = message.get_content()
        assert BODY_WORDS[language] in text and "TLP:" in text, (language, text)
        if language == "sr-Cyrl":
            assert not re.search(
                r"[A-Za-zčćšžđ]", re.sub(r"Liaison|TLP:[A-Z+]+|\S+://\S+", "", text)
            )
        seen.add(language)
    assert sorted(seen) == sorted(SUBJECTS), seen  # all eight
