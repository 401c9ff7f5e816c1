"""The operator's ``liaison outbox list``, ``replay`` and ``drop``: dead-lettered webhooks and
e-mails. ``replay`` makes one due again for the running broker to deliver (under its original
message id); ``drop`` removes one with a reason. Both are audit events (``outbox.replayed``,
``outbox.dropped``). Targets and errors are the directory's and the receivers' text: escaped.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from broker.cli.common import EXIT_OK, command, data_option, group, open_store
from broker.terminal import safe
from broker.terminal import safe_print as print  # every line printed has control characters escaped

if TYPE_CHECKING:
    from broker.store.outbox_repo import DeadLetter


def _actor() -> str:
    return f"operator:{getpass.getuser()}"


def _when(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _record(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "notice_id": letter.notice_id,
        "kind": letter.kind,
        "target": letter.target,
        "msg_id": letter.msg_id,
        "attempts": letter.attempts,
        "last_error": letter.last_error,
        "since": _when(letter.since),
    }


def _line(letter: DeadLetter) -> str:
    """One dead letter on one line: each untrusted field escaped on its own."""
    return "  ".join(
        (
            f"{letter.id:>6}",
            f"{letter.kind:<7}",
            safe(letter.target),
            f"attempts={letter.attempts}",
            f"since={_when(letter.since)}",
            f"notice={letter.notice_id}",
            f"error={safe(letter.last_error or '-')}",
        )
    )


def cmd_outbox_list(args: argparse.Namespace) -> int:
    from broker.service.dead_letters import dead_letters

    async def run() -> list[DeadLetter]:
        _, engine = await open_store(args)
        try:
            return await dead_letters(engine)
        finally:
            await engine.dispose()

    letters = asyncio.run(run())
    if args.json:
        print(json.dumps([_record(x) for x in letters], ensure_ascii=False, indent=2))
    elif not letters:
        print("No dead-lettered messages.")
    else:
        for letter in letters:
            print(_line(letter))
    return EXIT_OK


def cmd_outbox_replay(args: argparse.Namespace) -> int:
    from broker.service.dead_letters import replay

    async def run() -> DeadLetter:
        _, engine = await open_store(args)
        try:
            return await replay(engine, args.id, _actor(), datetime.now(UTC))
        finally:
            await engine.dispose()

    letter = asyncio.run(run())
    print(
        f"Re-queued {letter.kind} {letter.id} to {safe(letter.target)} (message {letter.msg_id}); "
        "the running broker sends it within seconds (`liaison outbox list` shows it again if "
        "it fails every attempt)."
    )
    return EXIT_OK


def cmd_outbox_drop(args: argparse.Namespace) -> int:
    from broker.service.dead_letters import drop

    async def run() -> DeadLetter:
        _, engine = await open_store(args)
        try:
            return await drop(engine, args.id, _actor(), args.reason, datetime.now(UTC))
        finally:
            await engine.dispose()

    letter = asyncio.run(run())
    print(f"Dropped {letter.kind} {letter.id} to {safe(letter.target)}; it will not be sent.")
    return EXIT_OK


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason or len(reason) > 300:
        raise argparse.ArgumentTypeError("give a reason of 1 to 300 characters")
    return reason


def add_outbox_commands(sub: Any) -> None:
    """``liaison outbox list``, ``replay`` and ``drop``."""
    osub = group(sub, "outbox", "dead-lettered webhooks and e-mails")
    p = command(osub, "list", cmd_outbox_list, "list dead-lettered webhooks and e-mails")
    data_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = command(
        osub, "replay", cmd_outbox_replay, "send a dead letter again (once, same message id)"
    )
    p.add_argument("id", metavar="ID", type=int, help="its id in `liaison outbox list`")
    data_option(p)
    p = command(osub, "drop", cmd_outbox_drop, "remove a dead letter for good (audited)")
    p.add_argument("id", metavar="ID", type=int, help="its id in `liaison outbox list`")
    p.add_argument("--reason", required=True, type=_reason, help="why (kept in the audit log)")
    data_option(p)
