"""Following a crossing through two logs (broker/audit/follow.py): the checks, on a small log.

Attacker: a broker's own host showing an auditor a history its peer did not witness — an event
altered after the peer cosigned, a checkpoint the peer never cosigned, or one signed by a key
other than the pinned one; and a peer whose half names another notice.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.checkpoint import Checkpoint
from broker.audit.follow import (
    FollowFailed,
    Proved,
    next_hop,
    peer_notice_ids,
    proved,
    received_as,
    witnessed,
)
from broker.audit.merkle import CompactRange, inclusion_proof, leaf_hash
from broker.crypto.cosignature import cosign
from broker.crypto.note import sign_note

ORIGIN = "xk.example/audit"
LOG = Ed25519PrivateKey.generate()
PEER = Ed25519PrivateKey.generate()
PEER_NAME = "mk.example/audit/witness"
WITNESS = (PEER_NAME, PEER.public_key().public_bytes_raw())
LOG_KEYS = [LOG.public_key().public_bytes_raw()]


def events(n: int) -> list[bytes]:
    return [
        json.dumps({"seq": i + 1, "action": "notice.routed_abroad" if i else "notice.posted",
                    "details": {"peer": "mk", "peer_notice_id": "n-mk"} if i else {}}).encode()
        for i in range(n)
    ]  # fmt: skip


def note(leaves: list[bytes], key: Ed25519PrivateKey = LOG, cosigned: bool = True) -> str:
    tree = CompactRange()
    for data in leaves:
        tree.append(leaf_hash(data))
    text = Checkpoint(ORIGIN, len(leaves), tree.root()).text()
    signed = sign_note(text, ORIGIN, key)
    return signed + (cosign(text, PEER_NAME, PEER, 1_800_000_000) if cosigned else "")


def shown(data: bytes, seq: int) -> dict[str, Any]:
    return {"seq": seq, "leaf_data": base64.b64encode(data).decode()}


def proof_of(seq: int, leaves: list[bytes]) -> dict[str, Any]:
    path = inclusion_proof(seq - 1, [leaf_hash(d) for d in leaves])
    return {"proof": [base64.b64encode(h).decode() for h in path]}


def test_each_event_is_proved_in_the_largest_checkpoint_the_peer_cosigned() -> None:
    log = events(5)
    served = [note(log[:3]), note(log), note([*log, b"{}"], cosigned=False)]
    w = witnessed(served, ORIGIN, LOG_KEYS, WITNESS, at_least=5)
    assert w.checkpoint.size == 5 and w.witness == PEER_NAME
    shown_events = [
        proved(shown(d, i + 1), proof_of(i + 1, log), w.checkpoint) for i, d in enumerate(log)
    ]
    assert [p.seq for p in shown_events] == [1, 2, 3, 4, 5]
    assert peer_notice_ids(shown_events) == {"mk": "n-mk"}


def test_an_event_altered_after_the_peer_cosigned_is_not_included() -> None:
    log = events(4)
    w = witnessed([note(log)], ORIGIN, LOG_KEYS, WITNESS, at_least=4)
    forged = log[2].replace(b"mk", b"ba")
    rewritten = [*log[:2], forged, log[3]]
    with pytest.raises(FollowFailed, match="#3 is NOT included"):
        proved(shown(forged, 3), proof_of(3, rewritten), w.checkpoint)
    # A log whose third leaf's bytes say they are event #2: never shown as #3.
    odd = [log[0], log[1], log[1], log[3]]
    w = witnessed([note(odd)], ORIGIN, LOG_KEYS, WITNESS, at_least=4)
    with pytest.raises(FollowFailed, match="another sequence number"):
        proved(shown(log[1], 3), proof_of(3, odd), w.checkpoint)


@pytest.mark.parametrize(
    ("served", "reason"),
    [
        ([note(events(4), cosigned=False)], r"carries mk\.example/audit/witness's cosignature"),
        ([note(events(4), key=Ed25519PrivateKey.generate())], "signed with the pinned log key"),
        ([note(events(2))], "up to size 2, not yet event #4"),
    ],
)
def test_a_checkpoint_counts_only_signed_by_the_pinned_key_and_cosigned_by_the_peer(
    served: list[str], reason: str
) -> None:
    with pytest.raises(FollowFailed, match=reason):
        witnessed(served, ORIGIN, LOG_KEYS, WITNESS, at_least=4)


def test_the_peers_half_must_name_this_notice() -> None:
    def received(theirs: str) -> Proved:
        return Proved(
            1, {"action": "notice.received_from_peer", "details": {"peer_notice_id": theirs}}
        )

    assert received_as([received("n-xk")], "n-xk").seq == 1
    with pytest.raises(FollowFailed, match="received another notice"):
        received_as([received("n-other")], "n-xk")
    with pytest.raises(FollowFailed, match=r"no notice\.received_from_peer"):
        received_as([Proved(1, {"action": "notice.routed"})], "n-xk")


def test_a_relays_log_names_the_one_peer_it_sent_the_notice_on_to() -> None:
    def event(seq: int, action: str, peer: str, theirs: str) -> Proved:
        return Proved(seq, {"action": action, "details": {"peer": peer, "peer_notice_id": theirs}})

    received = event(1, "notice.received_from_peer", "xk", "n-xk")
    relay = [received, event(2, "notice.routed_abroad", "mk", "n-mk")]
    assert next_hop(relay, received) == ("mk", "n-mk")
    assert next_hop([received], received) is None  # it went no further: the end of the way
    # Two onward peers: never a guess between them.
    with pytest.raises(FollowFailed, match="name 2 peers it sent the notice on to"):
        next_hop([*relay, event(3, "notice.routed_abroad", "ba", "n-ba")], received)
