"""argparse's own texts, marked for the catalogs, so an official's command speaks one language.

argparse writes its headings, its ``usage:`` prefix, its ``-h`` line and its error lines through
the module-level ``gettext`` it imported as ``_``. While ``liaison`` builds and parses a command an
official runs (``broker.cli.main.PERSON_COMMANDS``), ``speaking`` points that name at the CLI's
catalog; afterwards it is put back. The messages below are argparse's exact ids (CPython 3.11 to
3.13), with its ``%`` placeholders, which the translations keep.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from broker.cli import i18n
from broker.cli.i18n import N_

TEXTS = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("expected one argument"),
    N_("expected at least one argument"),
    N_("expected at most one argument"),
    N_("invalid %(type)s value: %(value)r"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("one of the arguments %s is required"),
)


@contextmanager
def speaking() -> Iterator[None]:
    """argparse's texts in the CLI's language (``i18n.use``) inside the block; English after."""
    if i18n.language() == i18n.DEFAULT:
        yield
        return
    original: Callable[[str], str] = getattr(argparse, "_")  # noqa: B009 - a module's private name
    setattr(argparse, "_", lambda message: i18n._(message))  # noqa: B010 - filled in by argparse
    try:
        yield
    finally:
        setattr(argparse, "_", original)  # noqa: B010
