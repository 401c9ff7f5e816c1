"""/openapi.json describes exactly the routes the server has, and the server keeps to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema

from broker.app import create_app
from broker.config import load_settings
from broker.http.api_doc.examples import NOTICE_EXAMPLES
from broker.http.openapi import SPEC
from tests.integration.intake_support import running_broker
from tests.support import LoopbackServer

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "policies" / "examples"
EXAMPLE = json.loads((EXAMPLES_DIR / "returnee-repatriation.json").read_text())


async def test_openapi_matches_the_router(demo_dir: Path) -> None:
    app = create_app(load_settings(demo_dir, {}), {})
    async with (
        LoopbackServer(app) as server,
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/openapi.json") as response,
    ):
        assert response.status == 200
        spec = await response.json()
    routed = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)  # type: ignore[union-attr]
        routed.add((path, route.method.lower()))
    described = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert routed == described
    assert spec["openapi"] == "3.1.0"
    notice_schema = spec["components"]["schemas"]["Notice"]
    jsonschema.Draft202012Validator.check_schema(notice_schema)
    jsonschema.validate(EXAMPLE, notice_schema)


def test_the_document_is_valid_openapi_3_1_with_an_id_and_a_tag_for_every_operation() -> None:
    from openapi_spec_validator import validate

    document = json.loads(json.dumps(SPEC))
    validate(document)  # OpenAPI 3.1, by a validator that is not ours
    operations = [op for item in document["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)), ids
    declared = {t["name"] for t in document["tags"]}
    assert all(op["tags"] and set(op["tags"]) <= declared for op in operations)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_examples_are_the_shipped_channels_examples_and_validate() -> None:
    files = {p.stem: json.loads(p.read_text()) for p in sorted(EXAMPLES_DIR.glob("*.json"))}
    assert files == NOTICE_EXAMPLES
    body = SPEC["paths"]["/v1/notices"]["post"]["requestBody"]["content"]["application/json"]
    assert [e["value"] for e in body["examples"].values()] == list(files.values())
    for notice in files.values():
        jsonschema.validate(notice, SPEC["components"]["schemas"]["Notice"])


def _validate(document: Any, name: str) -> None:
    jsonschema.validate(
        document,
        {"components": SPEC["components"], "$ref": f"#/components/schemas/{name}"},
        cls=jsonschema.Draft202012Validator,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


async def test_inbox_stream_and_audit_refuse_parameters_outside_the_document(
    demo_dir: Path, tmp_path: Path
) -> None:
    """``status=bogus`` and ``limit=0`` were listed as if valid; a Last-Event-ID or an audit
    cursor that is not a number was read as 0. Each is now the documented problem+json 422. So is
    a cursor past 2**53 - 1, which no log reaches: it was a 500, as the audit.read event that
    records the request could not be written as RFC 8785 JSON (schemathesis found it)."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'liaison.db'}"
    async with (
        running_broker(demo_dir, database) as broker,
        broker.recipient("mk-kumanovo-pcve") as contact,
        broker.recipient("mk-ombudsman-auditor") as auditor,
        aiohttp.ClientSession() as http,
    ):
        bearer = {"Authorization": f"Bearer {await contact.token()}"}
        audit = {"Authorization": f"Bearer {await auditor.token()}"}
        refused = [
            ("/v1/inbox?status=bogus", bearer, "/status"),
            ("/v1/inbox?limit=0", bearer, "/limit"),
            ("/v1/inbox?limit=-3", bearer, "/limit"),
            ("/v1/stream?last_event_id=-1", bearer, "/Last-Event-ID"),
            ("/v1/stream?last_event_id=%2B5", bearer, "/Last-Event-ID"),
            ("/v1/audit/events?cursor=%2B5", audit, "/cursor"),
            (f"/v1/audit/events?cursor={2**53}", audit, "/cursor"),
            (f"/v1/audit/events?cursor={2**53}&notice=x&to=2026-12-03T14:25:34Z", audit, "/cursor"),
            (f"/v1/audit/checkpoints?cursor={2**53}", audit, "/cursor"),
            ("/v1/audit/checkpoints?cursor=%2B5", audit, "/cursor"),
            ("/v1/audit/checkpoints?cursor=%D9%A5", audit, "/cursor"),  # Arabic-Indic five
        ]
        for path, headers, pointer in refused:
            async with http.get(broker.url + path, headers=headers) as response:
                document = await response.json(content_type=None)
                assert response.status == 422, (path, document)
                assert response.content_type == "application/problem+json"
                _validate(document, "Problem")
                assert [v["pointer"] for v in document["violations"]] == [pointer], path
        for path in (
            f"/v1/audit/events?cursor={2**53 - 1}",
            f"/v1/audit/checkpoints?cursor={2**53 - 1}",
        ):
            async with http.get(broker.url + path, headers=audit) as response:
                assert response.status == 200, path  # the last seq a log could reach: an empty page
        for status in ("pending", "delivered", "read", "acknowledged", "escalated"):
            async with http.get(f"{broker.url}/v1/inbox?status={status}", headers=bearer) as r:
                assert r.status == 200, status
                _validate(await r.json(), "Inbox")


async def test_a_stream_event_is_a_stream_event_as_documented(
    demo_dir: Path, tmp_path: Path
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'liaison.db'}"
    async with running_broker(demo_dir, database) as broker:
        async with broker.sender("mk-anb") as sender:
            posted = await sender.post_notice(EXAMPLE)
        async with (
            broker.recipient("mk-kumanovo-pcve") as contact,
            aiohttp.ClientSession() as http,
            http.get(
                f"{broker.url}/v1/stream",
                headers={"Authorization": f"Bearer {await contact.token()}"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response,
        ):
            assert response.status == 200
            frame: dict[str, str] = {}
            async for line in response.content:
                text = line.decode().rstrip("\n")
                if not text:
                    break
                if not text.startswith(":"):
                    field, _, value = text.partition(": ")
                    frame[field] = value
    assert frame["event"] == "notice" and frame["id"].isdigit()
    data = json.loads(frame["data"])
    _validate(data, "StreamEvent")
    assert data["notice_id"] == posted.body["id"]
