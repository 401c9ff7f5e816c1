"""The operator's ``liaison policy check``, ``explain`` and ``reload``.

``check`` and ``reload`` refuse, with ``file:line: reason``, what the broker would refuse;
``reload`` then signals each running broker of the data directory (its pid files) to load them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    command,
    data_dir,
    data_option,
    group,
    open_store,
    read_json,
)
from broker.cli.operator.setup import RUN_DIR
from broker.config import load_settings
from broker.errors import ConfigError
from broker.terminal import safe_print as print  # every line printed has control characters escaped


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(f"--at: not an ISO 8601 time: {text!r}") from e
    if value.tzinfo is None:
        raise ConfigError("--at: the time needs a timezone, e.g. 2026-12-01T09:00:00Z")
    return value


def cmd_policy_check(args: argparse.Namespace) -> int:
    from broker.policy.load import load_policies

    policies = load_policies(Path(args.dir))
    print(
        f"{args.dir}: {len(policies.channels)} channels, {len(policies.statements)} Cedar policies, "
        f"valid ({policies.hash})"
    )
    return EXIT_OK


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from broker.policy.explain import explain, explain_text
    from broker.service.notices import notice_facts_from_document
    from broker.state import BrokerState

    document = read_json(Path(args.notice))

    async def run() -> int:
        settings, engine = await open_store(args)
        try:
            view = await BrokerState(engine, settings.policies_dir, settings.limits).load()
        finally:
            await engine.dispose()
        facts = notice_facts_from_document(document, sender=args.sender or "unknown")
        report = explain(
            facts,
            view.authorizer,
            _parse_time(args.at),
            body=document.get("body"),
            check_sender=args.sender is not None,
        )
        print(
            json.dumps(report, ensure_ascii=False, indent=2) if args.json else explain_text(report)
        )
        if report["publish"] is not None and not report["publish"]["allowed"]:
            print(f"liaison: {args.sender} may not publish this notice", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK

    return asyncio.run(run())


def cmd_policy_reload(args: argparse.Namespace) -> int:
    from broker.policy.load import load_policies

    data = data_dir(args)
    settings = load_settings(data, os.environ)
    load_policies(
        settings.policies_dir
    )  # refuse early, with file:line, what the broker would refuse
    pids = []
    for pid_file in sorted((data / RUN_DIR).glob("liaison-*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
            pids.append(pid)
        except (OSError, ValueError):
            continue  # a stale pid file: that process is gone
    if not pids:
        raise ConfigError(f"no running broker found for {data} ({RUN_DIR}/liaison-*.pid)")
    print(
        f"Policies in {settings.policies_dir} are valid; asked broker process(es) "
        f"{', '.join(map(str, pids))} to reload them."
    )
    return EXIT_OK


def add_policy_commands(sub: Any) -> None:
    """``liaison policy check``, ``explain`` and ``reload``."""
    psub = group(sub, "policy", "channels and authorization policies")
    p = command(
        psub,
        "check",
        cmd_policy_check,
        "validate a policy directory (file:line: reason on failure)",
    )
    p.add_argument("dir", metavar="DIR")
    p = command(
        psub, "explain", cmd_policy_explain, "who would receive a notice, and by which rule"
    )
    p.add_argument("notice", metavar="NOTICE.json")
    data_option(p)
    p.add_argument(
        "--as", dest="sender", metavar="ORG", help="check that this organisation may publish it"
    )
    p.add_argument("--at", metavar="TIME", help="route as of this time (ISO 8601; default now)")
    p.add_argument("--json", action="store_true")
    p = command(
        psub,
        "reload",
        cmd_policy_reload,
        "validate the policies and make the running broker load them",
    )
    data_option(p)
