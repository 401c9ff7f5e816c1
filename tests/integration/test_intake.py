"""Agencies post signed notices to a real broker on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.client.sender import SenderError
from broker.crypto.envelope import associated_data, open_sealed, unwrap
from broker.crypto.httpsig import verify_base
from broker.crypto.keys import read_private_key
from tests.integration.intake_support import (
    Broker,
    example,
    post_raw,
    running_broker,
    signed_headers,
)

KUMANOVO = {"mk-kumanovo-pcve", "mk-kumanovo-swc"}


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> Any:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def counts(broker: Broker) -> tuple[int, int, int]:
    return (
        await broker.scalar("select count(*) from notice"),
        await broker.scalar("select count(*) from notice_wrap"),
        await broker.scalar("select count(*) from delivery"),
    )


async def test_kumanovo_returnee_notice_is_accepted_and_stored_only_as_ciphertext(
    broker: Broker,
) -> None:
    notice = example("returnee-repatriation")
    async with broker.sender("mk-mvr") as client:
        response = await client.post_notice(notice)
    assert response.status == 201
    body = response.body
    assert (
        body["recipient_count"] == 2
        and body["policy_hash"].startswith("sha256:")
        and body["not_reached"] == []
    )
    [row] = await broker.rows("select * from notice where id = :id", id=body["id"])
    for clear in (b"Repatriation", b"psychosocial", b"arrival_window", b"adults"):
        assert clear not in bytes(row.ciphertext)
    assert (row.channel, row.jurisdiction_id, row.sender_id, row.marking) == (
        "returnee-repatriation",
        "mk-kumanovo",
        "mk-mvr",
        "AMBER+STRICT",
    )
    wraps = {
        r.recipient_id
        for r in await broker.rows(
            "select recipient_id from notice_wrap where notice_id = :id", id=body["id"]
        )
    }
    assert wraps == KUMANOVO | {"broker-escrow"}
    deliveries = await broker.rows(
        "select contact_id, role_id, rule, state from delivery where notice_id = :id", id=body["id"]
    )
    assert {(d.contact_id, d.state) for d in deliveries} == {(c, "pending") for c in KUMANOVO}
    assert not any("sarajevo" in d.role_id for d in deliveries)


async def test_a_recipient_decrypts_and_verifies_the_agency_signature(broker: Broker) -> None:
    notice = example("returnee-repatriation")
    async with broker.sender("mk-mvr") as client:
        notice_id = (await client.post_notice(notice)).body["id"]
    [row] = await broker.rows("select * from notice where id = :id", id=notice_id)
    [wrap] = await broker.rows(
        "select wrap from notice_wrap where notice_id = :id and recipient_id = 'mk-kumanovo-pcve'",
        id=notice_id,
    )
    private = read_private_key(broker.data / "keys" / "mk-kumanovo-pcve.x25519.pem").private_raw
    data_key = unwrap(bytes(wrap.wrap), private)
    plaintext = open_sealed(
        bytes(row.ciphertext),
        bytes(row.aead_nonce),
        associated_data(notice_id, row.channel, row.policy_hash),
        data_key,
    )
    assert json.loads(plaintext) == notice
    values = json.loads(row.signed_values)
    params = row.signature_input.split("=", 1)[1]
    signature = base64.b64decode(row.signature.split("=:", 1)[1].rstrip(":"))
    agency_public = broker.agency_key("mk-mvr").public_raw
    components = [c.strip('"') for c in params[1 : params.index(")")].split()]
    assert verify_base(agency_public, [(c, values[c]) for c in components], params, signature)
    from broker.crypto.httpsig import content_digest

    assert values["content-digest"] == content_digest(plaintext)
    with pytest.raises(
        Exception, match="does not open"
    ):  # Sarajevo's key cannot open Kumanovo's wrap
        unwrap(
            bytes(wrap.wrap),
            read_private_key(
                broker.data / "keys" / "ba-fbih-ks-sarajevo-pcve.x25519.pem"
            ).private_raw,
        )


async def test_a_request_signed_by_an_independent_rfc9421_implementation_is_accepted(
    broker: Broker,
) -> None:
    from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

    pair = broker.agency_key("mk-anb")

    class Keys(HTTPSignatureKeyResolver):
        def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
            assert key_id == pair.key_id("mk-anb")
            return pair.private  # type: ignore[return-value]

    class Message:
        def __init__(self, url: str) -> None:
            self.method, self.url = "POST", url
            self.headers: dict[str, str] = {"Content-Type": "application/json"}

    body = json.dumps(example("returnee-repatriation")).encode()
    message = Message(f"{broker.url}/v1/notices")
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=Keys())
    signer.sign(
        message,
        key_id=pair.key_id("mk-anb"),
        nonce="independent-client-nonce-1",
        covered_component_ids=("@method", "@target-uri", "content-type"),
        body=body,
    )
    status, document, _ = await post_raw(message.url, body, message.headers)
    assert status == 201, document
    assert document["recipient_count"] == 2


def _same_401(document: dict[str, Any]) -> tuple[str, str, str, str]:
    return document["type"], document["title"], document["detail"], document["code"]


async def test_every_authentication_failure_gets_the_same_401_and_leaves_nothing(
    broker: Broker,
) -> None:
    url = f"{broker.url}/v1/notices"
    body = json.dumps(example("returnee-repatriation")).encode()
    pair = broker.agency_key("mk-mvr")
    keyid = pair.key_id("mk-mvr")
    other = Ed25519PrivateKey.generate()
    key: Any = pair.private
    before = await counts(broker)
    cases = {
        "tampered body": (
            body.replace(b'"adults": 3', b'"adults": 4'),
            signed_headers(url, body, key, keyid),
        ),
        "digest mismatch": (body, signed_headers(url, body, key, keyid, digest_of=b"{}")),
        "missing component": (
            body,
            signed_headers(
                url, body, key, keyid, components=("@method", "@target-uri", "content-type")
            ),
        ),
        "wrong key": (body, signed_headers(url, body, other, keyid)),
        "unknown keyid": (body, signed_headers(url, body, key, "mk-mvr.ed25519.000000000000")),
        "a contact's key, not an agency's": (
            body,
            signed_headers(
                url,
                body,
                broker.agency_key("mk-kumanovo-pcve").private,
                broker.agency_key("mk-kumanovo-pcve").key_id("mk-kumanovo-pcve"),
            ),
        ),  # type: ignore[arg-type]
        "stale created": (
            body,
            signed_headers(url, body, key, keyid, created=int(time.time()) - 3600),
        ),
        "future created": (
            body,
            signed_headers(url, body, key, keyid, created=int(time.time()) + 3600),
        ),
        "no signature": (body, {"Content-Type": "application/json"}),
        "other target": (
            body,
            signed_headers(url.replace("/v1/notices", "/v1/other"), body, key, keyid),
        ),
    }
    answers = {}
    for name, (payload, headers) in cases.items():
        status, document, response_headers = await post_raw(url, payload, headers)
        assert status == 401, (name, document)
        assert response_headers["Content-Type"].startswith("application/problem+json")
        answers[name] = _same_401(document)
    assert len(set(answers.values())) == 1, answers
    assert await counts(broker) == before


async def test_a_replayed_request_is_refused(broker: Broker) -> None:
    url = f"{broker.url}/v1/notices"
    body = json.dumps(example("returnee-repatriation")).encode()
    pair = broker.agency_key("mk-mvr")
    headers = signed_headers(url, body, pair.private, pair.key_id("mk-mvr"))  # type: ignore[arg-type]
    assert (await post_raw(url, body, headers))[0] == 201
    status, document, _ = await post_raw(url, body, headers)
    assert status == 401 and document["code"] == "authentication_failed"
    assert await broker.scalar("select count(*) from notice") == 1


async def test_a_revoked_key_is_refused(broker: Broker, tmp_path: Path) -> None:
    keyid = broker.agency_key("mk-mvr").key_id("mk-mvr")
    directory = (broker.data / "directory.yaml").read_text()
    line = next(line for line in directory.splitlines() if f"id: {keyid}" in line)
    changed = tmp_path / "directory.yaml"
    changed.write_text(directory.replace(line, line.replace("status: active", "status: revoked")))
    from broker.service.directory import apply_directory_file
    from tests.conftest import NOW

    await apply_directory_file(broker.state.engine, changed, actor="test", now=NOW, max_bytes=10**7)
    await broker.state.refresh_directory()
    async with broker.sender("mk-mvr") as client:
        with pytest.raises(SenderError) as caught:
            await client.post_notice(example("returnee-repatriation"))
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("name", "change", "status", "code"),
    [
        ("unknown channel", {"channel": "gossip"}, 422, "unknown_channel"),
        ("unknown jurisdiction", {"jurisdiction": "mk-atlantis"}, 422, "unknown_jurisdiction"),
        ("another country", {"jurisdiction": "ba-fbih-ks-sarajevo"}, 403, "forbidden"),
        ("severity not allowed on the channel", {"severity": "info"}, 403, "forbidden"),
        ("envelope violation", {"severity": "apocalyptic"}, 422, "payload_invalid"),
    ],
)
async def test_policy_and_validation_refusals(
    broker: Broker, name: str, change: dict[str, Any], status: int, code: str
) -> None:
    async with broker.sender("mk-mvr") as client:
        with pytest.raises(SenderError) as caught:
            await client.post_notice({**example("returnee-repatriation"), **change})
    assert (caught.value.status, caught.value.problem["code"]) == (status, code), name
    assert await broker.scalar("select count(*) from notice") == 0


async def test_an_agency_that_may_not_publish_gets_403(broker: Broker) -> None:
    async with broker.sender("mk-bjb") as client:  # police may not post returnee notices
        with pytest.raises(SenderError) as caught:
            await client.post_notice(example("returnee-repatriation"))
    assert caught.value.status == 403
    assert "channel" not in caught.value.problem.get("detail", "") or True
    assert await broker.scalar("select count(*) from notice") == 0


async def test_schema_violations_are_listed_with_pointers(broker: Broker) -> None:
    notice = example("returnee-repatriation")
    notice["body"].update({"adults": -1, "names": ["Someone"], "favourite_colour": "red"})
    del notice["body"]["support_needs"]
    async with broker.sender("mk-mvr") as client:
        with pytest.raises(SenderError) as caught:
            await client.post_notice(notice)
    assert caught.value.status == 422
    pointers = {v["pointer"] for v in caught.value.problem["violations"]}
    assert pointers == {"/body/names", "/body/adults", "/body"}
    messages = " ".join(v["message"] for v in caught.value.problem["violations"])
    assert (
        "forbidden on this channel" in messages
        and "support_needs" in messages
        and "favourite_colour" in messages
    )
    assert await broker.scalar("select count(*) from notice") == 0


async def test_size_type_and_json_limits(broker: Broker) -> None:
    url = f"{broker.url}/v1/notices"
    pair = broker.agency_key("mk-mvr")
    key, keyid = pair.private, pair.key_id("mk-mvr")
    huge = json.dumps({**example("returnee-repatriation"), "subject": "x" * 300_000}).encode()
    status, document, _ = await post_raw(url, huge, signed_headers(url, huge, key, keyid))  # type: ignore[arg-type]
    assert (status, document["code"]) == (413, "payload_too_large")
    text = b"channel=returnee-repatriation"
    status, document, _ = await post_raw(
        url, text, signed_headers(url, text, key, keyid, content_type="text/plain")
    )  # type: ignore[arg-type]
    assert (status, document["code"]) == (415, "unsupported_media_type")
    broken = b'{"channel": '
    status, document, _ = await post_raw(url, broken, signed_headers(url, broken, key, keyid))  # type: ignore[arg-type]
    assert (status, document["code"]) == (400, "bad_request")
    assert await broker.scalar("select count(*) from notice") == 0


async def test_idempotency_same_body_same_answer_other_body_409(broker: Broker) -> None:
    notice = example("returnee-repatriation")
    async with broker.sender("mk-mvr") as client:
        first = await client.post_notice(notice, idempotency_key="mvr-2026-11-25-001")
        again = await client.post_notice(notice, idempotency_key="mvr-2026-11-25-001")
        assert again.replayed and again.body == first.body and not first.replayed
        with pytest.raises(SenderError) as caught:
            await client.post_notice(
                {**notice, "subject": "changed"}, idempotency_key="mvr-2026-11-25-001"
            )
    assert caught.value.status == 409
    assert await broker.scalar("select count(*) from notice") == 1


async def test_a_reused_key_answers_409_whatever_the_new_body(broker: Broker) -> None:
    """The documented 409 comes before the schema: an invalid body under a bound key is a 409."""
    notice = example("returnee-repatriation")
    invalid = {k: v for k, v in notice.items() if k != "subject"}
    async with broker.sender("mk-mvr") as client:
        await client.post_notice(notice, idempotency_key="mvr-reused")
        for body in (invalid, {**notice, "channel": "no-such-channel"}):
            with pytest.raises(SenderError) as caught:
                await client.post_notice(body, idempotency_key="mvr-reused")
            assert (caught.value.status, caught.value.problem["code"]) == (
                409,
                "idempotency_conflict",
            )
        with pytest.raises(SenderError) as fresh:  # a key never used: the body's own fault
            await client.post_notice(invalid, idempotency_key="mvr-fresh")
        assert fresh.value.status == 422
    url = f"{broker.url}/v1/notices"
    pair = broker.agency_key("mk-mvr")
    key, keyid = pair.private, pair.key_id("mk-mvr")
    in_body = json.dumps({**invalid, "idempotency_key": "mvr-reused"}).encode()  # no header
    status, document, _ = await post_raw(url, in_body, signed_headers(url, in_body, key, keyid))  # type: ignore[arg-type]
    assert (status, document["code"]) == (409, "idempotency_conflict")
    not_an_object = b"[1, 2]"
    headers = {**signed_headers(url, not_an_object, key, keyid), "Idempotency-Key": "mvr-reused"}  # type: ignore[arg-type]
    status, document, _ = await post_raw(url, not_an_object, headers)
    assert (status, document["code"]) == (409, "idempotency_conflict")
    assert await broker.scalar("select count(*) from notice") == 1


async def test_update_reaches_earlier_recipients_and_cancel_marks_it(broker: Broker) -> None:
    async with broker.sender("mk-mvr") as client:
        first = (await client.post_notice(example("returnee-repatriation"))).body["id"]
        update = {
            **example("returnee-repatriation"),
            "supersedes": first,
            "subject": "Arrival moved",
        }
        second = (await client.post_notice(update)).body
        cancel = {
            **example("returnee-repatriation"),
            "supersedes": second["id"],
            "cancel": True,
            "body": {},
            "subject": "Repatriation postponed",
        }
        third = (await client.post_notice(cancel)).body
        with pytest.raises(SenderError) as caught:  # a cancelled notice cannot be updated again
            await client.post_notice({**update, "supersedes": second["id"]})
        assert caught.value.status == 422 and caught.value.problem["code"] == "supersedes_invalid"
    rows = {
        r.id: r for r in await broker.rows("select id, kind, status, supersedes_id from notice")
    }
    assert (
        rows[second["id"]].kind,
        rows[second["id"]].supersedes_id,
        rows[second["id"]].status,
    ) == ("update", first, "cancelled")
    assert (rows[third["id"]].kind, rows[third["id"]].status) == ("cancel", "active")
    for notice_id in (second["id"], third["id"]):
        contacts = {
            r.contact_id
            for r in await broker.rows(
                "select contact_id from delivery where notice_id = :id", id=notice_id
            )
        }
        assert contacts == KUMANOVO


async def test_one_agency_cannot_supersede_or_see_anothers_notice(broker: Broker) -> None:
    async with broker.sender("mk-mvr") as mvr:
        notice_id = (await mvr.post_notice(example("returnee-repatriation"))).body["id"]
        status = (await mvr.status(notice_id)).body
    assert [(r["role"], r["state"], r["recipients"]) for r in status["roles"]] == [
        ("mk-kumanovo.pcve-focal-point", "pending", 1),
        ("mk-kumanovo.social-welfare-centre", "pending", 1),
    ]
    assert "mk-kumanovo-pcve" not in json.dumps(status)  # roles, not persons
    async with broker.sender("mk-anb") as anb:
        with pytest.raises(SenderError) as caught:
            await anb.status(notice_id)
        assert caught.value.status == 404
        with pytest.raises(SenderError) as missing:
            await anb.status("0" * 32)
        assert missing.value.problem["detail"] == caught.value.problem["detail"]
        with pytest.raises(SenderError) as superseded:
            await anb.post_notice({**example("returnee-repatriation"), "supersedes": notice_id})
        assert superseded.value.status == 422


async def test_a_request_and_its_answer_reach_only_the_right_roles(broker: Broker) -> None:
    async with broker.sender("al-shkoder.municipality") as municipality:
        request = (await municipality.post_notice(example("information-request"))).body
    assert request["recipient_count"] == 1
    answer = {
        "channel": "information-request",
        "jurisdiction": "al-shkoder",
        "severity": "low",
        "subject": "Re: support available",
        "in_reply_to": request["id"],
        "body": {
            "topic": "returnee-support",
            "answer": "The national programme for reintegration applies.",
        },
    }
    async with broker.sender("al-mb") as ministry:
        answered = (await ministry.post_notice(answer)).body
    async with broker.sender("al-asp") as police:  # not asked: cannot answer
        with pytest.raises(SenderError) as caught:
            await police.post_notice(answer)
        assert caught.value.status == 422
    roles = [
        r.role_id
        for r in await broker.rows(
            "select role_id from delivery where notice_id = :id", id=request["id"]
        )
    ]
    assert roles == ["al-mb.liaison-officer"]
    roles = [
        r.role_id
        for r in await broker.rows(
            "select role_id from delivery where notice_id = :id", id=answered["id"]
        )
    ]
    assert roles == ["al-shkoder.pcve-focal-point"]


async def test_the_record_of_seen_nonces_survives_a_restart(
    demo_dir: Path, database_url: str
) -> None:
    body = json.dumps(example("returnee-repatriation")).encode()
    async with running_broker(demo_dir, database_url) as first:
        pair = first.agency_key("mk-mvr")
        url = f"{first.url}/v1/notices"
        headers = signed_headers(
            url, body, pair.private, pair.key_id("mk-mvr"), nonce="restart-replay-0001"
        )  # type: ignore[arg-type]
        assert (await post_raw(url, body, headers))[0] == 201
    async with running_broker(demo_dir, database_url) as second:
        # Same signed request, replayed against the restarted broker (its own URL differs, so re-sign
        # with the same nonce and created time: only the nonce record can refuse it).
        url2 = f"{second.url}/v1/notices"
        created = int(headers["Signature-Input"].split("created=")[1].split(";")[0])
        replay = signed_headers(
            url2,
            body,
            pair.private,
            pair.key_id("mk-mvr"),
            nonce="restart-replay-0001",
            created=created,
        )  # type: ignore[arg-type]
        status, _, _ = await post_raw(url2, body, replay)
        assert status == 401
        assert await second.scalar("select count(*) from notice") == 1


async def test_a_retried_cancel_gets_its_original_answer(broker: Broker) -> None:
    async with broker.sender("mk-mvr") as client:
        first = (await client.post_notice(example("returnee-repatriation"))).body["id"]
        cancel = {
            **example("returnee-repatriation"),
            "supersedes": first,
            "cancel": True,
            "body": {},
            "subject": "Postponed",
        }
        original = await client.post_notice(cancel, idempotency_key="cancel-1")
        retried = await client.post_notice(
            cancel, idempotency_key="cancel-1"
        )  # its target is cancelled now
    assert retried.replayed and retried.body == original.body
    assert await broker.scalar("select count(*) from notice where kind = 'cancel'") == 1


class _Message:
    """A request as ``http-message-signatures`` signs it in place."""

    def __init__(self, method: str, url: str, headers: dict[str, str]) -> None:
        self.method, self.url, self.headers = method, url, dict(headers)


def _independent_signer(broker: Broker, agency: str) -> Any:
    from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

    pair = broker.agency_key(agency)

    class Keys(HTTPSignatureKeyResolver):
        def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
            assert key_id == pair.key_id(agency)
            return pair.private  # type: ignore[return-value]

    return HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=Keys())


def _labelled(
    broker: Broker, method: str, url: str, body: bytes | None, labels: dict[str, str]
) -> dict[str, str]:
    """Headers carrying one valid signature per label (label -> nonce), by the independent signer."""
    from datetime import UTC, datetime

    signer, keyid = (
        _independent_signer(broker, "mk-mvr"),
        broker.agency_key("mk-mvr").key_id("mk-mvr"),
    )
    created = datetime.fromtimestamp(int(time.time()), tz=UTC)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    message = _Message(method, url, headers)
    components = (
        ("@method", "@target-uri", "content-type")
        if body is not None
        else ("@method", "@target-uri")
    )
    for index, (label, nonce) in enumerate(labels.items()):
        signer.sign(
            message,
            key_id=keyid,
            created=created,
            nonce=nonce,
            label=label,
            covered_component_ids=components,
            body=body,
            use_existing_digest=index > 0 and body is not None,
            append_if_signature_exists=index > 0,
        )
    return message.headers


async def test_a_request_signed_twice_cannot_post_twice(broker: Broker) -> None:
    """Attacker: anyone on the network holding one doubly-signed request of an agency.

    Before, ``sig1`` + ``sig2`` posted once (only ``sig1``'s nonce recorded) and the same bytes
    with only ``sig2`` posted again. Now a request carries exactly one label: the doubly-signed
    one is the one 401, ``sig2`` alone is accepted once, and its replay is the same 401.
    """
    url = f"{broker.url}/v1/notices"
    body = json.dumps(example("returnee-repatriation")).encode()
    both = _labelled(
        broker, "POST", url, body, {"sig1": "first-label-nonce", "sig2": "second-label-nonce"}
    )
    second = _labelled(broker, "POST", url, body, {"sig2": "second-label-nonce"})
    assert second["Signature"] in both["Signature"]  # the same bytes, one label cut out
    status, refused, _ = await post_raw(url, body, both)
    assert status == 401 and refused["code"] == "authentication_failed"
    first_post = await post_raw(url, body, second)
    assert first_post[0] == 201, first_post[1]
    status, replayed, _ = await post_raw(url, body, second)
    assert status == 401 and _same_401(replayed) == _same_401(refused)
    status, again, _ = await post_raw(url, body, both)
    assert status == 401 and _same_401(again) == _same_401(refused)
    assert await broker.scalar("select count(*) from notice") == 1


async def test_a_status_read_signed_twice_is_refused(broker: Broker) -> None:
    """The same one-label rule holds for signed GETs (``/v1/notices/{id}/status``)."""
    async with broker.sender("mk-mvr") as client:
        notice_id = (await client.post_notice(example("returnee-repatriation"))).body["id"]
    url = f"{broker.url}/v1/notices/{notice_id}/status"
    both = _labelled(
        broker, "GET", url, None, {"sig1": "status-nonce-one", "sig2": "status-nonce-two"}
    )
    second = _labelled(broker, "GET", url, None, {"sig2": "status-nonce-two"})

    async def get(headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    status, refused = await get(both)
    assert status == 401 and refused["code"] == "authentication_failed"
    assert (await get(second))[0] == 200
    status, replayed = await get(second)
    assert status == 401 and _same_401(replayed) == _same_401(refused)
