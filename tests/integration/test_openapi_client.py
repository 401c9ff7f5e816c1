"""A client generated from /openapi.json by openapi-python-client, unpatched, against a real broker.

The client is generated into a temporary directory from the document the broker serves and
imported from there. An agency posts the channels' example notices through it (its RFC 9421
signature added by an ``httpx.Auth``, the client's own extension point); a focal point gets a
token, lists the inbox, fetches a notice and decrypts and verifies the encryption material the
generated model carries, then acknowledges it; the agency reads the status; an auditor reads the
events, a checkpoint and both proofs. Every raw answer is also validated against the document's
schema for its operation and status (JSON Schema 2020-12, formats checked), and the generated
models parse each one (they raise on a missing required field).
"""

from __future__ import annotations

import base64
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import httpx
import jsonschema
import pytest

from broker.crypto.httpsig import content_digest, sign_request
from broker.crypto.keys import read_private_key
from broker.crypto.tokens import make_assertion
from broker.domain.notice import ack_statement
from broker.http.api_doc.examples import NOTICE_EXAMPLES
from broker.http.openapi import SPEC
from broker.service.auth import WITH_BODY, WITHOUT_BODY
from tests.integration.intake_support import Broker, running_broker

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "liaison_generated_client"
RECIPIENT = "mk-kumanovo-pcve"
AUDITOR = "mk-ombudsman-auditor"


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The generated client's package name, importable for the module's tests."""
    if not GENERATOR.exists():
        pytest.fail("openapi-python-client is a test dependency; install the test extra")
    root = tmp_path_factory.mktemp("generated")
    (root / "openapi.json").write_text(json.dumps(SPEC))
    # No formatter run: exactly as generated. The generator has no text/plain request bodies (the
    # witness's add-checkpoint, c2sp.org/tlog-witness); its documented option sends them as bytes.
    (root / "config.yaml").write_text(
        "post_hooks: []\ncontent_type_overrides:\n  text/plain: application/octet-stream\n"
    )
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(root / "openapi.json"),
            "--output-path",
            str(root / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(root / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output and "Unable" not in output, output  # nothing skipped
    sys.path.insert(0, str(root))
    try:
        yield PACKAGE
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def generated(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


class Rfc9421(httpx.Auth):
    """Signs each request as an agency system does (RFC 9421, Ed25519, with a nonce)."""

    requires_request_body = True

    def __init__(self, broker: Broker, agency: str) -> None:
        self.pair = broker.agency_key(agency)
        self.keyid = self.pair.key_id(agency)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = request.content
        covered = {}
        if body:
            request.headers["Content-Digest"] = content_digest(body)
            covered = {"content-type": request.headers["Content-Type"]}
            covered["content-digest"] = request.headers["Content-Digest"]
        request.headers.update(
            sign_request(
                method=request.method,
                url=str(request.url),
                headers=covered,
                key=self.pair.private,  # type: ignore[arg-type]
                keyid=self.keyid,
                created=int(time.time()),
                components=WITH_BODY[0] if body else WITHOUT_BODY[0],
            )
        )
        yield request


def conforms(path: str, method: str, status: int, response: Any) -> Any:
    """The answer's JSON, after checking it against the document's schema for this answer."""
    answer = SPEC["paths"][path][method]["responses"][str(status)]
    media_type = response.headers["Content-Type"].split(";")[0]
    schema = answer["content"][media_type]["schema"]
    document = json.loads(response.content)
    jsonschema.validate(
        document,
        {"components": SPEC["components"], **schema},
        cls=jsonschema.Draft202012Validator,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return document


async def token_for(package: str, broker: Broker, contact: str) -> str:
    token_api = generated(package, "api.recipients.post_token")
    models = generated(package, "models")
    client = generated(package, "client").Client(base_url=broker.url)
    signing = read_private_key(broker.data / "keys" / f"{contact}.pem", expected="ed25519")
    assertion = make_assertion(
        signing.private,  # type: ignore[arg-type]
        contact=contact,
        kid=signing.key_id(contact),
        audience=broker.url,
        now=datetime.now(UTC),
    )
    async with client:
        answer = await token_api.asyncio_detailed(
            client=client,
            body=models.TokenForm(
                assertion=assertion,
                grant_type=models.TokenFormGrantType.URNIETFPARAMSOAUTHGRANT_TYPEJWT_BEARER,
            ),
        )
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, models.Token)
    conforms("/v1/token", "post", 200, answer)
    return str(answer.parsed.access_token)


async def test_a_generated_client_posts_reads_acknowledges_and_audits(
    client_package: str, demo_dir: Path, tmp_path: Path
) -> None:
    package = client_package
    models = generated(package, "models")
    clients = generated(package, "client")
    async with running_broker(demo_dir, f"sqlite+aiosqlite:///{tmp_path / 'liaison.db'}") as broker:
        async with aiohttp.ClientSession() as http, http.get(f"{broker.url}/openapi.json") as r:
            assert await r.json() == json.loads(json.dumps(SPEC))  # generated from what is served

        # An agency posts the example notice of each channel through the generated client.
        def agency() -> Any:
            return clients.AuthenticatedClient(
                base_url=broker.url,
                token="",
                prefix="",
                auth_header_name="Signature",  # a placeholder the signature replaces
                httpx_args={"auth": Rfc9421(broker, "mk-anb")},
            )

        post_notice = generated(package, "api.agencies.post_notice")
        async with agency() as sender:
            answer = await post_notice.asyncio_detailed(
                client=sender,
                body=models.Notice.from_dict(NOTICE_EXAMPLES["returnee-repatriation"]),
            )
        assert answer.status_code == 201, answer.content
        accepted = conforms("/v1/notices", "post", 201, answer)
        assert isinstance(answer.parsed, models.Accepted) and answer.parsed.recipient_count == 2
        notice_id = accepted["id"]

        # The focal point: token, inbox, the notice with its encryption material, acknowledgement.
        recipient = clients.AuthenticatedClient(
            base_url=broker.url, token=await token_for(package, broker, RECIPIENT)
        )
        async with recipient:
            inbox = await generated(package, "api.recipients.list_inbox").asyncio_detailed(
                client=recipient, limit=10, status=models.ListInboxStatus.PENDING
            )
            assert inbox.status_code == 200, inbox.content
            conforms("/v1/inbox", "get", 200, inbox)
            assert [i.notice_id for i in inbox.parsed.items] == [notice_id]
            assert inbox.parsed.items[0].state == models.InboxItemState.DELIVERED

            fetched = await generated(package, "api.recipients.get_notice").asyncio_detailed(
                client=recipient, id=notice_id
            )
            assert fetched.status_code == 200, fetched.content
            conforms("/v1/notices/{id}", "get", 200, fetched)
            notice = fetched.parsed
            assert isinstance(notice, models.RecipientNotice)
            # What the generated model holds is enough to decrypt and verify the notice.
            with_keys = broker.recipient(RECIPIENT)
            async with with_keys:
                verified = with_keys.verify(notice.to_dict(), await with_keys.key_bindings())
            assert verified.notice["subject"] == NOTICE_EXAMPLES["returnee-repatriation"]["subject"]

            signing = read_private_key(broker.data / "keys" / f"{RECIPIENT}.pem")
            statement = ack_statement(notice_id, RECIPIENT, notice.signature.content_digest)
            ack = await generated(package, "api.recipients.acknowledge_notice").asyncio_detailed(
                client=recipient,
                id=notice_id,
                body=models.Ack(
                    key_id=signing.key_id(RECIPIENT),
                    signature=base64.b64encode(signing.private.sign(statement)).decode(),  # type: ignore[union-attr]
                ),
            )
            assert ack.status_code == 200, ack.content
            conforms("/v1/notices/{id}/ack", "post", 200, ack)
            assert isinstance(ack.parsed, models.AckRecorded)

            # A parameter outside the document is refused as the document says, and parsed.
            refused = await generated(package, "api.recipients.list_inbox").asyncio_detailed(
                client=recipient, limit=0
            )
            assert refused.status_code == 422
            conforms("/v1/inbox", "get", 422, refused)
            assert isinstance(refused.parsed, models.Problem)

        # The agency reads how far its notice got.
        async with agency() as sender:
            status = await generated(package, "api.agencies.get_notice_status").asyncio_detailed(
                client=sender, id=notice_id
            )
        assert status.status_code == 200, status.content
        conforms("/v1/notices/{id}/status", "get", 200, status)
        states = {r.role: r.state for r in status.parsed.roles}
        assert models.RoleStatusState.ACKNOWLEDGED in states.values(), states

        # The auditor: events, a fresh checkpoint, an inclusion and a consistency proof.
        auditor = clients.AuthenticatedClient(
            base_url=broker.url, token=await token_for(package, broker, AUDITOR)
        )
        async with auditor:
            events = await generated(package, "api.audit.list_audit_events").asyncio_detailed(
                client=auditor, limit=500, hidden=models.ListAuditEventsHidden.LEAVES
            )
            assert events.status_code == 200, events.content
            conforms("/v1/audit/events", "get", 200, events)
            assert any(
                isinstance(e, models.AuditEvent) and e.action == "delivery.acknowledged"
                for e in events.parsed.events
            )
            checkpoint = await generated(
                package, "api.audit.get_audit_checkpoint"
            ).asyncio_detailed(client=auditor, fresh="1")
            assert checkpoint.status_code == 200, checkpoint.content
            size = conforms("/v1/audit/checkpoint", "get", 200, checkpoint)["size"]
            assert size >= 2
            inclusion = await generated(package, "api.audit.get_inclusion_proof").asyncio_detailed(
                client=auditor, seq=1, size=size
            )
            assert inclusion.status_code == 200, inclusion.content
            conforms("/v1/audit/proof/inclusion", "get", 200, inclusion)
            assert isinstance(inclusion.parsed.event, models.AuditEvent)
            consistency = await generated(
                package, "api.audit.get_consistency_proof"
            ).asyncio_detailed(client=auditor, first=1, second=size)
            assert consistency.status_code == 200, consistency.content
            conforms("/v1/audit/proof/consistency", "get", 200, consistency)
