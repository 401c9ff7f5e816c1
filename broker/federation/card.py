"""A broker's card: what another country's broker pins of it in the peer file it keeps.

The two operators exchange cards in person (or over a channel they trust) and each pastes the
other's into ``policies/peers/<id>.yaml`` beside the agreement: the URL, the broker's request key,
its escrow key (crossings are wrapped for it), its directory root's pin (the origin a recipient
checks agencies against), its log's origin and checkpoint key (for witnessing), and under mutual
TLS the SHA-256 of the client certificate it presents. Only public values; nothing secret is read
beyond what derives a public key.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.config import Settings
from broker.crypto import purpose_keys
from broker.crypto.certificates import read_pem_certificate
from broker.errors import ConfigError
from broker.federation.origin import root_pin
from broker.service.custody import load_escrow_key


def broker_card(
    data: Path, settings: Settings, environ: Mapping[str, str], *, url: str | None = None
) -> dict[str, Any]:
    """This broker's card, in the peer file's field names and order."""
    rings = purpose_keys.load_for(settings, environ)
    log = rings.log_keys()
    try:
        root = (data / "trust" / "root.json").read_bytes()
    except OSError as e:
        raise ConfigError(f"no directory root to pin: {data / 'trust' / 'root.json'}") from e
    card: dict[str, Any] = {
        "url": url or settings.public_url,
        "broker_key": _b64(purpose_keys.broker_key(settings, environ).public_raw),
        "escrow_key": _b64(load_escrow_key(settings, environ).public_raw),
        "directory_root": root_pin(root),
        "log_origin": settings.audit.origin or log.origin,
        "log_key": _b64(log.publics[0]),
    }
    if settings.federation.tls_cert:
        card["tls_client_sha256"] = [_certificate_pin(data / settings.federation.tls_cert)]
    return card


def _certificate_pin(path: Path) -> str:
    """``sha256:<hex>`` of the DER of the first certificate in a PEM chain file."""
    try:
        return "sha256:" + read_pem_certificate(path.read_bytes()).sha256
    except (OSError, ValueError) as e:
        raise ConfigError(f"federation.tls_cert {path}: not a readable PEM certificate") from e


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
