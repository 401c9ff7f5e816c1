"""HTTPS and mutual TLS for agency systems, against `liaison serve` on loopback."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path

import trustme

from tests.conftest import POLICIES
from tests.support import run_cli, serve_process


def test_agency_endpoints_require_a_client_certificate_when_a_client_ca_is_set(
    demo_dir: Path, tmp_path: Path
) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("mk-mvr.agency.invalid")
    paths = {}
    for name, blob in (
        ("ca", ca.cert_pem),
        ("server-cert", server.cert_chain_pems[0]),
        ("server-key", server.private_key_pem),
        ("client-cert", client.cert_chain_pems[0]),
        ("client-key", client.private_key_pem),
    ):
        paths[name] = tmp_path / f"{name}.pem"
        blob.write_to_path(str(paths[name]))
    env = {
        "LIAISON_SERVER_TLS_CERT": str(paths["server-cert"]),
        "LIAISON_SERVER_TLS_KEY": str(paths["server-key"]),
        "LIAISON_SERVER_CLIENT_CA": str(paths["ca"]),
    }
    with serve_process(demo_dir, env=env) as (_, url):
        https = url.replace("http://", "https://")
        context = ssl.create_default_context(cafile=str(paths["ca"]))
        with urllib.request.urlopen(f"{https}/healthz", context=context, timeout=10) as response:  # noqa: S310
            assert json.loads(response.read()) == {
                "status": "ok"
            }  # recipients need no client certificate
        example = POLICIES / "examples" / "returnee-repatriation.json"
        common = ["--data", demo_dir, "--as", "mk-mvr", "--url", https, "--ca", paths["ca"]]
        refused = run_cli("send", example, *common)
        assert refused.returncode == 1
        assert refused.stderr.strip() == "liaison: 401 authentication_failed: authentication failed"
        sent = run_cli(
            "send",
            example,
            *common,
            "--client-cert",
            paths["client-cert"],
            "--client-key",
            paths["client-key"],
        )
        assert sent.returncode == 0, sent.stderr
        assert "2 recipient(s)" in sent.stdout


def test_tls_settings_must_come_together(demo_dir: Path) -> None:
    result = run_cli(
        "serve", "--data", demo_dir, "--port", "0", env={"LIAISON_SERVER_TLS_CERT": "cert.pem"}
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "liaison: [server] tls_cert and tls_key go together"
