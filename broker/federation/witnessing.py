"""This broker as a witness of its peers' logs: c2sp.org/tlog-witness ``add-checkpoint``.

A peer file that declares ``log_origin`` and ``log_key`` makes this broker a witness of that
peer's audit log. A checkpoint submitted for that origin is cosigned (``cosignature/v1``, with
this broker's key, under ``witness_name(<this log's origin>)``) only when its signature
verifies with the pinned key and it extends — by an RFC 9162 consistency proof — what this
witness cosigned before (``audit/tlog_witness.decide``). Invariants:
- nothing is written for an unknown origin or an unsigned checkpoint (anyone may call: the
  checkpoint's signature is the only authentication, as the specification says);
- the state of a log moves forward only, by compare-and-swap (``store/witness_repo``): two
  concurrent requests never roll it back;
- a refusal of a signed checkpoint that does not extend the cosigned one (a rewritten history,
  a fork) keeps the request as evidence, once, and records ``witness.refused`` in this
  broker's own audit log; nothing else is audited (a cosignature recorded in the log would
  grow it, and so ask the peer for a cosignature in turn, for ever).
"""

from __future__ import annotations

from datetime import datetime

from broker.audit.events import AuditEvent
from broker.audit.tlog_witness import (
    Conflict,
    Refusal,
    Submission,
    decide,
    format_request,
    parse_request,
)
from broker.audit.witness import Cosigned, WitnessState
from broker.crypto.cosignature import cosign, vkey
from broker.crypto.keys import Signer
from broker.errors import (
    AuthenticationFailed,
    CheckpointConflict,
    CheckpointFork,
    CheckpointInconsistent,
    CheckpointNotSigned,
    CheckpointRequestInvalid,
    LiaisonError,
    UnknownLog,
)
from broker.federation.agreements import Peer
from broker.logs import get_logger
from broker.state import BrokerState
from broker.store import witness_repo

log = get_logger("liaison.witness")
RACES = 3  # decisions retried when another request moved the state first
EVIDENCE = {"witness_fork", "witness_inconsistent", "witness_bad_proof", "witness_rollback"}


class PeerWitness:
    def __init__(self, state: BrokerState, key: Signer, name: str) -> None:
        self.state = state
        self.key = key
        self.name = name
        self.vkey = vkey(name, key.public_key().public_bytes_raw())

    async def add_checkpoint(
        self,
        body: bytes,
        now: datetime,
        request_id: str | None,
        client_certificate: bytes | None = None,
    ) -> str:
        """The cosignature line(s) for the submitted checkpoint; a ``LiaisonError`` otherwise.
        ``client_certificate``: the verified mTLS certificate's SHA-256 (None without mTLS),
        which the peer whose log it is must pin."""
        try:
            submission = parse_request(body)
        except Refusal as r:
            raise CheckpointRequestInvalid(r.message) from r
        peer, log_key = self._peer(submission.origin)
        if not peer.holds_certificate(client_certificate):
            raise AuthenticationFailed(detail="client certificate not pinned for the peer")
        for _ in range(RACES):
            current = await witness_repo.state(self.state.engine, submission.origin, log_key)
            cosigned = await self._decide(peer, current, submission, now, request_id)
            try:
                await witness_repo.advance(self.state.engine, peer.id, current, cosigned.state, now)
            except witness_repo.StateMoved:
                continue
            log.info(
                "checkpoint_cosigned",
                peer=peer.id,
                origin=submission.origin,
                size=cosigned.checkpoint.size,
                first=cosigned.first,
            )
            return cosigned.note[len(submission.note) :]
        moved = await witness_repo.state(self.state.engine, submission.origin, log_key)
        raise CheckpointConflict("the log's state moved meanwhile", size=moved.size)

    def _peer(self, origin: str) -> tuple[Peer, bytes]:
        """The peer whose file declares this log, and its pinned key (as the policies say now)."""
        for peer in self.state.view.policies.peers.values():
            if peer.log_origin == origin and peer.log_key is not None:
                return peer, peer.log_key
        raise UnknownLog("this witness knows no log of that origin")

    async def _decide(
        self,
        peer: Peer,
        current: WitnessState,
        submission: Submission,
        now: datetime,
        request_id: str | None,
    ) -> Cosigned:
        try:
            return decide(
                current,
                submission,
                int(now.timestamp()),
                lambda body, at: cosign(body, self.name, self.key, at),
            )
        except Conflict as c:
            raise CheckpointConflict(c.message, size=c.size) from c
        except Refusal as r:
            if r.code in EVIDENCE:
                await self._evidence(peer, submission, r, now, request_id)
            raise _error(r) from r

    async def _evidence(
        self,
        peer: Peer,
        submission: Submission,
        refusal: Refusal,
        now: datetime,
        request_id: str | None,
    ) -> None:
        request = format_request(submission.old, submission.proof, submission.note).decode()
        event = AuditEvent(
            now,
            "broker",
            "witness.refused",
            f"log:{submission.origin}",
            outcome="refused",
            reason=refusal.code,
            details={"peer": peer.id, "old": submission.old, "message": refusal.message},
            request=request_id,
        )
        new = await witness_repo.keep_evidence(
            self.state.engine,
            submission.origin,
            peer.id,
            refusal.code,
            refusal.message,
            request,
            now,
            event,
        )
        log.warning("checkpoint_refused", peer=peer.id, code=refusal.code, kept=new)


def _error(refusal: Refusal) -> LiaisonError:
    if refusal.status == 403:
        return CheckpointNotSigned("no signature on the checkpoint verifies with the log's key")
    if refusal.status == 400:
        return CheckpointRequestInvalid(refusal.message)
    if refusal.status == 409:
        return CheckpointFork(refusal.message)
    return CheckpointInconsistent(refusal.message)
