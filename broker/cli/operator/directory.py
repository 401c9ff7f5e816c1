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
from broker.errors import ConfigError
from broker.terminal import safe_print as print  # every line printed has control characters escaped


def cmd_directory_apply(args: argparse.Namespace) -> int:
    from broker.directory.continuity import apply_warnings
    from broker.service.directory import apply_directory_file

    async def run() -> int:
        settings, engine = await open_store(args)
        now = datetime.now(UTC)
        channels = _channels(settings)
        try:
            result = await apply_directory_file(
                engine,
                Path(args.file),
                actor=f"operator:{getpass.getuser()}",
                now=now,
                max_bytes=settings.limits.max_directory_bytes,
                dry_run=args.dry_run,
                warn=lambda old, new: apply_warnings(old, new, channels, now),
                force=args.force,
            )
        finally:
            await engine.dispose()
        for line in result.diff.lines():
            print(line)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return _verdict(args, result)

    return asyncio.run(run())


def _channels(settings: Any) -> Any:
    """The channels in force, to know which roles are routed; none when the policies are not
    loadable (the broker would not start either): the directory can still be fixed meanwhile."""
    from broker.errors import PolicyFileError
    from broker.policy.load import load_policies

    try:
        return load_policies(settings.policies_dir).channels
    except PolicyFileError as e:
        print(
            f"warning: the policies in {settings.policies_dir} do not load ({e}); "
            "no role is checked against the channels",
            file=sys.stderr,
        )
        return {}


def _verdict(args: argparse.Namespace, result: Any) -> int:
    if result.diff.empty:
        print("No changes.")
    elif args.dry_run:
        print(f"Dry run: {result.diff.summary()}; nothing applied.")
    elif not result.applied:
        raise ConfigError(
            f"refused: {len(result.warnings)} warning(s) above; nothing was applied "
            "(fix the file, or apply it anyway with --force)"
        )
    else:
        print(f"Applied directory revision {result.revision}: {result.diff.summary()}.")
    _note_stale_bindings(args)
    return EXIT_OK


def cmd_directory_report(args: argparse.Namespace) -> int:
    from broker.service.continuity import continuity_report
    from broker.store.directory_repo import load_directory

    async def run() -> list[dict[str, Any]]:
        settings, engine = await open_store(args)
        try:
            directory, _ = await load_directory(engine)
            return await continuity_report(
                engine,
                directory,
                _channels(settings),
                datetime.now(UTC),
                jurisdiction=args.jurisdiction,
            )
        finally:
            await engine.dispose()

    groups = asyncio.run(run())
    if args.json:
        print(json.dumps({"jurisdictions": groups}, ensure_ascii=False, indent=2))
        return EXIT_OK
    for line in _report_lines(groups):
        print(line)
    return EXIT_OK


def _report_lines(groups: list[dict[str, Any]]) -> list[str]:
    lines, flagged = [], 0
    for place in groups:
        lines.append(f"{place['name']} [{place['level']}, {place['jurisdiction']}]")
        for role in place["roles"]:
            acting = ", ".join(role["acting_names"]) or "VACANT"
            deputy = " (deputy standing in)" if role["acting"] and not role["holders"] else ""
            lines.append(f"  {role['title']} [{role['role']}]: {acting}{deputy}")
            marks = role["problems"] + role["ending"] + [f"overdue: {o}" for o in role["overdue"]]
            flagged += bool(marks)
            lines += [f"    ! {m}" for m in marks]
            # Exercise and test notices: shown, but they need no one's attention for real.
            lines += [f"    ~ exercise overdue: {o}" for o in role.get("exercise_overdue", [])]
    roles = sum(len(g["roles"]) for g in groups)
    lines.append(
        f"{roles} routed role(s) in {len(groups)} jurisdiction(s); {flagged} need attention."
    )
    return lines


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
    p.add_argument(
        "--force",
        action="store_true",
        help="apply even when the change leaves a routed role vacant or keyless, removes or "
        "revokes keys, or names a role kind no channel knows",
    )
    p = command(
        dsub,
        "report",
        cmd_directory_report,
        "continuity: every routed role, who acts for it, and what needs attention",
    )
    data_option(p)
    p.add_argument("--jurisdiction", metavar="J", help="only this jurisdiction and those below it")
    p.add_argument("--json", action="store_true")
    from broker.cli.operator.enrol import add_enrolment_commands

    add_enrolment_commands(dsub, data_option)  # invite, pending, approve
    p = command(dsub, "show", cmd_directory_show, "print the directory")
    data_option(p)
    p.add_argument(
        "--json", action="store_true", help="machine-readable, with the jurisdiction tree"
    )
