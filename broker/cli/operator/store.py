"""``liaison store purge``: the operator's step that crypto-shredding needs on PostgreSQL.

A shred round on PostgreSQL can only free the destroyed tuples; their bytes stay in the table
files until the tables are rewritten, which locks them (see ``store.engine.purge_history``). Run
this in a maintenance window, on a schedule shorter than the shortest channel retention.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from broker.cli.common import command, data_dir, group
from broker.config import load_settings, resolved_database_url
from broker.terminal import safe_print as print  # untrusted text: control characters escaped


def cmd_store_purge(args: argparse.Namespace) -> int:
    data = data_dir(args)
    from broker.store.engine import SHREDDED_TABLES  # the store's libraries load only when used

    settings = load_settings(data, os.environ)
    outcome = asyncio.run(_purge(resolved_database_url(settings, os.environ)))
    if outcome == "busy":
        print("liaison: a reader held the WAL; nothing was truncated, try again")
        return 1
    print(f"{outcome}: {', '.join(SHREDDED_TABLES)} (see deploy/OPERATIONS.md for what remains)")
    return 0


async def _purge(url: str) -> str:
    from broker.store.engine import create_engine, purge_history

    engine = create_engine(url)
    try:
        return await purge_history(engine, rewrite=True)
    finally:
        await engine.dispose()


def add_store_commands(sub: Any) -> None:
    """Register ``liaison store purge``."""
    ssub = group(sub, "store", "the database", usage_on_stdout=True)
    p = command(
        ssub,
        "purge",
        cmd_store_purge,
        "remove shredded bytes from the store's files (PostgreSQL: VACUUM FULL, locks the tables)",
    )
    p.add_argument("--data", metavar="DIR", help="data directory (default: $LIAISON_DATA)")
