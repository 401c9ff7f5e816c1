"""``liaison directory invite | pending | approve``: enrol an official without key files.

``invite`` prints a one-time code (and a QR code of the enrolment link) for a contact; the
official opens the web inbox's enrolment page, which makes the keys on their device; ``pending``
lists the keys that arrived, each with its fingerprint; ``approve`` binds them once the
fingerprint read over the phone matches. See broker/service/enrolment.py for the invariants.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.cli.common import EXIT_OK, command, open_store
from broker.errors import ConfigError
from broker.terminal import safe_print as print  # untrusted text: control characters escaped


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"([1-9][0-9]{0,3})([mhd])", text)
    if match is None:
        raise ConfigError(f"--expires: give minutes, hours or days, e.g. 72h (not {text!r})")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def _actor() -> str:
    return f"operator:{getpass.getuser()}"


def cmd_invite(args: argparse.Namespace) -> int:
    from broker.service.enrolment import invite
    from broker.store.directory_repo import load_directory

    expires = _duration(args.expires)

    async def run() -> tuple[Any, Any]:
        settings, engine = await open_store(args)
        try:
            directory, _ = await load_directory(engine)
            made = await invite(
                engine,
                directory,
                args.contact,
                expires=expires,
                actor=_actor(),
                now=datetime.now(UTC),
            )
            return settings, made
        finally:
            await engine.dispose()

    settings, made = asyncio.run(run())
    root = _root_fingerprint(settings)
    # The link carries the root's fingerprint: the page pins that root, not whatever it is served.
    link = f"{settings.public_url}/ui/#/enrol/{made.code}" + (f"/{root}" if root else "")
    print(f"Enrolment code for {made.contact}: {made.code}")
    print(f"Valid once, until {made.expires_at:%Y-%m-%d %H:%M} UTC.")
    print(f"The official opens {link}")
    print(f"(or {settings.public_url}/ui/#/enrol and types the code).")
    if not args.no_qr:
        _qr(link)
    if root:
        print(f"Directory root fingerprint: {root} (the page shows it too)")
    else:
        print("note: no directory root in DATA/trust/: the page cannot pin one yet")
    print(
        "Give the code to the official in person or by a channel other than e-mail; "
        "then approve with `liaison directory approve CONTACT FINGERPRINT` once they read "
        "you the fingerprint their page shows."
    )
    return EXIT_OK


def _qr(link: str) -> None:
    try:
        import segno
    except ImportError:  # the text code is enough; the QR is a convenience
        return
    out = io.StringIO()
    segno.make(link, error="m").terminal(out=out, compact=True)
    sys.stdout.write(out.getvalue())  # our own block characters, no escape sequences


def _root_fingerprint(settings: Any) -> str | None:
    """The first 16 hex digits of the directory root's fingerprint, or None without a root."""
    from adapters.client.trust import fingerprint
    from broker.errors import TrustRefused
    from broker.trust.files import TRUST_DIR

    try:
        return fingerprint((settings.data_dir / TRUST_DIR / "root.json").read_bytes())[:16]
    except (OSError, TrustRefused):
        return None


def cmd_pending(args: argparse.Namespace) -> int:
    from broker.service.enrolment import pending

    async def run() -> list[dict[str, Any]]:
        _, engine = await open_store(args)
        try:
            return await pending(engine)
        finally:
            await engine.dispose()

    rows = asyncio.run(run())
    if not rows:
        print("No keys wait for approval.")
    for row in rows:
        print(f"{row['contact']}  {row['fingerprint']}  submitted {row['submitted_at'][:16]}Z")
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    from broker.service.enrolment import approve
    from broker.store.directory_repo import load_directory

    async def run() -> tuple[int, list[str]]:
        _, engine = await open_store(args)
        try:
            directory, _ = await load_directory(engine)
            return await approve(
                engine,
                directory,
                args.contact,
                args.fingerprint,
                actor=_actor(),
                now=datetime.now(UTC),
            )
        finally:
            await engine.dispose()

    revision, keys = asyncio.run(run())
    print(f"Approved: directory revision {revision} binds {', '.join(keys)} to {args.contact}.")
    print(
        "note: add these keys to your directory file and sign new key bindings "
        "(liaison trust sign-bindings), or the next `directory apply` will want to remove them",
        file=sys.stderr,
    )
    return EXIT_OK


def add_enrolment_commands(dsub: Any, data_option: Any) -> None:
    """``liaison directory invite``, ``pending`` and ``approve``."""
    p = command(dsub, "invite", cmd_invite, "issue a one-time enrolment code for a contact")
    p.add_argument("contact", metavar="CONTACT")
    p.add_argument("--expires", default="72h", help="how long the code is valid (default 72h)")
    p.add_argument("--no-qr", action="store_true", help="print the code as text only")
    data_option(p)
    p = command(dsub, "pending", cmd_pending, "list keys that wait for approval")
    data_option(p)
    p = command(
        dsub, "approve", cmd_approve, "bind a contact's pending keys, checked by their fingerprint"
    )
    p.add_argument("contact", metavar="CONTACT")
    p.add_argument("fingerprint", metavar="FINGERPRINT")
    data_option(p)
