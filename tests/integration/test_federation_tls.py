"""Mutual TLS between two real brokers on loopback: forwards cross only between certificates
the peer files pin.

Broker B (North Macedonia) listens on https with ``server.client_ca``; its peer file for Kosovo
pins the SHA-256 of Kosovo's client certificate. Broker A (Kosovo) presents that certificate
(``federation.tls_cert``) and verifies B's server certificate against ``federation.server_ca``.

Attacker: a peer broker holding another peer's stolen broker key but only its own certificate
(here Bosnia and Herzegovina's, a peer B declares too), or a client with no certificate at all;
and, on the sending side, a server on the peer's address whose certificate is not of the CA.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme

from broker.crypto.keys import KeyPair, generate
from broker.federation.forward import PATH, signed_headers
from broker.service.setup import init_data_dir
from tests.integration.test_federation_forward import (
    ENV,
    Side,
    delivered,
    peer_file,
    returnee,
    until,
)
from tests.support import free_port, serve_process

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Pair:
    a: Side  # Kosovo: presents its client certificate
    b: Side  # North Macedonia: https, client CA
    certs: dict[str, Path]
    rogue_port: int  # a TLS server whose certificate is of another CA, declared by A as "ba"
    intruder: KeyPair  # the broker key A's file for "ba" pins, held here


def pin(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def certificates(tmp: Path) -> dict[str, Path]:
    ca, rogue_ca = trustme.CA(), trustme.CA()
    blobs = {"ca": ca.cert_pem}
    for name, issuer in (("b-server", ca), ("rogue-server", rogue_ca)):
        cert = issuer.issue_cert("127.0.0.1")
        blobs[f"{name}-cert"], blobs[f"{name}-key"] = cert.cert_chain_pems[0], cert.private_key_pem
    for name in ("xk", "ba"):
        cert = ca.issue_cert(f"{name}.broker.invalid")
        blobs[f"{name}-cert"], blobs[f"{name}-key"] = cert.cert_chain_pems[0], cert.private_key_pem
    paths = {}
    for name, blob in blobs.items():
        paths[name] = tmp / f"{name}.pem"
        blob.write_to_path(str(paths[name]))
    return paths


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def brokers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    now = datetime.now(UTC)
    tmp = tmp_path_factory.mktemp("federation-tls")
    certs = certificates(tmp)
    a, b = Side(tmp / "xk"), Side(tmp / "mk")
    for side in (a, b):
        await init_data_dir(side.data, demo=True, now=now, environ={})
        (side.data / "policies" / "peers").mkdir()
    a_port, b_port = free_port(), free_port()
    a.url, b.url = f"http://127.0.0.1:{a_port}", f"https://127.0.0.1:{b_port}"
    rogue = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    rogue.load_cert_chain(certs["rogue-server-cert"], certs["rogue-server-key"])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # never reached: the client refuses the handshake

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=rogue)
    rogue_port = server.sockets[0].getsockname()[1]
    intruder = generate("ed25519")
    (a.data / "policies" / "peers" / "mk.yaml").write_text(
        peer_file("mk", "Broker of North Macedonia", b.url, b.card(), "send", "mk-kumanovo")
    )
    (a.data / "policies" / "peers" / "ba.yaml").write_text(
        peer_file(
            "ba",
            "Broker of Bosnia and Herzegovina",
            f"https://127.0.0.1:{rogue_port}",
            {**b.card(), "broker_key": base64.b64encode(intruder.public_raw).decode()},
            "send",
            "ba-sarajevo",
        )
    )
    pinned = f"tls_client_sha256: ['{pin(certs['xk-cert'])}']\n"
    (b.data / "policies" / "peers" / "xk.yaml").write_text(
        pinned + peer_file("xk", "Broker of Kosovo", a.url, a.card(), "receive", "mk")
    )
    # B also declares Bosnia and Herzegovina, with its own certificate pinned.
    (b.data / "policies" / "peers" / "ba.yaml").write_text(
        f"tls_client_sha256: ['{pin(certs['ba-cert'])}']\n"
        + peer_file(
            "ba",
            "Broker of Bosnia and Herzegovina",
            "http://127.0.0.1:9",
            {**a.card(), "broker_key": base64.b64encode(intruder.public_raw).decode()},
            "receive",
            "mk",
        )
    )
    b_env = {
        **ENV,
        "LIAISON_SERVER_TLS_CERT": str(certs["b-server-cert"]),
        "LIAISON_SERVER_TLS_KEY": str(certs["b-server-key"]),
        "LIAISON_SERVER_CLIENT_CA": str(certs["ca"]),
    }
    a_env = {
        **ENV,
        "LIAISON_FEDERATION_TLS_CERT": str(certs["xk-cert"]),
        "LIAISON_FEDERATION_TLS_KEY": str(certs["xk-key"]),
        "LIAISON_FEDERATION_SERVER_CA": str(certs["ca"]),
    }
    try:
        with (
            serve_process(b.data, env=b_env, port=b_port),
            serve_process(a.data, env=a_env, port=a_port),
        ):
            yield Pair(a, b, certs, rogue_port, intruder)
    finally:
        server.close()


async def test_a_forward_crosses_over_mutual_tls(brokers: Pair) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, notice_id))
    row = "SELECT state FROM outbox WHERE notice_id = ? AND kind = 'peer'"
    await until(lambda: a.scalar(row, notice_id) == "sent")


async def post_as_xk(pair: Pair, certificate: str | None) -> tuple[int, dict[str, Any]]:
    """A forward signed with Kosovo's broker key, over a connection with ``certificate``."""
    body = json.dumps({"notice": "whatever the signature covers"}).encode()
    url = pair.b.url + PATH
    headers = signed_headers(url, body, "idem-tls-1", pair.a.broker_key(), datetime.now(UTC))
    context = ssl.create_default_context(cafile=str(pair.certs["ca"]))
    if certificate is not None:
        context.load_cert_chain(pair.certs[f"{certificate}-cert"], pair.certs[f"{certificate}-key"])
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_a_peer_key_without_its_pinned_certificate_is_the_one_401(brokers: Pair) -> None:
    b = brokers.b
    before = b.scalar("SELECT count(*) FROM notice")
    for certificate in (None, "ba"):  # none; another declared peer's own certificate
        status, problem = await post_as_xk(brokers, certificate)
        assert (status, problem["code"]) == (401, "authentication_failed"), certificate
    # With Kosovo's own certificate the request authenticates (and is refused for its body).
    status, problem = await post_as_xk(brokers, "xk")
    assert status != 401, problem
    assert b.scalar("SELECT count(*) FROM notice") == before
    refused = "SELECT count(*) FROM audit_event WHERE action = 'federation.refused'"
    assert b.scalar(refused) >= 1
    # The connection without a certificate is in the log too, with its reason and route.
    no_certificate = (
        "SELECT count(*) FROM audit_event WHERE action = 'auth.refused' "
        "AND object = 'route:/v1/federation/notices' "
        "AND body LIKE '%no verified client certificate%'"
    )
    assert b.scalar(no_certificate) == 1


async def test_the_sender_refuses_a_peer_certificate_not_of_the_configured_ca(
    brokers: Pair,
) -> None:
    a = brokers.a
    document = returnee()
    document["jurisdiction"] = "ba-sarajevo"
    async with a.sender("xk-aki") as client:
        answer = (await client.post_notice(document)).body
    assert answer["forwarded"]["peer"] == "ba", answer
    row = "SELECT last_error FROM outbox WHERE notice_id = ? AND kind = 'peer'"
    await until(lambda: a.scalar(row, answer["id"]) is not None)
    assert a.scalar(row, answer["id"]) == (
        "peer certificate refused: unable to get local issuer certificate"
    )
    state = "SELECT state FROM outbox WHERE notice_id = ? AND kind = 'peer'"
    assert a.scalar(state, answer["id"]) == "pending"
