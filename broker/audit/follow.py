"""Following a notice across a border through two logs (or three, through the hub): the checks,
with no I/O.

Each broker logs its half of a crossing with the other's ids (the sender ``peer`` and
``peer_notice_id`` on ``notice.routed_abroad`` and the other ``*_abroad`` events; the receiver
on ``notice.received_from_peer``). An auditor holds each side's events to a checkpoint that
(1) the log's own pinned key signed and (2) the *other* side cosigned as a witness, by an RFC
9162 inclusion proof of each event's exact bytes. Invariants:

- an event is shown only from the bytes whose leaf is proved, never from fields beside them;
- a checkpoint counts only with the pinned log key's signature and the other side's
  cosignature, so neither broker alone can show an auditor a history the other did not witness;
- the two halves are matched by the ids each side recorded of the other, both ways: the
  receiver's ``notice.received_from_peer`` must name the sender's notice id;
- through a relay (the hub), its log is a receiver's half and a sender's half at once: the one
  peer it names besides the broker it received from is the next log to follow, never a guess
  among several.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.audit.checkpoint import Checkpoint
from broker.audit.merkle import leaf_hash, verify_inclusion
from broker.crypto.cosignature import verify_cosignature
from broker.crypto.note import open_note_any


class FollowFailed(ValueError):
    """A half of the crossing does not hold: the reason says which event or checkpoint."""


@dataclass(frozen=True)
class Witnessed:
    checkpoint: Checkpoint
    witness: str
    cosigned_at: int


@dataclass(frozen=True)
class Proved:
    seq: int
    event: dict[str, Any]  # parsed from the proved bytes

    def line(self) -> str:
        e = self.event
        details = e.get("details") or {}
        said = [f"{k}={details[k]}" for k in ("peer", "peer_notice_id", "role") if details.get(k)]
        head = f"#{self.seq:<4} {e.get('at', '')}  {e.get('actor', '')}  {e.get('action', '')}"
        return f"{head}  {', '.join(said)}" if said else head


def witnessed(
    notes: Sequence[str],
    key_name: str,
    log_keys: Sequence[bytes],
    witness: tuple[str, bytes],
    at_least: int,
) -> Witnessed:
    """The largest served checkpoint signed with a pinned log key and cosigned by ``witness``;
    it must cover ``at_least`` events."""
    name, public = witness
    best: Witnessed | None = None
    for note in notes:
        try:
            checkpoint = Checkpoint.parse(open_note_any(note, key_name, list(log_keys)))
            at = verify_cosignature(note, name, public)
        except ValueError:
            continue
        if best is None or checkpoint.size > best.checkpoint.size:
            best = Witnessed(checkpoint, name, at)
    if best is None:
        raise FollowFailed(
            f"no checkpoint signed with the pinned log key carries {name}'s cosignature"
        )
    if best.checkpoint.size < at_least:
        raise FollowFailed(
            f"{name} has cosigned this log up to size {best.checkpoint.size}, not yet event "
            f"#{at_least}: try again after the next checkpoint"
        )
    return best


def proved(event: dict[str, Any], proof: dict[str, Any], checkpoint: Checkpoint) -> Proved:
    """The event, parsed from its leaf bytes, once its inclusion in ``checkpoint`` is proved."""
    try:
        data = base64.b64decode(event["leaf_data"], validate=True)
        seq = int(event["seq"])
        path = [base64.b64decode(h, validate=True) for h in proof["proof"]]
        shown = json.loads(data)
    except (KeyError, TypeError, ValueError) as e:
        raise FollowFailed(f"event {event.get('seq')!r}: not an event with its proof ({e})") from e
    leaf = leaf_hash(data)
    if not verify_inclusion(leaf, seq - 1, checkpoint.size, path, checkpoint.root):
        raise FollowFailed(
            f"event #{seq} is NOT included in the checkpoint of size {checkpoint.size}"
        )
    if not isinstance(shown, dict) or shown.get("seq", seq) != seq:
        raise FollowFailed(f"event #{seq}: its bytes say another sequence number")
    return Proved(seq, shown)


def peer_notice_ids(events: Sequence[Proved]) -> dict[str, str]:
    """peer → the notice id that peer gave the crossing, as this side's events record it."""
    found: dict[str, str] = {}
    for p in events:
        details = p.event.get("details") or {}
        peer, theirs = details.get("peer"), details.get("peer_notice_id")
        if isinstance(peer, str) and isinstance(theirs, str):
            found.setdefault(peer, theirs)
    return found


def received_as(events: Sequence[Proved], notice_id: str) -> Proved:
    """The receiver's ``notice.received_from_peer`` naming the sender's ``notice_id``."""
    for p in events:
        details = p.event.get("details") or {}
        if p.event.get("action") == "notice.received_from_peer":
            if details.get("peer_notice_id") == notice_id:
                return p
            raise FollowFailed(
                f"the peer received another notice ({details.get('peer_notice_id')!r}), "
                f"not {notice_id}"
            )
    raise FollowFailed("the peer's log shows no notice.received_from_peer for it")


def next_hop(events: Sequence[Proved], received: Proved) -> tuple[str, str] | None:
    """Where a relay sent the notice on: (peer, that peer's notice id) named by the relay's
    events besides the peer it ``received`` the notice from; None when it went no further."""
    came_from = (received.event.get("details") or {}).get("peer")
    onward = {peer: theirs for peer, theirs in peer_notice_ids(events).items() if peer != came_from}
    if len(onward) > 1:
        raise FollowFailed(
            f"the relay's events name {len(onward)} peers it sent the notice on to "
            f"({', '.join(sorted(onward))}), not one"
        )
    return next(iter(onward.items()), None)
