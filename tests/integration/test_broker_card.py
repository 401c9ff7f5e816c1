"""``liaison keys card``: what another country's operator pins of this broker, printed as the
peer-file lines it pastes. Each value is recomputed here from the data directory by other means,
and the card, completed with an agreement, passes ``liaison policy check`` on the other side."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import trustme
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from broker.config import load_settings
from broker.crypto import purpose_keys
from broker.service.custody import load_escrow_key
from broker.trust.core import parse_root
from tests.support import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "federation" / "peer-agreement.yaml"


def test_the_card_holds_what_a_peer_pins_and_a_peer_file_made_of_it_passes(
    demo_dir: Path, tmp_path: Path
) -> None:
    shown = run_cli("keys", "card", "--data", demo_dir, "--url", "https://liaison.xk.example")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# This broker's card")
    card = yaml.safe_load(shown.stdout)
    settings = load_settings(demo_dir, {})
    root = (demo_dir / "trust" / "root.json").read_bytes()
    log = purpose_keys.load_for(settings, {}).log_keys()  # what /v1/keys/log serves
    assert card == {
        "url": "https://liaison.xk.example",
        "broker_key": base64.b64encode(purpose_keys.broker_key(settings, {}).public_raw).decode(),
        "escrow_key": base64.b64encode(load_escrow_key(settings, {}).public_raw).decode(),
        "directory_root": "sha256:" + hashlib.sha256(parse_root(root).signed_bytes).hexdigest(),
        "log_origin": card["log_origin"],
        "log_key": base64.b64encode(log.publics[0]).decode(),
    }
    assert card["log_origin"] in (settings.audit.origin, log.origin)
    # The other country's operator: the example peer file, its pins replaced by the card's.
    example = yaml.safe_load(EXAMPLE.read_text())
    peer_file = {
        **example,
        **card,
        "id": "xk",
        "title": "National broker of Kosovo",
        "country": "xk",
    }
    other = tmp_path / "other-policies"
    shutil.copytree(demo_dir / "policies", other)
    (other / "peers").mkdir(exist_ok=True)
    (other / "peers" / "xk.yaml").write_text(yaml.safe_dump(peer_file, sort_keys=False))
    checked = run_cli("policy", "check", other)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_under_mutual_tls_the_card_pins_the_client_certificate(
    demo_dir: Path, tmp_path: Path
) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("liaison.xk.example")
    issued.cert_chain_pems[0].write_to_path(str(demo_dir / "federation.pem"))
    issued.private_key_pem.write_to_path(str(demo_dir / "federation.key"))
    env = {
        "LIAISON_FEDERATION_TLS_CERT": "federation.pem",
        "LIAISON_FEDERATION_TLS_KEY": "federation.key",
    }
    shown = run_cli("keys", "card", "--data", demo_dir, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    der = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes()).public_bytes(
        Encoding.DER
    )
    assert json.loads(shown.stdout)["tls_client_sha256"] == [
        "sha256:" + hashlib.sha256(der).hexdigest()
    ]
    (demo_dir / "federation.pem").write_text("not a certificate")
    broken = run_cli("keys", "card", "--data", demo_dir, env=env)
    assert broken.returncode == 1 and broken.stdout == ""
    assert (
        broken.stderr.startswith("liaison: federation.tls_cert ") and broken.stderr.count("\n") == 1
    )
