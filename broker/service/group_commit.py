"""Group commit: notices that arrive together are committed in one transaction.

Invariant: a waiter is answered only after its notice is durably committed, and each waiter gets
exactly the answer it would have had alone (a batch with a conflict is retried notice by notice).
"""

from __future__ import annotations

import asyncio

from broker.service.rounds import Rounds, settle
from broker.store import Database
from broker.store import intake_repo as repo
from broker.store.group_writer import group_writer


class CommitBatcher:
    """Group commit: notices that arrive together are committed in one transaction.

    One consumer takes whatever is queued (up to ``max_batch``), commits it with one statement
    per table, and answers each waiter; a batch with a conflict is retried notice by notice, so
    each waiter gets exactly the answer it would have had alone. A waiter is answered only
    after its notice is durably committed.
    """

    def __init__(self, db: Database, max_batch: int = 64) -> None:
        self.db = db
        self.writer = group_writer(db)  # a raw sqlite3 thread for a file, else the engine's
        self._rounds: Rounds[tuple[repo.NoticeWrite, asyncio.Future[None]]] = Rounds(
            "commit-batcher", self._commit_round, max_batch
        )

    async def commit(self, write: repo.NoticeWrite) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rounds.put((write, done))
        await done

    async def close(self) -> None:
        await self._rounds.close()
        await self.writer.close()

    async def _commit_round(
        self, batch: list[tuple[repo.NoticeWrite, asyncio.Future[None]]]
    ) -> None:
        try:
            await self.writer.commit_notices([w for w, _ in batch])
        except repo.BatchConflict:
            pass  # notice by notice, below
        except Exception as e:  # the store failed: every waiter hears it, none is left hanging
            settle((done for _, done in batch), e)
            return
        else:
            settle(done for _, done in batch)
            return
        # Outside the handler, so that each notice's error is its own and not raised in the
        # conflict's context (boundary.in_doubt judges a lost COMMIT by its own cause only).
        for write, done in batch:
            await self._one(write, done)

    async def _one(self, write: repo.NoticeWrite, done: asyncio.Future[None]) -> None:
        try:
            await self.writer.commit_notice(write)
        except (
            Exception
        ) as e:  # NonceReplayed, IdempotencyRace, StoreUnavailable: the caller's to judge
            if not done.done():
                done.set_exception(e)
            return
        if not done.done():
            done.set_result(None)
