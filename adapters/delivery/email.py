"""E-mail alerts: a short, content-free message that a notice is waiting, in the recipient's
language (English, Macedonian, Albanian, Bosnian, Serbian). Never the content, the channel or
the jurisdiction: only the handling marking and where to read it.
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from broker.domain.delivery import SmtpConfig
from broker.errors import EmailFailed

TEMPLATES: dict[str, tuple[str, str]] = {
    "en": (
        "Liaison: a new notice is waiting for you",
        "A new notice (TLP:{marking}) is waiting for you in Liaison.\n"
        "Open your inbox to read it: {url}\n\nThis message carries no content. Do not reply.",
    ),
    "mk": (
        "Liaison: ве чека ново известување",
        "Ве чека ново известување (TLP:{marking}) во Liaison.\n"
        "Отворете го вашето сандаче за да го прочитате: {url}\n\n"
        "Оваа порака не содржи никаква содржина. Не одговарајте.",
    ),
    "sq": (
        "Liaison: një njoftim i ri ju pret",
        "Një njoftim i ri (TLP:{marking}) ju pret në Liaison.\n"
        "Hapni kutinë tuaj për ta lexuar: {url}\n\nKy mesazh nuk përmban asnjë përmbajtje. Mos u përgjigjni.",
    ),
    "bs": (
        "Liaison: čeka vas novo obavještenje",
        "U Liaisonu vas čeka novo obavještenje (TLP:{marking}).\n"
        "Otvorite svoj sandučić da biste ga pročitali: {url}\n\n"
        "Ova poruka ne sadrži nikakav sadržaj. Ne odgovarajte.",
    ),
    "sr": (
        "Liaison: čeka vas novo obaveštenje",
        "U Liaisonu vas čeka novo obaveštenje (TLP:{marking}).\n"
        "Otvorite svoje sanduče da biste ga pročitali: {url}\n\n"
        "Ova poruka ne sadrži nikakav sadržaj. Ne odgovarajte.",
    ),
}


def alert(
    to: str, sender: str, language: str, marking: str, inbox_url: str, msg_id: str
) -> EmailMessage:
    subject, body = TEMPLATES.get(language.split("-")[0], TEMPLATES["en"])
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = (
        f"<{msg_id}@liaison.invalid>"  # stable: a resent alert is recognisably the same
    )
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body.format(marking=marking, url=inbox_url))
    return message


async def send(message: EmailMessage, config: SmtpConfig) -> None:
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            timeout=config.timeout,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
        raise EmailFailed(type(e).__name__) from e


class SmtpMailer:
    """``broker.service.ports.AlertMailer`` over aiosmtplib: one connection per alert."""

    async def send_alert(
        self,
        config: SmtpConfig,
        *,
        to: str,
        language: str,
        marking: str,
        inbox_url: str,
        msg_id: str,
    ) -> None:
        await send(alert(to, config.sender, language, marking, inbox_url, msg_id), config)
