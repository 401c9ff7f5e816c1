"""``liaison escrow``: custody of the escrow key (split its KEK among custodians, seal an old key).

Thin, like every ``liaison`` command: parse, call ``service/custody.py``, print.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from broker.cli.common import command, data_dir, group
from broker.config import Settings, load_settings, resolve_secret
from broker.errors import ConfigError
from broker.terminal import safe_print as print  # untrusted text: control characters escaped


def cmd_escrow_split(args: argparse.Namespace) -> int:
    from broker.service.custody import reseal

    data = data_dir(args)
    settings = load_settings(data, os.environ)
    done = reseal(settings, os.environ, args.custodian, args.threshold, Path(args.out))
    print(
        f"The escrow key is sealed under a new KEK, split {done.threshold} of {len(done.shares)}:"
    )
    for name, path in done.shares.items():
        print(f"  {name}: {path}")
    print(
        "liaison.toml now names these files in keys.escrow_shares. Hand each share to its\n"
        "custodian and keep it off this host; at start give any "
        f"{done.threshold} by reference (file: on\n"
        "their medium, or env:NAME) and edit keys.escrow_shares to match. The old KEK no longer\n"
        "opens the key: destroy it (but see deploy/OPERATIONS.md on old backups)."
    )
    return 0


def cmd_escrow_seal(args: argparse.Namespace) -> int:
    from broker.crypto import escrow
    from broker.service.custody import kek_file_for, seal_plaintext, write_secret_file

    data = data_dir(args)
    settings = load_settings(data, os.environ)
    if args.escrow_kek:
        reference = args.escrow_kek
        kek = escrow.parse_kek(_resolve(reference, settings), source="--escrow-kek")
    else:
        path = kek_file_for(data)
        if path.exists():
            raise ConfigError(f"{path} exists; give --escrow-kek to use it")
        kek = escrow.new_kek()
        write_secret_file(path, escrow.kek_text(kek))
        reference = f"file:{path}"
    seal_plaintext(settings, reference, kek)
    print(f"The escrow key is sealed; keys.escrow_kek = {reference!r} in liaison.toml")
    return 0


def _resolve(reference: str, settings: Settings) -> bytes:
    if not reference.startswith(("env:", "file:/")):
        raise ConfigError("--escrow-kek: give env:NAME or file:/absolute/path")
    from broker.service.custody import require_outside_data_dir

    require_outside_data_dir(reference, settings, "--escrow-kek")
    return resolve_secret(reference, settings, os.environ)


def add_escrow_commands(sub: Any) -> None:
    """Register ``liaison escrow split`` and ``liaison escrow seal``."""
    esub = group(sub, "escrow", "custody of the broker's escrow key", usage_on_stdout=True)
    p = command(
        esub,
        "split",
        cmd_escrow_split,
        "re-seal the escrow key under a new KEK split m-of-n among named custodians",
    )
    p.add_argument("--data", metavar="DIR", help="data directory (default: $LIAISON_DATA)")
    p.add_argument("--custodian", action="append", required=True, metavar="NAME")
    p.add_argument("--threshold", type=int, required=True, metavar="M")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the share files")
    p = command(
        esub,
        "seal",
        cmd_escrow_seal,
        "seal an escrow key stored unencrypted (a directory made before sealing)",
    )
    p.add_argument("--data", metavar="DIR", help="data directory (default: $LIAISON_DATA)")
    p.add_argument("--escrow-kek", metavar="REF", help="env:NAME or file:/path (default: DIR.kek)")
