"""E-mail alerts: a short, content-free message that a notice is waiting, in the recipient's
language from the directory (the eight of ``broker.locale``: gettext catalogs in
``broker/locale/<tag>/LC_MESSAGES/liaison.po``). Never the content, the channel or the
jurisdiction: only the handling marking and where to read it. An exercise or test notice says
so first in the subject and the body, so nobody takes a drill for an emergency.
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from broker.domain.delivery import SmtpConfig
from broker.errors import EmailFailed
from broker.locale import N_, translations

SUBJECT = N_("Liaison: a new notice is waiting for you")
BODY = N_(
    "A new notice (TLP:{marking}) is waiting for you in Liaison.\n"
    "Open your inbox to read it: {url}\n\nThis message carries no content. Do not reply."
)
# The exercise or test marking: a tag before the subject, a line before the body.
EXERCISE_TAGS = {"exercise": N_("[EXERCISE]"), "test": N_("[TEST]")}
EXERCISE_LINES = {
    "exercise": N_("EXERCISE: this notice is an exercise, not a real event."),
    "test": N_("TEST: this notice is a test, not a real event."),
}


def alert(
    to: str,
    sender: str,
    language: str,
    marking: str,
    inbox_url: str,
    msg_id: str,
    exercise: str | None = None,
) -> EmailMessage:
    catalog = translations(language)  # BCP 47 matched: sr-Cyrl, sr-Latn, cnr, hr, ...
    subject, body = catalog.gettext(SUBJECT), catalog.gettext(BODY)
    if exercise is not None:
        subject = f"{catalog.gettext(EXERCISE_TAGS[exercise])} {subject}"
        body = f"{catalog.gettext(EXERCISE_LINES[exercise])}\n\n{body}"
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
        exercise: str | None,
        inbox_url: str,
        msg_id: str,
    ) -> None:
        message = alert(to, config.sender, language, marking, inbox_url, msg_id, exercise)
        await send(message, config)
