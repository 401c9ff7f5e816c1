"""HTTPS and mutual TLS for agency systems, against `liaison serve` on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import ssl
import urllib.request
from pathlib import Path

import trustme

from tests.conftest import POLICIES
from tests.support import run_cli, serve_process

EXAMPLE = POLICIES / "examples" / "returnee-repatriation.json"


def bind_certificate(data: Path, organisation: str, cert: trustme.Blob) -> None:
    """Name the certificate's SHA-256 among the organisation's keys, and apply the directory."""
    der = ssl.PEM_cert_to_DER_cert(cert.bytes().decode())
    fingerprint = base64.b64encode(hashlib.sha256(der).digest()).decode()
    entry = f"{{id: {organisation}.tls.1, type: tls-client-sha256, public: {fingerprint}}}, "
    path = data / "directory.yaml"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"  - {{id: {organisation}, "):
            lines[i] = line.replace("keys: [", "keys: [" + entry, 1)
    path.write_text("\n".join(lines) + "\n")
    applied = run_cli("directory", "apply", path, "--data", data)
    assert applied.returncode == 0, applied.stderr


def tls_files(tmp_path: Path, *agencies: str) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and one client certificate per agency."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    blobs = [
        ("ca", ca.cert_pem),
        ("server-cert", server.cert_chain_pems[0]),
        ("server-key", server.private_key_pem),
    ]
    for agency in agencies:
        client = ca.issue_cert(f"{agency}.agency.invalid")
        blobs += [(f"{agency}-cert", client.cert_chain_pems[0])]
        blobs += [(f"{agency}-key", client.private_key_pem)]
    paths = {}
    for name, blob in blobs:
        paths[name] = tmp_path / f"{name}.pem"
        blob.write_to_path(str(paths[name]))
    return paths


def mtls_env(paths: dict[str, Path]) -> dict[str, str]:
    return {
        "LIAISON_SERVER_TLS_CERT": str(paths["server-cert"]),
        "LIAISON_SERVER_TLS_KEY": str(paths["server-key"]),
        "LIAISON_SERVER_CLIENT_CA": str(paths["ca"]),
    }


def test_agency_endpoints_require_a_client_certificate_when_a_client_ca_is_set(
    demo_dir: Path, tmp_path: Path
) -> None:
    paths = tls_files(tmp_path, "mk-mvr")
    paths["client-cert"], paths["client-key"] = paths["mk-mvr-cert"], paths["mk-mvr-key"]
    bind_certificate(demo_dir, "mk-mvr", trustme.Blob(paths["client-cert"].read_bytes()))
    with serve_process(demo_dir, env=mtls_env(paths)) as (_, url):
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
        # The refusal is in the audit log with its reason, as a bad signature's is.
        with sqlite3.connect(demo_dir / "liaison.db") as db:
            bodies = [
                json.loads(body)
                for (body,) in db.execute(
                    "SELECT body FROM audit_event WHERE action = 'auth.refused'"
                )
            ]
        assert any(
            b["details"].get("detail") == "no verified client certificate"
            and b["object"] == "route:/v1/notices"
            for b in bodies
        ), bodies
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


def test_a_certificate_works_only_for_the_agency_it_is_bound_to(
    demo_dir: Path, tmp_path: Path
) -> None:
    """Attacker: an authorised agency system that holds another agency's stolen signing key but
    only its own certificate.

    Any certificate of the client CA used to pass for any agency key: a certificate is now bound
    to one organisation in the directory, and a request whose key's organisation does not list
    the presented certificate is the one 401."""
    paths = tls_files(tmp_path, "mk-mvr", "mk-bjb")
    bind_certificate(demo_dir, "mk-mvr", trustme.Blob(paths["mk-mvr-cert"].read_bytes()))
    bind_certificate(demo_dir, "mk-bjb", trustme.Blob(paths["mk-bjb-cert"].read_bytes()))
    with serve_process(demo_dir, env=mtls_env(paths)) as (_, url):
        https = url.replace("http://", "https://")

        def send(agency: str, certificate_of: str) -> tuple[int, str]:
            result = run_cli(
                "send",
                EXAMPLE,
                *("--data", demo_dir, "--as", agency, "--url", https, "--ca", paths["ca"]),
                *("--client-cert", paths[f"{certificate_of}-cert"]),
                *("--client-key", paths[f"{certificate_of}-key"]),
            )
            return result.returncode, result.stderr.strip()

        # The Ministry's certificate with the police's key: refused like any bad credential.
        assert send("mk-bjb", "mk-mvr") == (
            1,
            "liaison: 401 authentication_failed: authentication failed",
        )
        # The police's own certificate: authenticated, then refused by policy (not a 401).
        code, stderr = send("mk-bjb", "mk-bjb")
        assert code == 1 and stderr.startswith("liaison: 403 forbidden"), stderr
        # The Ministry's certificate with the Ministry's key: accepted (201).
        assert send("mk-mvr", "mk-mvr")[0] == 0
