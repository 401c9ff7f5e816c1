"""A recipient's commands: ``liaison inbox``, ``read``, ``ack`` and ``watch``.

``read`` decrypts here and prints "verified" only for a notice whose agency signature checks out
against the directory root the recipient pinned (the client SDK refuses otherwise). Every field
shown — subject, names, channel, ids — is quoted through ``safe``: the sending agency and the
broker's host are not trusted to write on the recipient's terminal.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker.cli.common import EXIT_OK, command
from broker.cli.i18n import N_, _, language
from broker.cli.principals import recipient_call, recipient_options
from broker.errors import ConfigError
from broker.terminal import safe
from broker.terminal import safe_print as print  # untrusted text: control characters escaped

# An exercise or test notice is labelled on every line that shows it: a tag in lists, a line
# of its own above a notice (the same words as the e-mail alert's, from the same catalogs).
EXERCISE_TAGS = {"exercise": N_("[EXERCISE]"), "test": N_("[TEST]")}
EXERCISE_LINES = {
    "exercise": N_("EXERCISE: this notice is an exercise, not a real event."),
    "test": N_("TEST: this notice is a test, not a real event."),
}


def exercise_tag(meta: dict[str, Any]) -> str:
    """``[EXERCISE]  `` (translated) before a listed notice so marked; empty for a real one."""
    marked = meta.get("exercise")
    return f"{_(EXERCISE_TAGS[marked])}  " if marked in EXERCISE_TAGS else ""


def print_exercise_line(meta: dict[str, Any]) -> None:
    """The marking's own line above a notice or its status; nothing for a real notice."""
    marked = meta.get("exercise")
    if marked in EXERCISE_LINES:
        print(f"*** {_(EXERCISE_LINES[marked])} ***")


def cmd_inbox(args: argparse.Namespace) -> int:
    page = recipient_call(
        args,
        lambda c: c.inbox(
            status=args.status, channel=args.channel, limit=args.limit, cursor=args.cursor
        ),
    )
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    if not page["items"]:
        print(_("No notices."))
    for item in page["items"]:
        mark = "" if item["status"] == "active" else f" [{item['status']}]"
        print(
            exercise_tag(item)
            + f"{safe(item['created_at'])}  {safe(item['notice_id'])}  {_where(item)}  "
            f"TLP:{safe(item['marking'])}  {safe(item['severity'])}  {safe(item['state'])}{safe(mark)}  "
            + _("(as {role})", role=safe(item.get("role_title") or item["role"]))
        )
    if page["next_cursor"]:
        print(_("More: --cursor {cursor}", cursor=safe(page["next_cursor"])))
    return EXIT_OK


