"""Who a client command acts as: an agency or a contact, from its keys or from ``--data --as``.

``--url/--key/--keyid`` (an agency) or ``--url/--contact/--key/--enc-key`` (a recipient) name real
keys; ``--data DIR --as ID`` takes the demo keys under ``DIR/keys`` and, for a recipient, the root
pinned at ``DIR/trust/root.json``. A recipient with nothing pinned verifies nothing, so its reads
refuse. The SDKs' errors become one-line ``ConfigError``s; a failed verification says not to act.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from broker.cli.common import data_dir, data_option
from broker.cli.refusals import refusal_line
from broker.config import load_settings
from broker.errors import ConfigError, TrustRefused
from broker.terminal import safe

Call = Callable[[Any], Coroutine[Any, Any, Any]]


def agency_options(p: argparse.ArgumentParser) -> None:
    """An agency's options; their help in the CLI's language (``send``, ``status``)."""
    from broker.cli.i18n import _

    p.add_argument("--url", help=_("broker URL (default with --data: server.public_url)"))
    p.add_argument("--key", metavar="PEM", help=_("the agency's Ed25519 private key (PKCS#8 PEM)"))
    p.add_argument("--keyid", help=_("the key's id in the directory"))
    data_option(p)
    p.add_argument(
        "--as", dest="as_", metavar="AGENCY_ID", help=_("with --data: act as this demo agency")
    )
    p.add_argument(
        "--ca", metavar="PEM", help=_("trust this CA for the broker's HTTPS certificate")
    )
    p.add_argument("--client-cert", metavar="PEM", help=_("present this client certificate (mTLS)"))
    p.add_argument("--client-key", metavar="PEM", help=_("the client certificate's private key"))
    p.add_argument("--json", action="store_true")


def recipient_options(p: argparse.ArgumentParser) -> None:
    """A recipient's options; their help in the CLI's language (``inbox``, ``read``, ...)."""
    from broker.cli.i18n import _

    p.add_argument("--url", help=_("broker URL (default with --data: server.public_url)"))
    p.add_argument("--contact", help=_("your contact id in the directory"))
    p.add_argument("--key", metavar="PEM", help=_("your Ed25519 signing key (PKCS#8 PEM)"))
    p.add_argument("--enc-key", metavar="PEM", help=_("your X25519 decryption key (PKCS#8 PEM)"))
    data_option(p)
    p.add_argument(
        "--as", dest="as_", metavar="CONTACT_ID", help=_("with --data: act as this demo contact")
    )
    p.add_argument(
        "--ca", metavar="PEM", help=_("trust this CA for the broker's HTTPS certificate")
    )
    p.add_argument("--client-cert", metavar="PEM", help=argparse.SUPPRESS)
    p.add_argument("--client-key", metavar="PEM", help=argparse.SUPPRESS)
    p.add_argument(
        "--root",
        metavar="FILE",
        help=_("the directory root pinned at enrolment (default with --data: DIR/trust/root.json)"),
    )
    p.add_argument(
        "--peer-root",
        action="append",
        default=[],
        metavar="PEER=PIN",
        help=_("another country's root, for notices from there: PEER=sha256:HEX or PEER=FILE"),
    )


def client_tls(args: argparse.Namespace) -> Any:
    """An SSL context from --ca and --client-cert/--client-key, or None for the defaults."""
    import ssl

    if not (args.ca or args.client_cert):
        return None
    try:
        context = ssl.create_default_context(cafile=args.ca)
        if args.client_cert:
            context.load_cert_chain(args.client_cert, args.client_key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"TLS set-up failed: {e}") from e
    return context


# -- an agency -------------------------------------------------------------------------------


def _sender(args: argparse.Namespace) -> Any:
    """A sender client from --url/--key/--keyid, or from --data DIR --as AGENCY (the demo keys)."""
    from adapters.client.sender import SenderClient
    from broker.crypto.keys import read_private_key

    tls = client_tls(args)
    if args.as_ is not None:
        data = data_dir(args)
        settings = load_settings(data, os.environ)
        pair = read_private_key(data / "keys" / f"{args.as_}.pem", expected="ed25519")
        url = args.url or settings.public_url
        return SenderClient.from_pem(
            url, pair.pem(), pair.key_id(args.as_), ssl=tls, language=_names_language(args)
        )
    if not (args.url and args.key and args.keyid):
        raise ConfigError("give --url, --key and --keyid, or --data DIR --as AGENCY_ID")
    try:
        pem = Path(args.key).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {args.key}: {e.strerror}") from e
    return SenderClient.from_pem(args.url, pem, args.keyid, ssl=tls, language=_names_language(args))


def _names_language(args: argparse.Namespace) -> str | None:
    """The CLI's language for names in the broker's answers; none for ``--json`` (never
    translated: the files' default text, as scripts read it)."""
    from broker.cli.i18n import language

    return None if getattr(args, "json", False) else language()


def sender_call(args: argparse.Namespace, call: Call) -> Any:
    """Run ``call(client)`` as the agency the options name; its refusals become ConfigErrors."""
    from adapters.client.sender import SenderError

    async def run() -> Any:
        async with _sender(args) as client:
            return await call(client)

    try:
        return asyncio.run(run())
    except SenderError as e:
        raise ConfigError(refusal_line(e.status, e.problem, str(e))) from e


# -- a recipient (contacts and auditors) -----------------------------------------------------


def _recipient(args: argparse.Namespace) -> Any:
    """A recipient client from --url/--key[/--enc-key]/--contact (or --as), or --data DIR --as ID.

    An auditor has no X25519 key: without ``--enc-key`` the client reads no notice content.
    """
    from adapters.client.recipient import RecipientClient
    from broker.crypto.keys import read_private_key

    tls = client_tls(args)
    if args.as_ is not None and args.key is None:
        data = data_dir(args)
        url = args.url or load_settings(data, os.environ).public_url
        signing = read_private_key(data / "keys" / f"{args.as_}.pem", expected="ed25519")
        x25519 = data / "keys" / f"{args.as_}.x25519.pem"
        demo = read_private_key(x25519, expected="x25519") if x25519.exists() else None
        trust = _pinned_root(args, data / "trust" / "root.json")
        return RecipientClient(
            url,
            args.as_,
            signing,
            demo,
            ssl=tls,
            trust=trust,
            language=_names_language(args),
            peer_roots={**_peer_files_pins(data), **_peer_roots(args)},
        )
    contact = args.contact or args.as_
    if not (args.url and args.key and contact):
        raise ConfigError(
            "give --url, --key and --contact (and --enc-key to read notices), "
            "or --data DIR --as CONTACT_ID"
        )
    signing = read_private_key(Path(args.key), expected="ed25519")
    own = read_private_key(Path(args.enc_key), expected="x25519") if args.enc_key else None
    trust = _pinned_root(args, None)
    return RecipientClient(
        args.url,
        contact,
        signing,
        own,
        ssl=tls,
        trust=trust,
        language=_names_language(args),
        peer_roots=_peer_roots(args),
    )


def _peer_roots(args: argparse.Namespace) -> dict[str, str]:
    """--peer-root PEER=PIN: a peer (a country, or the hub) and the pin of its directory root,
    given as ``sha256:<hex>`` or as the root file, whose pin is computed here."""
    import re

    from broker.federation.origin import root_pin

    roots: dict[str, str] = {}
    for given in getattr(args, "peer_root", None) or []:
        peer, _sep, value = given.partition("=")
        if not peer or not value:
            raise ConfigError(f"--peer-root {safe(given)}: give PEER=sha256:HEX or PEER=FILE")
        if re.fullmatch(r"sha256:[0-9a-fA-F]{64}", value):
            roots[peer] = value.lower()
            continue
        try:
            roots[peer] = root_pin(Path(value).read_bytes())
        except OSError as e:
            raise ConfigError(
                f"--peer-root {safe(peer)}: cannot read {safe(value)}: {e.strerror}"
            ) from e
        except (TrustRefused, ValueError) as e:
            raise ConfigError(
                f"--peer-root {safe(peer)}: {safe(value)} is not a directory root file"
            ) from e
    return roots


def _peer_files_pins(data: Path) -> dict[str, str]:
    """The demo's pins, as its administrators sign them (``trust.files.peer_roots``): a national
    peer's root by id and country, a hub's member countries' roots, never the hub's own."""
    from broker.trust.files import peer_roots

    return peer_roots(data / "policies")


def _pinned_root(args: argparse.Namespace, demo_root: Path | None) -> Any:
    """--root FILE (given at enrolment), or the demo's DIR/trust/root.json; state kept beside it."""
    from adapters.client.trust import PinnedRoot

    path = Path(args.root) if args.root else demo_root
    if path is None or not path.exists():
        return None  # reading then refuses: nothing pinned, nothing verified
    return PinnedRoot.from_file(path, state=path.with_name(path.name + ".seen"))


def recipient_call(args: argparse.Namespace, call: Call) -> Any:
    """Run ``call(client)`` as the contact the options name; a failed check says not to act."""
    from adapters.client.errors import RecipientError, VerificationFailed

    async def run() -> Any:
        async with _recipient(args) as client:
            return await call(client)

    try:
        return asyncio.run(run())
    except VerificationFailed as e:
        raise ConfigError(f"REFUSED: {e}. Do not act on this notice; report it.") from e
    except RecipientError as e:
        raise ConfigError(refusal_line(e.status, e.problem, str(e))) from e
