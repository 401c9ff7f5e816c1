"""``liaison store purge``: the operator's step that crypto-shredding needs on PostgreSQL.

A shred round on PostgreSQL can only free the destroyed tuples; their bytes stay in the table
files until the tables are rewritten, which locks them (see ``store.engine.purge_history``). Run
this in a maintenance window, on a schedule shorter than the shortest channel retention.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.cli_text import safe_print as print  # untrusted text: control characters escaped
from broker.config import load_settings, resolved_database_url


def cmd_store_purge(args: argparse.Namespace, data: Path) -> int:
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


def add_commands(
    sub: Any, command: Callable[..., argparse.ArgumentParser], data_dir: Callable[..., Path]
) -> None:
    group = sub.add_parser("store", help="the database")
    ssub = group.add_subparsers(title="store commands", metavar="COMMAND")
    group.set_defaults(run=lambda a: group.print_help() or 2)
    p = command(
        "purge",
        lambda a: cmd_store_purge(a, data_dir(a)),
        "remove shredded bytes from the store's files (PostgreSQL: VACUUM FULL, locks the tables)",
        ssub,
    )
    p.add_argument("--data", metavar="DIR", help="data directory (default: $LIAISON_DATA)")
