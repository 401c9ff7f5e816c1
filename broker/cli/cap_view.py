"""How ``liaison read`` shows a notice that carries a CAP 1.2 alert, in the reader's language.

The alert's info block in the CLI's language (``broker.cap.languages``), the other languages it
has, and its XML signature verified here again from the carried original (``broker.cap.dsig``):
verified, not signed or failed, with what that means in one line, and the signer's certificate.
The result the sending agency's client recorded at import (``body.cap_signature``) is shown beside
it, never instead of it; an alert posted as ``application/cap+xml`` has no such record (this
client mapped the signed XML itself). Every field quoted is the sender's: passed through ``safe``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.cli.i18n import N_, _, language
from broker.locale import LANGUAGES
from broker.terminal import safe

CARRIED_FIELDS = ("cap_original", "cap_signature")
RESULT = {
    "valid": N_("verified"),
    "absent": N_("not signed"),
    "invalid": N_("failed"),
}
# Each result with its meaning in one line (``{reason}``: why a signature failed).
MEANING = {
    "valid": N_(
        "XML signature: verified here; the alert is unchanged since this certificate's key signed it."
    ),
    "absent": N_(
        "XML signature: not signed; only the sending agency's own signature vouches for this alert."
    ),
    "invalid": N_(
        "XML signature: failed; the alert changed after signing, or the signature cannot be checked: {reason}"
    ),
}


@dataclass
class CapView:
    subject: str
    body: dict[str, Any]
    lines: list[str] = field(default_factory=list)


def cap_view(notice: dict[str, Any], plaintext: bytes) -> CapView:
    """The subject, body and explanatory lines to print for a notice with ``body.cap_original``."""
    from broker.cap.document import CapError, parse
    from broker.cap.export import original
    from broker.cap.languages import blocks, choose, localised

    body = {k: v for k, v in notice["body"].items() if k not in CARRIED_FIELDS}
    try:
        data = original(notice) or b""
    except CapError as e:
        refused = _("CAP original carried but refused: {reason}", reason=safe(str(e)))
        return CapView(str(notice["subject"]), body, [refused])
    root = parse(data)
    chosen, others = choose(blocks(root), language())
    subject, shown = localised({**notice, "body": body}, chosen)
    view = CapView(subject, shown)
    if others:
        view.lines.append(
            _(
                "Shown in {language}; the alert is also in: {others}",
                language=_named(chosen.tag, chosen.language),
                others=", ".join(_named(b.tag, b.language) for b in others),
            )
        )
    view.lines.append(
        _(
            "CAP original carried ({size} bytes; {command} exports it).",
            size=len(data),
            command="liaison read --cap",
        )
    )
    recorded = None if plaintext == data else notice["body"].get("cap_signature")
    view.lines.extend(signature_lines(data, root, recorded))
    return view


def signature_lines(data: bytes, root: Any, recorded: Any) -> list[str]:
    """The XML-DSig result computed here, its meaning, the signer, and the sender's record."""
    from broker.cap.dsig import verify_signature

    here = verify_signature(data, root)
    lines = [_(MEANING[here["status"]], reason=safe(here.get("reason", "")))]
    if here.get("signer"):
        lines.append(
            _(
                "Signer: {subject}, certificate SHA-256 {fingerprint}; compare it with the producer's published one.",
                subject=safe(here["signer"]),
                fingerprint=safe(here["certificate_sha256"]),
            )
        )
    if isinstance(recorded, dict) and recorded.get("status") in RESULT:
        lines.append(
            _(
                "The sending agency's client recorded at import: {result}",
                result=_(RESULT[recorded["status"]]),
            )
        )
    return lines


def _named(tag: str, code: str | None) -> str:
    return f"{safe(tag)} ({LANGUAGES[code]})" if code else safe(tag)
