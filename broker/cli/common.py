"""What every ``liaison`` command shares: exit codes, one-line errors, the data directory.

A command is a function ``run(args) -> exit code``. ``run_command`` calls it and turns a
``LiaisonError`` into one line on stderr and exit 1 (a ``SourceError`` first lists its problems,
``file:line: reason``); a command never prints a traceback. Every line goes through ``safe_print``
and every field quoted in an error through ``safe``, so untrusted text cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.config import load_settings, resolved_database_url
from broker.errors import ConfigError, LiaisonError, SourceError
from broker.terminal import safe
from broker.terminal import safe_print as print  # every line printed has control characters escaped

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Run = Callable[[argparse.Namespace], int]


def run_command(args: argparse.Namespace) -> int:
    """Run the command the parser chose; errors become one line on stderr and a non-zero exit."""
    try:
        result: int = args.run(args)
        return result
    except SourceError as e:
        print(e.diagnostics(), file=sys.stderr)
        from broker.cli.i18n import N_, _

        refused = N_("liaison: refused ({count} problems); nothing was changed")
        if len(e.problems) == 1:
            refused = N_("liaison: refused (1 problem); nothing was changed")
        print(_(refused, count=len(e.problems)), file=sys.stderr)
        return EXIT_FAILED
    except LiaisonError as e:
        print(f"liaison: {safe(e.diagnostics())}", file=sys.stderr)  # one line, whatever it quotes
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


# -- the data directory and its store --------------------------------------------------------


def data_dir(args: argparse.Namespace) -> Path:
    """--data DIR, else $LIAISON_DATA, else ./liaison-data; refused unless it holds liaison.toml."""
    path = Path(args.data or os.environ.get("LIAISON_DATA", "liaison-data"))
    if not (path / "liaison.toml").exists():
        raise ConfigError(
            f"{path} is not a Liaison data directory (run `liaison init {path}` first)"
        )
    return path


async def open_store(args: argparse.Namespace) -> tuple[Any, Any]:
    """The settings of the data directory and its store's engine, migrated; dispose it after."""
    from broker.store.engine import create_engine, migrate

    settings = load_settings(data_dir(args), os.environ)
    engine = create_engine(resolved_database_url(settings, os.environ))
    await migrate(engine)
    return settings, engine


def read_json(path: Path) -> dict[str, Any]:
    """A notice file: a JSON object, or a ConfigError that names the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a notice must be a JSON object")
    return data


# -- building the parser ---------------------------------------------------------------------


def command(
    parent: Any, name: str, run: Run, help: str, *, person: bool = False
) -> argparse.ArgumentParser:
    """Add the command ``name`` under ``parent`` (a subparsers action); ``help`` is its description.

    ``person``: a command an official runs, whose ``--help`` and argument errors are in the CLI's
    language: the caller passes its texts through ``_``, and argparse's own (``usage:``, the
    headings, ``-h``, its error lines) are translated while ``main`` builds and parses it
    (``broker.cli.argparse_texts``); it must be named in ``broker.cli.main.PERSON_COMMANDS``.
    """
    p: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
    p.set_defaults(run=run)
    if person:
        PERSON.add(name)
    return p


PERSON: set[str] = set()  # the commands registered with person=True (a test compares the list)


def group(sub: Any, name: str, help: str, *, usage_on_stdout: bool = False) -> Any:
    """A command group (``liaison NAME COMMAND``); alone, it prints its help and exits 2."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    nested = parser.add_subparsers(title=f"{name} commands", metavar="COMMAND")

    def usage(args: argparse.Namespace) -> int:
        parser.print_help(sys.stdout if usage_on_stdout else sys.stderr)
        return EXIT_USAGE

    parser.set_defaults(run=usage)
    return nested


def data_option(p: argparse.ArgumentParser) -> None:
    from broker.cli.i18n import _

    p.add_argument(
        "--data",
        metavar="DIR",
        help=_("data directory (default: $LIAISON_DATA or ./liaison-data)"),
    )
