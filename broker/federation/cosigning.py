"""This broker's checkpoints, cosigned by its peers' witnesses (c2sp.org/tlog-witness client).

Run by the checkpoint job right after it signs (and every round after, until each peer has
cosigned the latest checkpoint): for each peer whose file declares its log (``log_origin``,
``log_key``: witnessing is mutual) and its ``url``, the latest checkpoint — with this log's own
signatures only — is POSTed to ``URL/v1/witness/add-checkpoint`` with the RFC 9162 consistency
proof from the size that peer cosigned last. A 409 says which size that is (after a restart this
broker does not know, and asks with ``old 0``, as the specification allows); the request is
made again from there, once. The answer's lines are kept only when they verify as the peer's
cosignature (``witness_name(log_origin)``, its pinned ``broker_key``); they are appended to the
stored checkpoint, in place of an older line of the same witness, so every read of the
checkpoints (``GET /v1/audit/checkpoint``, ``/checkpoints``, exports) shows them.

Why a periodic job and not the outbox: a witness holds one size per log, and only the latest
checkpoint matters — an outbox row per checkpoint would retry stale ones into 409s. A peer that
fails is retried with backoff (``webhooks.backoff_seconds`` doubling to ``max_backoff_seconds``),
peers in parallel, each call bounded by ``webhooks.timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Protocol

from broker.audit.merkle import consistency_proof
from broker.audit.tlog_witness import SIZE_TYPE, format_request, parse_cosignatures, parse_size
from broker.crypto.cosignature import verify_cosignature
from broker.crypto.note import DASH
from broker.domain.delivery import WitnessAnswer
from broker.federation.agreements import Peer
from broker.logs import get_logger
from broker.service.backoff import retry_delay
from broker.state import BrokerState
from broker.store import audit_repo, witness_repo

log = get_logger("liaison.cosigning")
PATH = "/v1/witness/add-checkpoint"


class WitnessPoster(Protocol):
    async def add_checkpoint(self, url: str, body: bytes, *, seconds: float) -> WitnessAnswer: ...

    async def close(self) -> None: ...


def own_note(note: str, origin: str) -> str:
    """The checkpoint with this log's signature lines only (no witness's)."""
    text, _, signatures = note.partition("\n\n")
    own = [s for s in signatures.splitlines() if s.startswith(f"{DASH}{origin} ")]
    return text + "\n\n" + "".join(f"{s}\n" for s in own)


class CheckpointSubmitter:
    def __init__(
        self,
        state: BrokerState,
        poster: WitnessPoster,
        origin: str,
        *,
        timeout_seconds: float,
        backoff_seconds: float,
        max_backoff_seconds: float,
    ) -> None:
        self.state = state
        self.poster = poster
        self.origin = origin
        self.timeout_seconds = timeout_seconds
        self.backoff = (backoff_seconds, max_backoff_seconds)
        self.cosigned: dict[str, int] = {}  # peer -> the size it cosigned last (as it said)
        self.failures: dict[str, int] = {}
        self.not_before: dict[str, datetime] = {}

    def peers(self) -> list[Peer]:
        """The peers to ask, as the policies say now."""
        peers = self.state.view.policies.peers.values()
        return [p for p in peers if p.url and p.log_origin]

    async def tick(self, now: datetime) -> None:
        latest = await witness_repo.latest_checkpoint(self.state.engine)
        if latest is None:
            return
        size, note = latest
        due = [
            p
            for p in self.peers()
            if self.cosigned.get(p.id) != size and self.not_before.get(p.id, now) <= now
        ]
        if due:
            await asyncio.gather(*(self._submit(p, size, note, now) for p in due))

    async def _submit(self, peer: Peer, size: int, note: str, now: datetime) -> None:
        old = self.cosigned.get(peer.id, 0)
        for _ in range(2):  # a 409 tells the size to start from: once more from there
            if old > size:
                log.error("peer_witness_ahead", peer=peer.id, peer_size=old, size=size)
                break
            answer = await self._post(peer, old, size, note)
            if answer.status == 200:
                if await self._keep(peer, size, note, answer.text):
                    return
                break
            if answer.status == 409 and answer.content_type == SIZE_TYPE:
                try:
                    old = parse_size(answer.text)
                except ValueError:
                    break
                self.cosigned[peer.id] = old
                continue
            log.warning(
                "checkpoint_not_cosigned",
                peer=peer.id,
                size=size,
                status=answer.status,
                error=answer.error or answer.text[:200],
            )
            break
        self._failed(peer, now)

    async def _post(self, peer: Peer, old: int, size: int, note: str) -> WitnessAnswer:
        proof: list[bytes] = []
        if 0 < old < size:
            proof = consistency_proof(old, await audit_repo.leaves(self.state.engine, size))
        body = format_request(old, proof, own_note(note, self.origin))
        url = str(peer.url).rstrip("/") + PATH
        return await self.poster.add_checkpoint(url, body, seconds=self.timeout_seconds)

    async def _keep(self, peer: Peer, size: int, note: str, text: str) -> bool:
        """Store the lines that verify as the peer's cosignature; ignore any other (the spec)."""
        name = str(peer.witness_name)
        base = own_note(note, self.origin)
        try:
            lines = parse_cosignatures(text)
        except ValueError:
            lines = []
        for line in lines:
            try:
                verify_cosignature(base + line, name, peer.broker_key)
            except ValueError:
                continue
            await witness_repo.add_cosignature(self.state.engine, size, name, line)
            self.cosigned[peer.id] = size
            self.failures.pop(peer.id, None)
            log.info("checkpoint_cosigned_by_peer", peer=peer.id, size=size)
            return True
        log.warning("peer_cosignature_invalid", peer=peer.id, size=size)
        return False

    def _failed(self, peer: Peer, now: datetime) -> None:
        attempts = self.failures.get(peer.id, 0) + 1
        self.failures[peer.id] = attempts
        jitter = random.random()  # noqa: S311 - spreads retries, not a secret
        delay = retry_delay(attempts, *self.backoff, None, jitter)
        self.not_before[peer.id] = now + timedelta(seconds=delay)

    async def close(self) -> None:
        await self.poster.close()
