"""``liaison keys list|rotate|remove``: the broker's key ring per purpose (crypto/purpose_keys.py).

Run on the broker's host against its data directory. A change takes effect when the broker
(every process) restarts: keys are read once at start.
"""

from __future__ import annotations

import argparse
import base64
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from broker.cli.common import command, data_dir, data_option
from broker.config import Settings, load_settings
from broker.terminal import safe_print as print  # manifest text: control characters escaped

if TYPE_CHECKING:  # the key libraries load only when a command runs
    from broker.crypto.purpose_keys import PurposeKey, PurposeKeys

# purpose_keys.PURPOSES, spelt out so that building the parser loads no key library
# (tests/unit/test_cli_imports.py checks the two agree).
PURPOSES = ("tokens", "log", "webhooks")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(data_dir(args), os.environ)


def _public_form(rings: PurposeKeys, purpose: str, key: PurposeKey) -> str:
    from broker.crypto.note import verifier_key
    from broker.crypto.purpose_keys import whpk

    if purpose == "webhooks":
        return whpk(key.public)
    if purpose == "log":
        return verifier_key(rings.log_origin, key.public)
    return base64.b64encode(key.public).decode()


def cmd_list(args: argparse.Namespace) -> int:
    from broker.crypto import purpose_keys

    settings = _settings(args)
    rings = purpose_keys.load_for(settings, os.environ)
    for purpose in PURPOSES:
        ring = rings.ring(purpose)
        own = "" if ring.own else "  (no key of its own: the broker key, keys.signing_key)"
        print(f"{purpose}:{own}")
        for key in ring.keys:
            since = f"  since {key.created}" if key.created else ""
            print(f"  {key.kid}  {key.state}{since}")
            print(f"    {_public_form(rings, purpose, key)}")
    print(f"log origin: {rings.log_origin}")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from broker.crypto import purpose_keys

    settings = _settings(args)
    manifest = purpose_keys.manifest_path(settings)
    doc = purpose_keys.read_manifest(manifest)
    carried = doc is None or not doc["keys"][args.purpose]
    broker = purpose_keys.broker_key(settings, os.environ) if carried else None
    kid = purpose_keys.rotate(manifest, args.purpose, broker, datetime.now(UTC))
    purpose_keys.load_for(settings, os.environ)  # the result must load, or say why now
    print(f"{args.purpose}: {kid} is the new signing key; the previous one verifies until removed.")
    print("Restart every broker process to use it (liaison keys list shows the ring).")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from broker.crypto import purpose_keys

    settings = _settings(args)
    manifest = purpose_keys.manifest_path(settings)
    done = purpose_keys.remove(manifest, args.purpose, args.kid)
    purpose_keys.load_for(settings, os.environ)
    print(f"{args.purpose}: {args.kid} {done}. Restart every broker process.")
    return 0


def _purpose(p: argparse.ArgumentParser) -> None:
    p.add_argument("purpose", choices=PURPOSES, help="tokens, log (checkpoints) or webhooks (v1a)")


def cmd_card(args: argparse.Namespace) -> int:
    """The broker's card as peer-file lines (YAML), or as JSON."""
    import json

    import yaml

    from broker.federation.card import broker_card

    data = data_dir(args)
    card = broker_card(data, _settings(args), os.environ, url=args.url)
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    print("# This broker's card: the other country's operator pastes these lines into the peer")
    print("# file kept of this broker (policies/peers/<id>.yaml), beside its id, kind, title,")
    print("# country and the agreement. Exchange it over a channel you trust: it pins this broker.")
    print(yaml.safe_dump(card, sort_keys=False), end="")
    return 0


def add_purpose_key_commands(ksub: Any) -> None:
    """``keys list``, ``keys rotate PURPOSE``, ``keys remove PURPOSE KID`` and ``keys card``."""
    p = command(ksub, "list", cmd_list, "the broker's keys per purpose, with their public forms")
    data_option(p)
    p = command(
        ksub, "card", cmd_card, "what a peer broker pins of this one, as lines of its peer file"
    )
    data_option(p)
    p.add_argument("--url", help="the URL the peer reaches this broker at (default: public_url)")
    p.add_argument("--json", action="store_true")
    p = command(
        ksub, "rotate", cmd_rotate, "a new signing key for a purpose; the old one verifies on"
    )
    _purpose(p)
    data_option(p)
    p = command(
        ksub, "remove", cmd_remove, "end an overlap: the old key no longer verifies (log: retired)"
    )
    _purpose(p)
    p.add_argument("kid", metavar="KID")
    data_option(p)
