"""``liaison``: the parser, assembled from each audience's commands in the order ``--help`` lists.

A command never prints a traceback: ``run_command`` turns errors into one line and an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from broker.cli import agency, auditor, recipient, release, witness
from broker.cli.argparse_texts import speaking
from broker.cli.common import EXIT_USAGE, run_command
from broker.cli.i18n import CODES, _, choose, use
from broker.cli.operator import directory, escrow, keys, outbox, policy, setup, store, trust


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    use(choose(_lang_flag(given)))  # before the parser: its --help speaks that language
    # An official's command: argparse's own texts too (headings are fixed as the parser is built).
    person = _command_name(given) in PERSON_COMMANDS
    with speaking() if person else nullcontext():
        parser = build_parser()
        args = parser.parse_args(given)
    use(choose(args.lang))  # the same choice, as argparse read it
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    return run_command(args)


# The commands an official runs (``command(..., person=True)``): inbox, read, ack, watch, send,
# status. Known before the parser is built, since argparse fixes its headings as it builds.
PERSON_COMMANDS = frozenset({"inbox", "read", "ack", "watch", "send", "status"})


def _command_name(argv: list[str]) -> str | None:
    """The command ``argv`` names (its first word after the options before it), if any."""
    words = iter(argv)
    for arg in words:
        if arg == "--lang":
            next(words, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _lang_flag(argv: list[str]) -> str | None:
    """``--lang X`` or ``--lang=X`` before the command (where the parser takes it), if given."""
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.partition("=")[2]
        if not arg.startswith("-"):
            return None  # the command: --lang belongs before it
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liaison", description="Liaison: a secure inter-agency information-sharing broker."
    )
    parser.add_argument(
        "--lang",
        choices=CODES,
        help=_("language of messages to people (default: $LIAISON_LANG, else the locale, else en)"),
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    setup.add_setup_commands(sub)  # init, serve, keygen
    directory.add_directory_commands(sub)
    policy.add_policy_commands(sub)
    agency.add_agency_commands(sub)  # send, status
    release.add_release_commands(sub)  # approve, refuse (two-person release)
    recipient.add_recipient_commands(sub)  # inbox, read, ack, watch
    auditor.add_audit_commands(sub)
    trust.add_trust_commands(sub)
    keys.add_purpose_key_commands(auditor.add_keys_commands(sub))  # list, rotate, remove
    witness.add_witness_command(sub)
    setup.add_demo_command(sub)
    escrow.add_escrow_commands(sub)
    store.add_store_commands(sub)
    outbox.add_outbox_commands(sub)
    return parser
