"""``liaison approve`` and ``liaison refuse``: the second officer's side of two-person release.

The second officer approves what they reviewed: the notice file (hashed as ``liaison send``
posts it) or its ``Content-Digest`` as printed by ``liaison status``. The broker releases the
notice only if that digest is the one the first officer signed, and only for another key of
the same agency.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from broker.cli.common import EXIT_OK, command, read_json
from broker.cli.principals import agency_options, sender_call
from broker.errors import ConfigError
from broker.terminal import safe
from broker.terminal import safe_print as print  # untrusted text: control characters escaped


def _digest(args: argparse.Namespace) -> str:
    """The digest the officer approves: of the reviewed file, or as given."""
    from broker.crypto.httpsig import content_digest

    if (args.notice is None) == (args.digest is None):
        raise ConfigError("give the reviewed NOTICE.json or --digest (from liaison status)")
    if args.digest is not None:
        return str(args.digest)
    notice = read_json(Path(args.notice))  # the bytes `liaison send` posts for this file
    return content_digest(json.dumps(notice, ensure_ascii=False).encode())


def cmd_approve(args: argparse.Namespace) -> int:
    digest = _digest(args)
    body = sender_call(args, lambda c: c.approve(args.id, digest)).body
    return _answer(args, body)


def cmd_refuse(args: argparse.Namespace) -> int:
    digest = _digest(args)
    body = sender_call(args, lambda c: c.refuse(args.id, digest, args.reason)).body
    return _answer(args, body)


def _answer(args: argparse.Namespace, body: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(f"Notice {safe(body['id'])}: {safe(body['release'])} by {safe(body['by'])}")
    return EXIT_OK


def add_release_commands(sub: Any) -> None:
    """``liaison approve`` and ``liaison refuse``."""
    for name, run, text in (
        ("approve", cmd_approve, "release a held notice as a second officer of its agency"),
        ("refuse", cmd_refuse, "refuse a held notice as a second officer: it is never routed"),
    ):
        p = command(sub, name, run, text)
        p.add_argument("id", metavar="NOTICE_ID")
        p.add_argument("notice", metavar="NOTICE.json", nargs="?", help="the notice reviewed")
        p.add_argument("--digest", help="the notice's Content-Digest instead of the file")
        if name == "refuse":
            p.add_argument("--reason", required=True, help="why (recorded in the audit log)")
        agency_options(p)
