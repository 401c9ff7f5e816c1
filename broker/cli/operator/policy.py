"""The operator's ``liaison policy check``, ``explain`` and ``reload``.

``check`` and ``reload`` refuse, with ``file:line: reason``, what the broker would refuse;
``reload`` then asks each running broker of the data directory to load them, over its control
socket (``broker/control.py``): never by signalling a number read from a pid file, so a pid file
left by a broker killed with -9 is found stale, removed, and the process it names left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
    if not policies.channels and not args.allow_empty:
        raise ConfigError(_no_channel(Path(args.dir)))
    peers = f", {len(policies.peers)} peer(s)" if policies.peers else ""
    print(
        f"{args.dir}: {len(policies.channels)} channels, {len(policies.statements)} Cedar policies"
        f"{peers}, valid ({policies.hash})"
    )
    return EXIT_OK


def _no_channel(root: Path) -> str:
    """Why a set with no channel is refused: a broker on it routes nothing (a flat ConfigMap
    mount, for one, puts the channel files beside the Cedar files where none is read)."""
    flat = sorted(p.name for p in root.glob("*.yaml"))
    where = f"; {', '.join(flat)} at the top level would be read only in channels/" if flat else ""
    return f"{root}: no channel in {root / 'channels'}{where} (--allow-empty to accept that)"


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
        now = _parse_time(args.at)
        crossing = _explain_crossing(facts, view.authorizer, now, args)
        if crossing is not None:
            return crossing
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


def _explain_crossing(
    facts: Any, authorizer: Any, now: datetime, args: argparse.Namespace
) -> int | None:
    """A notice that would leave the country is explained by the peer agreements (issue 20);
    None for a notice that stays, which the local routing explains."""
    from broker.federation.explain import (
        crossing_text,
        explain_crossing,
        outbound_crossing,
        relaying_peer,
    )

    policies = authorizer.policies
    request = outbound_crossing(
        facts, authorizer.directory, policies.channels, sender_known=args.sender is not None
    )
    if request is None:
        return None
    came_from = relaying_peer(facts, authorizer.directory, policies.peers) if args.sender else None
    report = explain_crossing(request, facts, policies.peers, now, came_from)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else crossing_text(report))
    if not report["allowed"]:
        print(f"liaison: crossing refused: {report['reason']}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_policy_reload(args: argparse.Namespace) -> int:
    from broker.policy.load import load_policies

    data = data_dir(args)
    settings = load_settings(data, os.environ)
    load_policies(
        settings.policies_dir
    )  # refuse early, with file:line, what the broker would refuse
    reloaded, stale, refused = _reload_each(data / RUN_DIR)
    for line in refused:
        print(f"liaison: {line}", file=sys.stderr)
    if not reloaded:
        gone = (
            f"; removed stale {', '.join(stale)} (that process was not signalled)" if stale else ""
        )
        raise ConfigError(f"no running broker found for {data} ({RUN_DIR}/liaison-*.sock){gone}")
    print(
        f"Policies in {settings.policies_dir} are valid; broker process(es) "
        f"{', '.join(reloaded)} reloaded them."
    )
    return EXIT_FAILED if refused else EXIT_OK


def _reload_each(run_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """Ask every broker of ``run_dir`` over its control socket: (reloaded, stale, refused)."""
    from broker.control import ControlError, Endpoint, Stale, ask

    reloaded: list[str] = []
    stale: list[str] = []
    refused: list[str] = []
    for endpoint in Endpoint.found_in(run_dir):
        try:
            answer = ask(endpoint, "reload")
        except Stale:  # the broker died (kill -9): its files go, the number is not signalled
            stale.append(f"{endpoint.pid_file.name} ({_pid_text(endpoint.pid_file)})")
            endpoint.remove()
            continue
        except ControlError as e:
            refused.append(str(e))
            continue
        if answer.get("ok"):
            reloaded.append(f"{answer['pid']} ({answer.get('policy_hash', '')})")
        else:
            refused.append(f"broker {answer.get('pid')} refused: {answer.get('error')}")
    return reloaded, stale, refused


def _pid_text(pid_file: Path) -> str:
    try:
        return f"process {pid_file.read_text().strip()[:20]}"
    except OSError:
        return "unreadable"


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
    p.add_argument(
        "--allow-empty", action="store_true", help="accept a set with no channel (routes nothing)"
    )
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
