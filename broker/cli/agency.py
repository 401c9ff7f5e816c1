"""The agency's commands: ``liaison send`` (a notice or a CAP alert) and ``liaison status``.

Everything printed from the broker's answers is quoted through ``safe``: the broker's host and
the replying recipients are not trusted to write on the agency's terminal.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from broker.cli.common import EXIT_OK, command, data_dir, read_json
from broker.cli.i18n import _
from broker.cli.principals import agency_options, sender_call
from broker.cli.recipient import print_exercise_line
from broker.errors import ConfigError
from broker.terminal import safe
from broker.terminal import safe_print as print  # untrusted text: control characters escaped


def cmd_send(args: argparse.Namespace) -> int:
    if (args.notice is None) == (args.cap is None):
        raise ConfigError(_("give a NOTICE.json or --cap ALERT.xml"))
    notice = read_json(Path(args.notice)) if args.notice else _read_cap(args)
    if args.post_xml and (not args.cap or args.channel != "public-safety-alert"):
        raise ConfigError("--post-xml posts a --cap alert, on public-safety-alert only")
    if args.cap and args.post_xml:  # checked here first: a refusal stays one local line
        alert = Path(args.cap).read_bytes()
        response = sender_call(args, lambda c: c.post_cap(alert, supersedes=args.supersedes))
    else:
        try:
            response = sender_call(
                args, lambda c: c.post_notice(notice, idempotency_key=args.idempotency_key)
            )
        except ConfigError as e:
            raise _said_how_to_settle(e) from e.__cause__
    body = response.body
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    replay = _(" (the earlier answer to the same idempotency key)") if response.replayed else ""
    print(
        _(
            "Accepted notice {id}{replay}: {count} recipient(s), policy {policy}",
            id=safe(body["id"]),
            replay=replay,
            count=safe(body["recipient_count"]),
            policy=safe(body["policy_hash"]),
        )
    )
    if body.get("release") == "waiting":
        print("  held for two-person release: a second officer must approve (liaison approve)")
    for missing in body.get("not_reached", []):
        print(
            _(
                "  not reached: {role} ({reason})",
                role=safe(missing["role"]),
                reason=safe(missing["reason"]),
            )
        )
    return EXIT_OK


def _read_cap(args: argparse.Namespace) -> dict[str, Any]:
    from broker.cap.mapping import CapError, cap_to_notice

    try:
        data = Path(args.cap).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {args.cap}: {e.strerror}") from e
    try:
        return cap_to_notice(data, channel=args.channel, supersedes=args.supersedes)
    except CapError as e:
        raise ConfigError(f"{args.cap}: {e}") from e


def _said_how_to_settle(error: ConfigError) -> ConfigError:
    """A notice that may be stored (cut off, or the broker's commit in doubt): the refusal line
    says so, with the key that settles it — the client's own key if none was given."""
    from adapters.client.sender import SenderError

    cause = error.__cause__
    if not isinstance(cause, SenderError) or not cause.may_be_stored or not cause.idempotency_key:
        return error
    hint = _(
        "it may have been stored: send it again with --idempotency-key {key} to learn which",
        key=safe(cause.idempotency_key),
    )
    return ConfigError(f"{error.message}; {hint}")


def cmd_status(args: argparse.Namespace) -> int:
    response = sender_call(args, lambda c: c.status(args.id))
    body = response.body
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return EXIT_OK
    print_exercise_line(body)
    print(
        _(
            "Notice {id} on {channel} ({status}), posted {at}",
            id=safe(body["id"]),
            channel=f"{safe(body.get('channel_title') or body['channel'])} [{safe(body['channel'])}]",
            status=safe(body["status"]),
            at=safe(body["created_at"]),
        )
    )
    if body.get("release"):
        print(f"  release: {_release_line(body['release'])}")
    abroad = body.get("abroad")
    if abroad:
        peer = safe(abroad["peer_title"])
        if abroad.get("country") and abroad["country"] not in (abroad["peer"], None):
            # Through the hub: the country behind it too.
            peer = _("{peer}, for {country}", peer=peer, country=safe(abroad["country"]))
        print(_("  forwarded to {peer}: {state}", peer=peer, state=safe(abroad["forward"])))
        if abroad.get("forward_error"):
            print(_("  the forward failed: {error}", error=safe(abroad["forward_error"])))
    for role in body["roles"]:
        when = _state_time(role)
        where = ""
        if role.get("foreign"):
            where = " (" + _("abroad, {peer}", peer=safe(role["peer"])) + ")"
        print(
            f"  {safe(role['role_title'])} [{safe(role['role'])}]{where}: {safe(role['state'])} {safe(when)}".rstrip()
        )
    for reply in body.get("replies", []):
        print(
            _(
                "  reply from {role} at {at}: {text}",
                role=safe(reply["role"]),
                at=safe(reply["created_at"]),
                text=safe(_open_reply(args, body["id"], reply)),
            )
        )
    return EXIT_OK


def _release_line(release: dict[str, Any]) -> str:
    """Two-person release: waiting (until when), approved or refused by whom, or timed out."""
    state = release["state"]
    if state == "waiting":
        return f"waiting for a second officer until {safe(release['deadline'])}"
    if state == "timed_out":
        return f"refused: timed out at {safe(release['decided_at'])}"
    line = f"{safe(state)} by {safe(release['decided_by'])} at {safe(release['decided_at'])}"
    return line + (f" ({safe(release['reason'])})" if release.get("reason") else "")


_STATE_TIME = {
    "escalated": "escalated_at",
    "acknowledged": "acknowledged_at",
    "read": "read_at",
    "delivered": "delivered_at",
}


def _state_time(role: dict[str, Any]) -> str:
    """The time the role reached the state printed beside it (escalated: when it escalated)."""
    field = _STATE_TIME.get(role["state"])
    return str(role.get(field) or "") if field else ""


def _open_reply(args: argparse.Namespace, notice_id: str, reply: dict[str, Any]) -> str:
    """Decrypt a reply with the agency's X25519 key when it is at hand (the demo keys)."""
    from adapters.client.sender import decrypt_reply
    from broker.crypto.envelope import DecryptionFailed
    from broker.crypto.keys import read_private_key

    if args.as_ is None:
        return _("(encrypted to the agency's X25519 key)")
    path = data_dir(args) / "keys" / f"{args.as_}.x25519.pem"
    try:
        return repr(
            decrypt_reply(reply, notice_id, read_private_key(path, expected="x25519").private_raw)
        )
    except (ConfigError, DecryptionFailed):
        return _("(encrypted; this agency key cannot open it)")


def add_agency_commands(sub: Any) -> None:
    """``liaison send`` and ``liaison status``."""
    p = command(
        sub,
        "send",
        cmd_send,
        _("post a signed notice (or an OASIS CAP 1.2 alert) as an agency"),
        person=True,
    )
    p.add_argument("notice", metavar="NOTICE.json", nargs="?")
    p.add_argument(
        "--cap", metavar="ALERT.xml", help=_("import this CAP 1.2 alert instead of a notice file")
    )
    p.add_argument(
        "--channel",
        default="public-safety-alert",
        help=_("with --cap: the channel (default: %(default)s)"),
    )
    p.add_argument(
        "--supersedes",
        metavar="NOTICE_ID",
        help=_("with --cap: the notice a CAP Update/Cancel replaces"),
    )
    p.add_argument(
        "--post-xml",
        action="store_true",
        help=_("with --cap: post the alert itself as application/cap+xml (signed as it is)"),
    )
    p.add_argument("--idempotency-key", help=_("reuse it to retry safely (default: a fresh one)"))
    agency_options(p)
    p = command(
        sub,
        "status",
        cmd_status,
        _("delivery status of one of the agency's notices, per role"),
        person=True,
    )
    p.add_argument("id", metavar="NOTICE_ID")
    agency_options(p)
