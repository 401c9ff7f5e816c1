"""``liaison audit verify --peer URL --follow NOTICE_ID``: one crossing, through every log.

Only what an auditor has: an auditor's credentials on each side (``--data/--as`` or
``--url/--contact/--key`` here, ``--peer-as`` with ``--peer-key`` or ``--peer-data`` there) and
each log's key pinned (``--checkpoint-key``, ``--peer-checkpoint-key``). Through the hub the
peer options repeat, one of each per log in the order the notice went (the hub, then the
country it relayed to). Each log's witness key is asked of its neighbour on the way (the broker
the notice came from; for this log, the first peer), never of the broker whose log it vouches
for. The checks are broker/audit/follow.py's.
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.errors import ConfigError

if TYPE_CHECKING:  # the checks (and their crypto) load only when the command runs
    from broker.audit.follow import Proved, Witnessed


def follow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--follow",
        metavar="NOTICE_ID",
        help="with --url and --peer: this notice's events here and its half at the peer, each "
        "proved in a checkpoint its neighbour cosigned; through the hub, give --peer (and "
        "each --peer-* option) once per log, in the order the notice went",
    )
    p.add_argument(
        "--peer-as",
        action="append",
        metavar="CONTACT_ID",
        help="with --follow: your auditor id at the peer (once per --peer)",
    )
    p.add_argument(
        "--peer-key",
        action="append",
        metavar="PEM",
        help="with --follow: your Ed25519 key at the peer (once per --peer, or --peer-data)",
    )
    p.add_argument(
        "--peer-data",
        action="append",
        metavar="DIR",
        help="with --follow: the peer's demo data (its keys/; once per --peer, or --peer-key)",
    )
    p.add_argument(
        "--peer-checkpoint-key",
        action="append",
        metavar="KEY",
        help="with --follow: the peer's log key to trust (as --checkpoint-key; with several "
        "--peer, one each in their order)",
    )


@dataclass(frozen=True)
class Hop:
    """One log after this one on the notice's way, with the auditor's credentials there."""

    url: str
    auditor: str
    key: Path
    log_keys: list[bytes]


def hops(args: argparse.Namespace, peer_keys: list[bytes]) -> list[Hop]:
    """--peer and its --peer-* options paired by their order; a one-line refusal otherwise."""
    urls = [u.rstrip("/") for u in args.peer or []]
    if not urls:
        raise ConfigError("--follow needs --peer URL (the broker the notice crossed to)")
    auditors = args.peer_as or []
    if len(auditors) != len(urls):
        raise ConfigError(
            f"--follow needs one --peer-as (your auditor id there) per --peer: {len(urls)} "
            f"--peer, {len(auditors)} --peer-as"
        )
    keys = args.peer_key or []
    datas = args.peer_data or []
    if (keys and datas) or len(keys or datas) != len(urls):
        raise ConfigError(
            "--follow needs --peer-key PEM (or --peer-data DIR) for each --peer-as, one kind "
            f"or the other: {len(urls)} --peer, {len(keys)} --peer-key, {len(datas)} --peer-data"
        )
    files = (
        [Path(k) for k in keys]
        if keys
        else [Path(d) / "keys" / f"{who}.pem" for d, who in zip(datas, auditors, strict=True)]
    )
    if not peer_keys:
        raise ConfigError(
            "--follow needs --checkpoint-key and --peer-checkpoint-key (the pinned log keys)"
        )
    if len(urls) == 1:
        pinned = [peer_keys]
    elif len(peer_keys) == len(urls):
        pinned = [[k] for k in peer_keys]
    else:
        raise ConfigError(
            f"--follow through {len(urls)} logs needs one --peer-checkpoint-key per --peer, in "
            f"their order: {len(peer_keys)} given"
        )
    return [Hop(*hop) for hop in zip(urls, auditors, files, pinned, strict=True)]


def follow(args: argparse.Namespace, log_keys: list[bytes], peer_keys: list[bytes]) -> list[str]:
    """The lines to print; a ConfigError (one line) when a half does not hold."""
    if not log_keys:
        raise ConfigError(
            "--follow needs --checkpoint-key and --peer-checkpoint-key (the pinned log keys)"
        )
    way = hops(args, peer_keys)
    from adapters.client.errors import RecipientError
    from broker.audit.follow import FollowFailed

    try:
        return asyncio.run(_follow(args, log_keys, way))
    except FollowFailed as e:
        raise ConfigError(f"NOT followed: {e}") from e
    except RecipientError as e:
        raise ConfigError(str(e)) from e


async def _follow(args: argparse.Namespace, log_keys: list[bytes], way: list[Hop]) -> list[str]:
    from adapters.client.witness import witness_key
    from broker.audit.follow import FollowFailed, next_hop, peer_notice_ids, received_as
    from broker.cli.principals import _recipient
    from broker.crypto.cosignature import parse_vkey

    async with AsyncExitStack() as stack:
        here = await stack.enter_async_context(_recipient(args))
        there = [await stack.enter_async_context(_auditor_at(hop)) for hop in way]
        # This log's witness is the first peer; each later log's, the broker before it.
        urls = [here.base_url.rstrip("/"), *(hop.url for hop in way)]
        witnesses = [parse_vkey(await witness_key(url)) for url in urls]
        ours, our_proof = await _half(here, args.follow, log_keys, witnesses[1])
        ids = peer_notice_ids(ours)
        if len(ids) != 1:
            raise FollowFailed(
                f"this log's events of {args.follow} name {len(ids)} peers' notice ids "
                "(none: it has not crossed, or no report came back yet)"
            )
        lines = [f"This log: notice {args.follow}, {_proved_in(our_proof)}"]
        lines += [f"  {p.line()}" for p in ours]
        counts = [f"{len(ours)} events here"]
        (step,) = ids.items()
        came_as = args.follow
        for i, (hop, client) in enumerate(zip(way, there, strict=True)):
            peer, theirs_id = step
            theirs, their_proof = await _half(client, theirs_id, hop.log_keys, witnesses[i])
            received = received_as(theirs, came_as)
            lines.append(
                f"The peer's log ({peer}, {hop.url}): notice {theirs_id}, received as {came_as} "
                f"(#{received.seq}), {_proved_in(their_proof)}"
            )
            lines += [f"  {p.line()}" for p in theirs]
            counts.append(
                f"{len(theirs)} at {peer}" if len(way) > 1 else f"{len(theirs)} at the peer"
            )
            onward = next_hop(theirs, received)
            if i + 1 < len(way):
                if onward is None:
                    raise FollowFailed(
                        f"{peer} did not send notice {theirs_id} on: its log names no peer "
                        f"after the one it came from, so there is nothing to follow at {way[i + 1].url}"
                    )
                step, came_as = onward, theirs_id
            elif onward is not None:
                lines.append(
                    f"note: {peer} relayed it on to {onward[0]} as notice {onward[1]}; follow it "
                    f"there with another --peer (and its --peer-* options)"
                )
    if len(way) == 1:
        lines.append(
            f"OK: followed {args.follow} through both logs: {', '.join(counts)}, each included "
            "in a checkpoint the other side cosigned"
        )
    else:
        lines.append(
            f"OK: followed {args.follow} through {len(way) + 1} logs: {', '.join(counts)}, each "
            "included in a checkpoint its neighbour on the way cosigned"
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


def _auditor_at(hop: Hop) -> Any:
    from adapters.client.recipient import RecipientClient
    from broker.crypto.keys import read_private_key

    # The peer's settings are never read: only the auditor's key, as an auditor holds it.
    return RecipientClient(
        hop.url, hop.auditor, read_private_key(hop.key, expected="ed25519"), None
    )