def cmd_read(args: argparse.Namespace) -> int:
    verified = recipient_call(args, lambda c: c.read(args.id))
    meta, notice = verified.metadata, verified.notice
    if args.cap:
        return _print_cap(verified)
    if args.json:
        print(
            json.dumps(
                {
                    "metadata": meta,
                    "notice": notice,
                    "verified": True,
                    "signed_by": verified.sender_name,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    # From the signed document (verify_notice refused a broker copy that differs from it).
    print_exercise_line(notice)
    print(
        f"TLP:{safe(meta['marking'])}  {_where(meta)}  {safe(meta['severity'])}  {safe(meta['id'])}"
    )
    print(
        _(
            "Signed by {name} (key {key}): verified against the signed directory",
            # The name as the administrators signed it, in this CLI's language when they did.
            name=safe(verified.sender_name_in(language())),
            key=safe(verified.sender_key_id),
        )
    )
    if meta["status"] != "active" or meta["kind"] != "notice":
        kind = N_("This is an update ({status}); supersedes {supersedes}")
        if meta["kind"] != "update":
            kind = N_("This is a {kind} ({status}); supersedes {supersedes}")
        fields = {k: safe(meta[k]) for k in ("kind", "status", "supersedes")}
        print(_(kind, **fields))
    subject, body, lines = notice["subject"], notice["body"], []
    if isinstance(body, dict) and "cap_original" in body:
        from broker.cli.cap_view import cap_view

        view = cap_view(notice, verified.plaintext)
        subject, body, lines = view.subject, view.body, view.lines
    print(f"\n{safe(subject)}\n")
    for line in lines:
        print(line)
    for line in body_lines(body, meta.get("labels") or {}):
        print(line)
    return EXIT_OK


def body_lines(body: Any, labels: dict[str, Any]) -> list[str]:
    """The body one field a line, ``Label: value``, with the channel's labels for fields and
    enum values in the reader's language (the policy file's, as the broker answered them for
    this CLI's Accept-Language); a field or value without a label reads as the sender wrote it.
    A body that is not an object is shown as JSON. The page shows the same (app.js ``fields``)."""
    if not isinstance(body, dict):
        return [safe(json.dumps(body, indent=2, ensure_ascii=False), multiline=True)]
    fields, values = labels.get("fields") or {}, labels.get("values") or {}

    def name(key: str) -> str:
        label = fields.get(key)
        return label if isinstance(label, str) else key.replace("_", " ")

    def plain(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(plain(v) for v in value)
        if isinstance(value, dict):
            return "; ".join(f"{name(k)}: {plain(v)}" for k, v in value.items())
        if isinstance(value, str):
            label = values.get(value)
            return label if isinstance(label, str) else value
        return json.dumps(
            value, ensure_ascii=False
        )  # numbers, true/false, null as JSON writes them

    return [f"{safe(name(k))}: {safe(plain(v))}" for k, v in body.items()]


def _where(item: dict[str, Any]) -> str:
    """The channel's title [its id] and the jurisdiction's name, in the language the broker was
    asked for (``Accept-Language``: this CLI's); ids where the broker knows no name."""
    channel = f"{safe(item.get('channel_title') or item['channel'])} [{safe(item['channel'])}]"
    place = item.get("jurisdiction_name") or item["jurisdiction"]
    return f"{channel} · {safe(place)}"


def _print_cap(verified: Any) -> int:
    """``read --cap``: the notice as CAP 1.2 XML on stdout (the carried original when present)."""
    import sys

    from broker.cap.document import CapError
    from broker.cap.export import notice_to_cap

    try:
        document = notice_to_cap(verified.metadata, verified.notice, verified.sender_name)
    except CapError as e:
        raise ConfigError(f"cannot export as CAP 1.2: {e}") from e
    sys.stdout.buffer.write(document)  # XML bytes as signed; the terminal filter is for text
    sys.stdout.flush()
    return EXIT_OK


def cmd_ack(args: argparse.Namespace) -> int:
    import base64

    async def run(client: Any) -> Any:
        agency_key = None
        if args.reply is not None:
            fetched = await client._request("GET", f"/v1/notices/{args.id}")
            key = fetched.get("reply_key")
            if key is None:
                raise ConfigError(_("this notice's channel takes no replies"))
            agency_key = (key["key_id"], base64.b64decode(key["public"]))
        return await client.ack(args.id, reply=args.reply, agency_key=agency_key)

    answer = recipient_call(args, run)
    print(_("Acknowledged {id} at {at}", id=safe(answer["id"]), at=safe(answer["acknowledged_at"])))
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    async def run(client: Any) -> int:
        last = args.last_event_id
        if last is None:  # from now: after the newest delivery already in the inbox
            newest = (await client.inbox(limit=1))["items"]
            last = int(newest[0]["delivery_id"]) if newest else 0
        async for event_id, event in client.follow(last_event_id=last):
            print(
                exercise_tag(event)
                + f"{safe(event_id)}  {safe(event['created_at'])}  {safe(event['notice_id'])}  "
                f"{safe(event['channel'])}  TLP:{safe(event['marking'])}  {safe(event['severity'])}  "
                + _("(as {role})", role=safe(event["role"])),
                flush=True,
            )
        return EXIT_OK

    return int(recipient_call(args, run))


def add_recipient_commands(sub: Any) -> None:
    """``liaison inbox``, ``read``, ``ack`` and ``watch``."""
    p = command(sub, "inbox", cmd_inbox, _("list your notices (metadata only)"), person=True)
    p.add_argument(
        "--status", choices=["pending", "delivered", "read", "acknowledged", "escalated"]
    )
    p.add_argument("--channel")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor")
    p.add_argument("--json", action="store_true")
    recipient_options(p)
    p = command(
        sub,
        "read",
        cmd_read,
        _("fetch a notice, decrypt it here and verify the agency's signature"),
        person=True,
    )
    p.add_argument("id", metavar="NOTICE_ID")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--cap",
        action="store_true",
        help=_("print the notice as an OASIS CAP 1.2 alert (the carried original when present)"),
    )
    recipient_options(p)
    p = command(
        sub,
        "ack",
        cmd_ack,
        _("acknowledge a notice (signed with your key), optionally replying"),
        person=True,
    )
    p.add_argument("id", metavar="NOTICE_ID")
    p.add_argument("--reply", help=_("a reply to the sending agency, encrypted to its key"))
    recipient_options(p)
    p = command(
        sub, "watch", cmd_watch, _("print new notices as they arrive (Ctrl-C to stop)"), person=True
    )
    p.add_argument(
        "--last-event-id",
        type=int,
        help=_("replay what came after this event (default: only what arrives from now on)"),
    )
    recipient_options(p)
