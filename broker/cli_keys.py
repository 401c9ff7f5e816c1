"""``liaison keys monitor``: an agency watches the audit log for keys it never made.

Reads an audit export (``liaison audit export``, from an auditor) or, with ``--data``, the local
store; checks the export against its signed checkpoint first, then lists every key the log
shows bound to the agency and every notice signed in its name with a key it did not make.
Exit 1 when there is one: that is the alarm.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.audit.verify import read_export, verify_export
from broker.cli_text import safe_print as print  # untrusted text: control characters escaped
from broker.errors import ConfigError
from broker.trust.monitor import MonitorReport, monitor

Command = Callable[..., argparse.ArgumentParser]


def _export(args: argparse.Namespace) -> list[bytes]:
    if args.file:
        try:
            return Path(args.file).read_bytes().splitlines(keepends=True)
        except OSError as e:
            raise ConfigError(f"cannot read {args.file}: {e.strerror}") from e
    from broker.cli import _local_export

    out = io.BytesIO()
    asyncio.run(_local_export(args, out))
    return out.getvalue().splitlines(keepends=True)


def cmd_monitor(args: argparse.Namespace) -> int:
    try:
        header, lines = read_export(_export(args))
        lines = list(lines)
        verdict = verify_export(header, lines)
    except ValueError as e:
        raise ConfigError(f"not an audit export: {e}") from e
    if not verdict.ok:
        raise ConfigError(f"the audit log does NOT verify: {verdict.message}")
    expected = set(args.expect) if args.expect else None
    report = monitor((json.loads(line) for line in lines), args.as_, expected)
    _print(report)
    return 1 if report.alarm else 0


def _print(report: MonitorReport) -> None:
    print(f"Keys the audit log shows bound to {report.agency}:")
    for key in report.keys.values():
        changes = ", ".join(f"#{seq} {at} {status}" for seq, at, status in key.history)
        flag = "  UNEXPECTED" if key.key_id in report.unexpected else ""
        print(f"  {key.key_id}  {key.type}  sha256:{key.fingerprint[:16]}…  {changes}{flag}")
    if not report.keys:
        print("  (none)")
    if report.suspect:
        print(f"Notices signed in {report.agency}'s name with a key it did not make:")
    for notice in report.suspect:
        print(f"  #{notice.seq} {notice.at} {notice.notice} key {notice.key_id}: {notice.reason}")
    if report.alarm:
        print(
            f"ALARM: {len(report.unexpected)} unexpected key(s), {len(report.suspect)} notice(s) "
            "signed with a key the agency did not make"
        )
    else:
        print("OK: no key bound to this agency that it did not make, and no notice signed with one")


def add_keys_commands(sub: Any, command: Command, data_option: Callable[..., None]) -> None:
    keys = sub.add_parser("keys", help="agency keys in the audit log (key transparency)")
    ksub = keys.add_subparsers(title="keys commands", metavar="COMMAND")
    keys.set_defaults(run=lambda a: keys.print_help() or 2)
    p = command(
        "monitor",
        cmd_monitor,
        "list every key bound to an agency, and notices signed with keys it did not make",
        ksub,
    )
    p.add_argument("file", metavar="EXPORT", nargs="?", help="an audit export (default: --data)")
    p.add_argument("--as", dest="as_", required=True, metavar="AGENCY")
    p.add_argument(
        "--expect", action="append", metavar="KEYID", help="a key the agency made (repeat)"
    )
    data_option(p)
