"""The ``liaison`` command, one module per audience; thin: parse, call, print.

- ``operator/``: init, serve, keygen, demo, directory, policy, escrow, store, the local audit
  export, and the administrators' trust commands;
- ``agency``: send, status; ``recipient``: inbox, read, ack, watch;
- ``auditor``: audit export and verify through the API, keys monitor;
- ``common`` (exit codes, one-line errors, the data directory, parser helpers), ``principals``
  (who a client command acts as: ``--url/--key`` or ``--data/--as``); untrusted text is made
  safe to print by ``broker.terminal`` (every module that prints uses its ``safe_print`` as
  ``print``; the client SDKs use it too, so it lives outside the CLI);
- ``main``: the parser, assembled in the order ``--help`` lists the commands.

``main`` is imported only when called, so that importing the package loads nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The ``liaison`` entry point: the exit code of the command ``argv`` names."""
    from broker.cli.main import main as run

    return run(argv)
