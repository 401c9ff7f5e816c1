"""An auditor's commands: ``liaison audit export``/``verify`` and ``liaison keys monitor``.

``audit export`` goes through the API as an auditor (``--url``/``--as``), else reads the local
store as the operator. ``audit verify`` checks an export (or a live broker's log) against its
signed checkpoints; the checkpoint key is trusted only when pinned with ``--checkpoint-key``.

``keys monitor`` is for an agency watching the audit log for keys it never made. It reads an
audit export (``liaison audit export``, from an auditor) or, with ``--data``, the local store;
checks the export against its signed checkpoint first, then lists every key the log shows bound
to the agency and every notice signed in its name with a key it did not make. Exit 1 when there
is one: that is the alarm.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.cli.common import EXIT_FAILED, EXIT_OK, command, data_option, group
from broker.cli.follow import follow_options
from broker.cli.operator.audit import local_export, write_lines
from broker.cli.principals import recipient_call, recipient_options
from broker.errors import ConfigError
from broker.terminal import safe_print as print  # untrusted text: control characters escaped

if TYPE_CHECKING:
    from broker.trust.monitor import MonitorReport

# -- audit export and verify -----------------------------------------------------------------


def cmd_audit_export(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer if args.out in (None, "-") else open(args.out, "wb")  # noqa: SIM115 - closed below
    try:
        if args.url or args.as_:  # through the API, as an auditor; else read the local store
            count = recipient_call(args, lambda c: write_lines(c.audit_export(), out))
        else:
            count = asyncio.run(local_export(args, out))
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.out not in (None, "-"):
        print(
            f"Exported {count} events with their signed checkpoints to {args.out}", file=sys.stderr
        )
    return EXIT_OK


def _checkpoint_keys(texts: list[str] | None) -> list[bytes]:
    """--checkpoint-key (repeatable): each a signed-note verifier key (``name+hexid+base64``, as
    /v1/keys/log gives it) or base64 of a 32-byte Ed25519 key; else a one-line refusal."""
    import base64
    import binascii

    from broker.crypto.note import parse_verifier_key

    keys = []
    for text in texts or []:
        try:
            key = parse_verifier_key(text)[1] if "+" in text.strip("=") else b""
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            try:
                key = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                key = b""
        if len(key) != 32:
            raise ConfigError(
                "--checkpoint-key: not an Ed25519 public key (a verifier key from /v1/keys/log, "
                "or base64 of 32 bytes, as the export's header and /v1/audit/checkpoint give it)"
            )
        keys.append(key)
    return keys


def _cosigned(args: argparse.Namespace) -> tuple[str | None, list[tuple[str, bytes]]]:
    """--cosigned FILE (a witness's --out, or its state file), each --witness-key VKEY, and the
    key each --peer URL publishes as its witness's (asked of the peer, not of the broker)."""
    from broker.crypto.cosignature import parse_vkey

    texts = [("--witness-key", t) for t in args.witness_key or ()]
    # With --follow the peers are the notice's way, not this log's witnesses: through the hub,
    # only the first (the hub) is this log's neighbour; the later logs' witnesses are checked
    # by the follow, each by the broker before it.
    peers = (args.peer or [])[:1] if args.follow else args.peer or []
    texts += [(f"--peer {url}", _peer_vkey(url)) for url in peers]
    witnesses = []
    for option, text in texts:
        try:
            witnesses.append(parse_vkey(text))
        except ValueError as e:
            raise ConfigError(f"{option}: {e}") from e
    if args.cosigned and not witnesses:
        raise ConfigError("--cosigned FILE needs the --witness-key (or --peer) to check it with")
    if not args.cosigned:
        return None, witnesses
    try:
        text = Path(args.cosigned).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {args.cosigned}: {e}") from e
    if text.lstrip().startswith("{"):  # a witness's state file: its last cosigned checkpoint
        try:
            text = json.loads(text)["checkpoint"]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{args.cosigned}: not a witness state") from e
    return text, witnesses


def _peer_vkey(url: str) -> str:
    from adapters.client.errors import RecipientError
    from adapters.client.witness import witness_key

    try:
        return asyncio.run(witness_key(url))
    except RecipientError as e:
        raise ConfigError(f"--peer {url}: {e}") from e


def _check_cosignatures(
    note: str, witnesses: list[tuple[str, bytes]], header: dict[str, Any], keys: list[bytes]
) -> str:
    """Each pinned witness cosigned ``note``, and the log signed it (with one of the pinned log
    keys, else the export's own): one line saying so."""
    import base64

    from broker.audit.checkpoint import Checkpoint
    from broker.crypto.cosignature import verify_cosignature
    from broker.crypto.note import open_note

    checkpoint = None
    failure: Exception | None = None
    try:
        publics = keys or [base64.b64decode(header["public_key"])]
    except (KeyError, ValueError) as e:
        raise ConfigError(f"the cosigned checkpoint is not the log's: {e}") from e
    for public in publics:
        try:
            checkpoint = Checkpoint.parse(open_note(note, header["key_name"], public))
            break
        except (KeyError, ValueError) as e:
            failure = e
    if checkpoint is None:
        raise ConfigError(f"the cosigned checkpoint is not the log's: {failure}")
    seen = []
    for name, witness in witnesses:
        try:
            at = verify_cosignature(note, name, witness)
        except ValueError as e:
            raise ConfigError(f"cosignature NOT valid: {e}") from e
        seen.append(f"{name} at {at}")
    return f"size {checkpoint.size} cosigned by {', '.join(seen)}"


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from broker.audit.verify import read_export, verify_export
    from broker.service.audit_workers import on_every_core

    key = _checkpoint_keys(args.checkpoint_key)
    if args.follow and (args.file or args.cosigned or not (args.url or args.as_)):
        raise ConfigError(
            "--follow follows a live broker's log: give --url or --data/--as, no FILE"
        )
    cosigned, witnesses = _cosigned(args)
    if cosigned is not None and not (args.file or args.url or args.as_):
        header = {"key_name": _origin(cosigned), "public_key": ""}
        if not key:
            raise ConfigError("checking a cosigned checkpoint alone needs --checkpoint-key")
        print(f"OK: {_check_cosignatures(cosigned, witnesses, header, key)}")
        return EXIT_OK
    if args.file:
        try:
            with open(args.file, "rb") as f:
                header, lines = read_export(f)
                witnessed = _witnessed(header, cosigned, witnesses, key)
                result = verify_export(header, lines, trusted_keys=key, prepare=on_every_core())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{args.file}: {e}") from e
    else:

        async def fetch(client: Any) -> tuple[list[bytes], list[str]]:
            lines = [line async for line in client.audit_export()]
            # Without --cosigned, the witnesses' cosignatures are on the served checkpoints.
            served = await client.audit_checkpoints() if witnesses and not cosigned else []
            return lines, served

        exported, served = recipient_call(args, fetch)
        try:
            header, lines = read_export(exported)
            witnessed = _witnessed(header, cosigned, witnesses, key, served)
            result = verify_export(header, lines, trusted_keys=key, prepare=on_every_core())
        except ValueError as e:
            raise ConfigError(f"the broker's audit export: {e}") from e
    if not key:
        print(
            "note: the checkpoint key was taken from the export; pin it with --checkpoint-key to check who signed",
            file=sys.stderr,
        )
    if not result.ok:
        print(f"liaison: audit log does NOT verify: {result.message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"OK: {result.message}{witnessed}")
    if args.follow:
        from broker.cli.follow import follow

        for line in follow(args, key, _checkpoint_keys(args.peer_checkpoint_key)):
            print(line)
    return EXIT_OK


def _origin(note: str) -> str:
    return note.split("\n", 1)[0]


def _witnessed(
    header: dict[str, Any],
    note: str | None,
    witnesses: list[tuple[str, bytes]],
    keys: list[bytes],
    served: list[str] | None = None,
) -> str:
    """Check the cosignatures, then hold the export to the cosigned root as to its own
    checkpoints: a log that shows the witness one history and the auditor another fails.
    Without ``--cosigned``, the witnesses' cosignatures are looked for on the checkpoints the
    broker serves (its peers' witnesses append theirs there)."""
    if note is None:
        return _served(header, witnesses, keys, served or []) if witnesses else ""
    said = _check_cosignatures(note, witnesses, header, keys)
    header["checkpoints"] = [*header.get("checkpoints", []), note]
    return f"; the witnessed checkpoint ({said}) matches this log"


def _served(
    header: dict[str, Any], witnesses: list[tuple[str, bytes]], keys: list[bytes], served: list[str]
) -> str:
    """For each witness, the largest checkpoint it cosigned of those served (up to the export's
    size), checked with the log's signature; a one-line refusal when a witness cosigned none.
    Each is added to the export's checkpoints, so the export is then held to it."""
    from broker.crypto.cosignature import verify_cosignature

    own = [n for n in header.get("checkpoints", []) if isinstance(n, str)]
    limit = max((_size(n) for n in own), default=0)
    notes = sorted(own + [n for n in served if _size(n) <= limit], key=_size)
    said = []
    for name, public in witnesses:
        for note in reversed(notes):
            try:
                verify_cosignature(note, name, public)
            except ValueError:
                continue
            said.append(_check_cosignatures(note, [(name, public)], header, keys))
            header["checkpoints"] = [*header.get("checkpoints", []), note]
            break
        else:
            raise ConfigError(
                f"NOT witnessed: no checkpoint this log serves carries a valid cosignature "
                f"from {name}"
            )
    latest = _size(notes[-1]) if notes else 0
    return f"; witnessed: {'; '.join(said)} (latest checkpoint: size {latest})"


def _size(note: str) -> int:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else 0


# -- keys monitor ----------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> list[bytes]:
    if args.file:
        try:
            return Path(args.file).read_bytes().splitlines(keepends=True)
        except OSError as e:
            raise ConfigError(f"cannot read {args.file}: {e.strerror}") from e
    out = io.BytesIO()
    asyncio.run(local_export(args, out))
    return out.getvalue().splitlines(keepends=True)


def cmd_monitor(args: argparse.Namespace) -> int:
    from broker.audit.verify import read_export, verify_export
    from broker.service.audit_workers import on_every_core
    from broker.trust.monitor import monitor

    try:
        header, lines = read_export(_export(args))
        lines = list(lines)
        verdict = verify_export(header, lines, prepare=on_every_core())
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


# -- the parser ------------------------------------------------------------------------------


def add_audit_commands(sub: Any) -> None:
    """``liaison audit export`` and ``liaison audit verify``."""
    asub = group(sub, "audit", "the tamper-evident audit log")
    p = command(
        asub, "export", cmd_audit_export, "export the log (JSON Lines) with its signed checkpoints"
    )
    p.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    recipient_options(p)
    p = command(
        asub, "verify", cmd_audit_verify, "verify an export, or a live broker's log with --url"
    )
    p.add_argument("file", metavar="FILE", nargs="?")
    p.add_argument(
        "--checkpoint-key",
        action="append",
        metavar="KEY",
        help="a log key to trust: verifier key or base64 Ed25519 (repeat for old and new keys)",
    )
    p.add_argument(
        "--witness-key",
        action="append",
        metavar="VKEY",
        help="a witness's verifier key (`liaison witness --vkey`); its cosignature must be on "
        "--cosigned, else on a checkpoint the broker serves (repeat)",
    )
    p.add_argument(
        "--peer",
        action="append",
        metavar="URL",
        help="a peer broker: its witness key (asked of it) must have cosigned a checkpoint "
        "the broker serves (repeat; with --follow, the logs on the notice's way, in order)",
    )
    p.add_argument(
        "--cosigned",
        metavar="FILE",
        help="a checkpoint cosigned by the witnesses (`liaison witness --out`, or its --state file)",
    )
    follow_options(p)
    recipient_options(p)


def add_keys_commands(sub: Any) -> Any:
    """``liaison keys monitor``; returns the ``keys`` group (the operator's commands join it)."""
    ksub = group(
        sub,
        "keys",
        "the broker's keys per purpose; agency keys in the audit log (key transparency)",
        usage_on_stdout=True,
    )
    p = command(
        ksub,
        "monitor",
        cmd_monitor,
        "list every key bound to an agency, and notices signed with keys it did not make",
    )
    p.add_argument("file", metavar="EXPORT", nargs="?", help="an audit export (default: --data)")
    p.add_argument("--as", dest="as_", required=True, metavar="AGENCY")
    p.add_argument(
        "--expect", action="append", metavar="KEYID", help="a key the agency made (repeat)"
    )
    data_option(p)
    return ksub
