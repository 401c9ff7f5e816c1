"""The operator's ``liaison directory apply`` and ``liaison directory show``.

``apply`` validates the whole file before changing anything and applies it in one transaction
(``--dry-run``: show the change, make none); it then notes when ``DIR/trust/bindings.json``
does not bind the file's keys: clients refuse a key until administrators sign it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.cli.common import EXIT_OK, command, data_dir, data_option, group, open_store
from broker.config import load_settings
from broker.terminal import safe_print as print  # every line printed has control characters escaped


def cmd_directory_apply(args: argparse.Namespace) -> int:
    from broker.service.directory import apply_directory_file

    async def run() -> int:
        settings, engine = await open_store(args)
        try:
            result = await apply_directory_file(
                engine,
                Path(args.file),
                actor=f"operator:{getpass.getuser()}",
                now=datetime.now(UTC),
                max_bytes=settings.limits.max_directory_bytes,
                dry_run=args.dry_run,
            )
        finally:
            await engine.dispose()
        for line in result.diff.lines():
            print(line)
        if result.diff.empty:
            print("No changes.")
        elif args.dry_run:
            print(f"Dry run: {result.diff.summary()}; nothing applied.")
        else:
            print(f"Applied directory revision {result.revision}: {result.diff.summary()}.")
        _note_stale_bindings(args)
        return EXIT_OK

    return asyncio.run(run())


def _note_stale_bindings(args: argparse.Namespace) -> None:
    from broker.trust.files import stale_bindings

    settings = load_settings(data_dir(args), os.environ)
    note = stale_bindings(
        settings.data_dir, Path(args.file), max_bytes=settings.limits.max_directory_bytes
    )
    if note:
        print(f"note: {note}", file=sys.stderr)


def cmd_directory_show(args: argparse.Namespace) -> int:
    from broker.directory.present import jurisdiction_tree, to_document, tree_text
    from broker.store.directory_repo import load_directory

    async def run() -> int:
        _, engine = await open_store(args)
        try:
            directory, revision = await load_directory(engine)
        finally:
            await engine.dispose()
        if args.json:
            document = {
                "revision": revision,
                "tree": jurisdiction_tree(directory),
                **to_document(directory),
            }
            print(json.dumps(document, ensure_ascii=False, indent=2))
        else:
            print(f"Directory revision {revision}")
            print(tree_text(directory))
        return EXIT_OK

    return asyncio.run(run())


def add_directory_commands(sub: Any) -> None:
    """``liaison directory apply`` and ``liaison directory show``."""
    dsub = group(sub, "directory", "the institutional directory")
    p = command(
        dsub, "apply", cmd_directory_apply, "validate a directory file and apply it atomically"
    )
    p.add_argument("file", metavar="FILE")
    data_option(p)
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p = command(dsub, "show", cmd_directory_show, "print the directory")
    data_option(p)
    p.add_argument(
        "--json", action="store_true", help="machine-readable, with the jurisdiction tree"
    )
