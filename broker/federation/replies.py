"""Replies across a border: a recipient here answers the agency over there. Pure: no I/O.

A recipient's reply (with its acknowledgement, ``service/acks.py``) to a notice received from a
peer is encrypted **directly to the sending agency's X25519 key as the sending country bound it**
in its signed directory (the origin the notice came with, checked against the peer file's
``directory_root``): not to this broker's escrow, not to the sending broker's. Why: the key is
known here — the sending country publishes it in the bindings the recipient already verifies
against its own pin of that root — so no broker needs to open anything, and neither can.

Invariants:
- the reply key offered to a recipient (``reply_key``) and the only keys a reply is taken for
  (``reply_key_ids``) are the sender's active X25519 keys in the origin's bindings, under the
  pinned root; an origin that fails (or a peer no longer declared) offers none and takes none;
- what crosses (``crossing_replies``) is the reply's id here, the role, the time, the key id and
  the sealed bytes: no contact, no person; the sending broker refuses anything more
  (``parse_replies``) and stores a reply id once per notice (``new_replies``), so a report sent
  twice never makes two replies;
- the sealed bytes travel as the recipient made them; the plaintext is on neither broker's disk.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from broker.errors import BadRequest, TrustRefused
from broker.federation.origin import origin_reply_keys
from broker.state import View
from broker.trust.core import Binding

REPLY_FIELDS = {"id", "role", "created_at", "key_id", "wrap", "nonce", "ciphertext"}
MAX_REPLIES = 64  # replies per report: one per acknowledging contact of the notice
MAX_SEALED = 350_000  # base64 characters of a reply's ciphertext, as intake takes it
MAX_SMALL = 256  # base64 characters of a wrap or a nonce
# What a notice's replies may weigh together, in base64 characters, so that a report carrying
# them all (with up to 256 roles) stays under a peer's default 256 KiB body limit: a reply that
# would pass it is refused at the acknowledgement (422), never cut from a report.
MAX_REPLIES_CHARS = 160_000


def reply_keys(
    view: View,
    peer: str,
    origin: tuple[bytes, bytes],
    sender: str,
    now: datetime,
    country: str | None = None,
) -> list[Binding]:
    """The keys a reply to a notice received from ``peer`` may be encrypted to (none: refused).
    ``country``: the notice came relayed by the hub from that member country, whose root the
    hub's peer file pins (``Peer.origin_pin``); None: the peer's own."""
    declared = view.policies.peers.get(peer)
    pin = None if declared is None else declared.origin_pin(country)
    if pin is None:
        return []
    try:
        return origin_reply_keys(origin[0], origin[1], pin=pin, sender=sender, now=now)
    except (TrustRefused, ValueError, KeyError, TypeError):
        return []


def reply_key(keys: Sequence[Binding]) -> dict[str, str] | None:
    """The key offered to a recipient, as a fetch shows it (the newest)."""
    if not keys:
        return None
    return {"key_id": keys[-1].key_id, "public": _b64(keys[-1].public)}


def fits(stored: Sequence[dict[str, Any]], reply: dict[str, Any]) -> bool:
    """Whether ``reply`` still fits in the reports of a notice that has ``stored`` replies."""
    weight = sum(_weight(r) for r in stored) + _weight(reply)
    return len(stored) < MAX_REPLIES and weight <= MAX_REPLIES_CHARS


def _weight(reply: dict[str, Any]) -> int:
    return sum(4 * ((len(reply[name]) + 2) // 3) for name in ("wrap", "nonce", "ciphertext"))


def crossing_replies(replies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The replies as a status report carries them back to the sending broker."""
    return [
        {
            "id": str(r["id"]),
            "role": r["role_id"],
            "created_at": r["created_at"].isoformat().replace("+00:00", "Z"),
            "key_id": r["key_id"],
            "wrap": _b64(r["wrap"]),
            "nonce": _b64(r["nonce"]),
            "ciphertext": _b64(r["ciphertext"]),
        }
        for r in replies
    ]


def parse_replies(value: Any) -> list[dict[str, Any]]:
    """A report's replies, checked entry by entry; ``BadRequest`` for anything else."""
    if not isinstance(value, list) or len(value) > MAX_REPLIES:
        raise BadRequest(f"a status report carries at most {MAX_REPLIES} replies")
    for reply in value:
        if not isinstance(reply, dict) or set(reply) != REPLY_FIELDS:
            raise BadRequest(f"a reported reply has exactly {', '.join(sorted(REPLY_FIELDS))}")
        for name in ("id", "role", "key_id"):
            if not _identifier(reply[name]):
                raise BadRequest(f"a reported reply's {name} is an identifier")
        reply_time(reply)
        for name, limit in (("wrap", MAX_SMALL), ("nonce", MAX_SMALL), ("ciphertext", MAX_SEALED)):
            _sealed(reply[name], name, limit)
    return value


def reply_time(reply: dict[str, Any]) -> datetime:
    """When the recipient replied, as reported: a time with a zone."""
    value = reply.get("created_at")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or len(str(value)) > 40:
        raise BadRequest("a reported reply's created_at is a time with a zone")
    return moment


def new_replies(seen: Sequence[str], replies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The replies not stored yet for this notice (by the reporting broker's reply id)."""
    known = set(seen)
    fresh = []
    for reply in replies:
        if reply["id"] not in known:
            known.add(reply["id"])
            fresh.append(reply)
    return fresh


def reply_row(
    notice_id: str, peer: str, reply: dict[str, Any], created_at: datetime
) -> dict[str, Any]:
    """The reply row the sending broker stores: the contact is the peer, never a person."""
    return {
        "notice_id": notice_id,
        "contact_id": f"peer:{peer}",
        "role_id": reply["role"],
        "created_at": created_at,
        "key_id": reply["key_id"],
        "wrap": base64.b64decode(reply["wrap"]),
        "nonce": base64.b64decode(reply["nonce"]),
        "ciphertext": base64.b64decode(reply["ciphertext"]),
    }


def _identifier(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 128
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def _sealed(value: Any, name: str, limit: int) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"a reported reply's {name} is base64 text")
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise BadRequest(f"a reported reply's {name} is base64 text") from e


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
