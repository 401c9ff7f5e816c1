"""``liaison audit verify --peer URL --follow NOTICE_ID``: one crossing, through both logs.

Only what an auditor has: an auditor's credentials on each side (``--data/--as`` or
``--url/--contact/--key`` here, ``--peer-as`` with ``--peer-key`` or ``--peer-data`` there) and
each log's key pinned (``--checkpoint-key``, ``--peer-checkpoint-key``). Each side's witness
key is asked of the *other* side (``/v1/keys/witness``), never of the broker whose log it
vouches for. The checks are broker/audit/follow.py's.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.errors import ConfigError

if TYPE_CHECKING:  # the checks (and their crypto) load only when the command runs
    from broker.audit.follow import Proved, Witnessed


def follow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--follow",
        metavar="NOTICE_ID",
        help="with --url and one --peer: this notice's events here and the peer's half there, "
        "each proved in a checkpoint the other side cosigned",
    )
    p.add_argument(
        "--peer-as", metavar="CONTACT_ID", help="with --follow: your auditor id at the peer"
    )
    p.add_argument("--peer-key", metavar="PEM", help="with --follow: your Ed25519 key at the peer")
    p.add_argument(
        "--peer-data", metavar="DIR", help="with --follow: the peer's demo data (its keys/)"
    )
    p.add_argument(
        "--peer-checkpoint-key",
        action="append",
        metavar="KEY",
        help="with --follow: the peer's log key to trust (as --checkpoint-key)",
    )


def follow(args: argparse.Namespace, log_keys: list[bytes], peer_keys: list[bytes]) -> list[str]:
    """The lines to print; a ConfigError (one line) when a half does not hold."""
    if len(args.peer or []) != 1:
        raise ConfigError(
            "--follow needs exactly one --peer URL (the broker the notice crossed to)"
        )
    if not (log_keys and peer_keys):
        raise ConfigError(
            "--follow needs --checkpoint-key and --peer-checkpoint-key (the pinned log keys)"
        )
    if not args.peer_as:
        raise ConfigError("--follow needs --peer-as (your auditor id at the peer)")
    from adapters.client.errors import RecipientError
    from broker.audit.follow import FollowFailed

    try:
        return asyncio.run(_follow(args, log_keys, peer_keys))
    except FollowFailed as e:
        raise ConfigError(f"NOT followed: {e}") from e
    except RecipientError as e:
        raise ConfigError(str(e)) from e


async def _follow(
    args: argparse.Namespace, log_keys: list[bytes], peer_keys: list[bytes]
) -> list[str]:
    from adapters.client.witness import witness_key
    from broker.audit.follow import FollowFailed, peer_notice_ids, received_as
    from broker.cli.principals import _recipient
    from broker.crypto.cosignature import parse_vkey

    peer_url = args.peer[0].rstrip("/")
    async with _recipient(args) as here, _peer_auditor(args, peer_url) as there:
        # Each log's witness is the other side: its key asked of it.
        here_witness = parse_vkey(await witness_key(peer_url))
        there_witness = parse_vkey(await witness_key(here.base_url))
        ours, our_proof = await _half(here, args.follow, log_keys, here_witness)
        ids = peer_notice_ids(ours)
        if len(ids) != 1:
            raise FollowFailed(
                f"this log's events of {args.follow} name {len(ids)} peers' notice ids "
                "(none: it has not crossed, or no report came back yet)"
            )
        ((peer, theirs_id),) = ids.items()
        theirs, their_proof = await _half(there, theirs_id, peer_keys, there_witness)
        received = received_as(theirs, args.follow)
    lines = [f"This log: notice {args.follow}, {_proved_in(our_proof)}"]
    lines += [f"  {p.line()}" for p in ours]
    lines.append(
        f"The peer's log ({peer}, {peer_url}): notice {theirs_id}, received as {args.follow} "
        f"(#{received.seq}), {_proved_in(their_proof)}"
    )
    lines += [f"  {p.line()}" for p in theirs]
    lines.append(
        f"OK: followed {args.follow} through both logs: {len(ours)} events here, {len(theirs)} "
        "at the peer, each included in a checkpoint the other side cosigned"
    )
    return lines


def _proved_in(w: Witnessed) -> str:
    return f"each event included in checkpoint size {w.checkpoint.size}, cosigned by {w.witness} at {w.cosigned_at}"


async def _half(
    client: Any, notice_id: str, log_keys: list[bytes], witness: tuple[str, bytes]
) -> tuple[list[Proved], Witnessed]:
    """One log's events of a notice, each proved in its other side's cosigned checkpoint."""
    from broker.audit.follow import FollowFailed, proved, witnessed

    events: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = await client.audit_events(cursor=cursor, notice=notice_id)
        events += page["events"]
        if not page.get("next_cursor"):
            break
        cursor = int(page["next_cursor"])
    if not events:
        raise FollowFailed(f"no event of notice {notice_id} in the log at {client.base_url}")
    key_name = (await client.audit_checkpoint())["key_name"]
    last = max(int(e["seq"]) for e in events)
    w = witnessed(await client.audit_checkpoints(), key_name, log_keys, witness, last)
    shown = []
    for event in events:
        proof = await client.audit_inclusion(int(event["seq"]), w.checkpoint.size)
        shown.append(proved(event, proof, w.checkpoint))
    return shown, w


def _peer_auditor(args: argparse.Namespace, url: str) -> Any:
    from adapters.client.recipient import RecipientClient
    from broker.crypto.keys import read_private_key

    if args.peer_key:
        key = Path(args.peer_key)
    elif args.peer_data:
        key = Path(args.peer_data) / "keys" / f"{args.peer_as}.pem"
    else:
        raise ConfigError("--follow needs --peer-key PEM (or --peer-data DIR) for --peer-as")
    # The peer's settings are never read: only the auditor's key, as an auditor holds it.
    return RecipientClient(url, args.peer_as, read_private_key(key, expected="ed25519"), None)
