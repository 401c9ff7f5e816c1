"""Hardening of the broker as a server (issue 14, finding 11), each against a real process or a
real loopback server with its real SQLite file: what an attacker on the network, a cache between
client and broker, or another user of the broker host gets."""

from __future__ import annotations

import json
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from broker.crypto.keys import read_private_key
from broker.crypto.tokens import make_assertion
from tests.integration.intake_support import Broker, example, running_broker, signed_headers
from tests.support import free_port, output, recipient, run_cli, serve_process

SECRET = "scrape-me-not-3f9a1c"
STREAM_COUNT_PREFIX = 'liaison_request_duration_seconds_count{method="GET",route="/v1/stream",'


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _wait_for(predicate: Any, what: str) -> None:
    """Until ``predicate()`` holds (a file or log line of a broker process), at most 20 s."""
    deadline = time.monotonic() + 20
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- 1. /metrics -------------------------------------------------------------------------------


async def test_metrics_are_on_their_own_listener_behind_a_token_never_the_public_one(
    demo_dir: Path,
) -> None:
    """Attacker: anyone on the internet scraping /metrics for traffic and refusal counts."""
    port = free_port()
    env = {
        "LIAISON_METRICS_PORT": str(port),
        "LIAISON_METRICS_TOKEN": "env:SCRAPE_TOKEN",
        "SCRAPE_TOKEN": SECRET,
    }
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    with serve_process(demo_dir, env=env) as (_, url):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/metrics") as response:
                assert response.status == 404
                assert response.content_type == "application/problem+json"
                assert (await response.json(content_type=None))["type"].endswith("/not_found")
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with http.get(metrics_url, headers=headers) as response:
                    assert response.status == 401
                    assert response.content_type == "application/problem+json"
            auth = {"Authorization": f"Bearer {SECRET}"}
            async with http.get(metrics_url, headers=auth) as response:
                assert response.status == 200 and response.content_type == "text/plain"
                assert "liaison_request_duration_seconds" in await response.text()


def test_the_caddyfile_does_not_publish_metrics() -> None:
    caddyfile = (Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile").read_text()
    assert "@metrics path /metrics /metrics/*" in caddyfile
    assert "respond @metrics 404" in caddyfile


# -- 2. Cache-Control --------------------------------------------------------------------------


async def test_every_api_answer_is_no_store_problems_and_ciphertext_included(
    demo_dir: Path,
) -> None:
    """Attacker: a shared cache (a proxy, a browser profile) that keeps what it may keep."""
    async with running_broker(demo_dir, f"sqlite+aiosqlite:///{demo_dir / 'h.db'}") as broker:
        async with broker.sender("mk-mvr") as sender:
            posted = await sender.post_notice(example("returnee-repatriation"))
        notice_id = posted.body["id"]
        async with broker.recipient("mk-kumanovo-pcve") as pcve:
            token = await pcve.token()
        bearer = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            answers = {}
            for name, path, headers in (
                ("notice (ciphertext)", f"/v1/notices/{notice_id}", bearer),
                ("inbox", "/v1/inbox", bearer),
                ("401 problem", "/v1/inbox", {}),
                ("404 problem", "/v1/nothing-here", {}),
                ("checkpoint", "/v1/audit/checkpoint", bearer),
                ("readyz", "/readyz", {}),
            ):
                async with http.get(f"{broker.url}{path}", headers=headers) as response:
                    answers[name] = (response.status, response.headers.get("Cache-Control"))
            async with http.get(f"{broker.url}/ui/") as response:
                page = response.headers.get("Cache-Control")
    assert answers["notice (ciphertext)"][0] == 200
    assert answers["401 problem"][0] == 401 and answers["404 problem"][0] == 404
    assert {name: cache for name, (_, cache) in answers.items()} == {
        name: "no-store" for name in answers
    }
    assert page == "no-cache"  # the web inbox's static files may be revalidated, not the API


# -- 3. public_url, never Host -----------------------------------------------------------------


async def test_a_request_signed_for_a_foreign_host_is_refused(demo_dir: Path) -> None:
    """Attacker: a relay that takes a request signed for another broker (another authority)
    and replays it here with that Host header. With public_url unset, the broker used to take
    the Host header as its own authority and accept it; now it derives its URL from its
    settings (and logs that), and the foreign request gets the one 401."""
    pair = read_private_key(demo_dir / "keys" / "mk-mvr.pem", expected="ed25519")
    keyid = pair.key_id("mk-mvr")
    body = json.dumps(example("returnee-repatriation")).encode()
    with serve_process(demo_dir, env={"LIAISON_SERVER_PUBLIC_URL": ""}) as (proc, url):
        port = url.rsplit(":", 1)[1]
        foreign = f"evil.example:{port}"
        async with aiohttp.ClientSession() as http:
            for components in (
                ("@method", "@target-uri", "content-type", "content-digest"),
                ("@method", "@authority", "@path", "content-type", "content-digest"),
            ):
                headers = signed_headers(
                    f"http://{foreign}/v1/notices", body, pair.private, keyid, components=components
                )
                headers["Host"] = foreign
                async with http.post(f"{url}/v1/notices", data=body, headers=headers) as response:
                    assert response.status == 401, components
                    problem = await response.json(content_type=None)
                    assert problem["type"].endswith("/authentication_failed")
            # A token audience is the broker's URL, not the Host the request names.
            contact = "mk-kumanovo-pcve"
            signing = read_private_key(demo_dir / "keys" / f"{contact}.pem", expected="ed25519")
            assertion = make_assertion(
                signing.private,  # type: ignore[arg-type]
                contact=contact,
                kid=signing.key_id(contact),
                audience=f"http://{foreign}",
                now=datetime.now(UTC),
            )
            grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
            async with http.post(
                f"{url}/v1/token", json={**grant, "assertion": assertion}, headers={"Host": foreign}
            ) as response:
                assert (response.status, (await response.json())["error"]) == (400, "invalid_grant")
            # Signed for the broker's own URL, the same request is accepted.
            headers = signed_headers(f"{url}/v1/notices", body, pair.private, keyid)
            async with http.post(f"{url}/v1/notices", data=body, headers=headers) as response:
                assert response.status == 201
    started = {e["event"]: e for e in _json_lines(output(proc))}
    assert started["public_url_derived"]["public_url"] == url
    assert started["broker_started"]["public_url"] == url


def test_init_writes_public_url(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    result = run_cli("init", data, "--port", "9123", "--public-url", "https://liaison.test")
    assert result.returncode == 0, result.stderr
    assert 'public_url = "https://liaison.test"' in (data / "liaison.toml").read_text()
    other = tmp_path / "default"
    assert run_cli("init", other, "--port", "9124").returncode == 0
    assert 'public_url = "http://127.0.0.1:9124"' in (other / "liaison.toml").read_text()


# -- 4. file modes -----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_directory_is_its_owners_only_after_init_and_serve(tmp_path: Path) -> None:
    """Attacker: another user of the broker host reading the database, its WAL, or a key."""
    data = tmp_path / "data"
    result = run_cli("init", data, "--demo")
    assert result.returncode == 0, result.stderr
    assert _mode(data) == 0o700
    assert _mode(data / "liaison.db") == 0o600
    keys = sorted((data / "keys").glob("*.pem"))
    assert keys and {_mode(k) for k in keys} == {0o600}
    (data / "liaison.db").chmod(0o644)  # a data directory made by an older version
    data.chmod(0o755)
    with serve_process(data) as (_, url):
        async with recipient(data, url, "mk-kumanovo-pcve") as pcve:
            await pcve.inbox()  # the broker has written (a token.issued event): WAL in use
        wal, shm = data / "liaison.db-wal", data / "liaison.db-shm"
        _wait_for(lambda: wal.exists() and shm.exists(), "the write-ahead log")
        assert {_mode(p) for p in (data / "liaison.db", wal, shm)} == {0o600}
        assert _mode(data) == 0o700


# -- 5. a closed stream ------------------------------------------------------------------------


async def test_a_client_closing_its_stream_is_a_normal_end_not_a_500(demo_dir: Path) -> None:
    """A recipient closing its live stream is the normal end of a stream: no traceback and no
    500 in the log (an operator alerting on 5xx would page for every closed laptop)."""
    metrics_port = free_port()
    env = {
        "LIAISON_DELIVERY_STREAM_HEARTBEAT_SECONDS": "1",
        "LIAISON_METRICS_PORT": str(metrics_port),
    }
    with serve_process(demo_dir, env=env) as (proc, url):
        async with recipient(demo_dir, url, "mk-kumanovo-pcve") as pcve:
            token = await pcve.token()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/v1/stream", headers={"Authorization": f"Bearer {token}"}) as stream,
        ):
            assert stream.status == 200
            await stream.content.readuntil(b"\n\n")  # a heartbeat: the stream is open
        # The session is closed: the broker finds out on its next heartbeat.

        def stream_ended() -> bool:
            return any(
                e.get("event") == "request_handled" and e.get("path") == "/v1/stream"
                for e in _json_lines(output(proc))
            )

        _wait_for(stream_ended, "the stream's access log line")
        log = output(proc)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response,
        ):
            scraped = await response.text()
    stream_counts = [line for line in scraped.splitlines() if line.startswith(STREAM_COUNT_PREFIX)]
    assert [line.split("status=")[1].split("}")[0] for line in stream_counts] == ['"499"']
    ended = [e for e in _json_lines(log) if e.get("path") == "/v1/stream"]
    assert [(e["status"], e.get("outcome")) for e in ended] == [(499, "client_closed")]
    assert "Traceback" not in log and "request_failed" not in log
    assert all(e.get("status") != 500 for e in _json_lines(log))


# -- 6. refusals are counted, not written one by one ------------------------------------------


async def _audit_actions(broker: Broker) -> list[tuple[str, str]]:
    from sqlalchemy import text

    async with broker.state.engine.connect() as conn:
        rows = await conn.execute(text("SELECT action, body FROM audit_event ORDER BY seq"))
        return [(r[0], r[1]) for r in rows.all()]


async def test_unauthenticated_refusals_are_summarised_not_one_durable_write_each(
    demo_dir: Path, tmp_path: Path
) -> None:
    """Attacker: an unauthenticated client flooding the broker with bad requests, turning each
    into a commit to the audit log. 200 bad signatures, 50 bad bearer tokens and 50 bad token
    requests from one client: the same 401 each, and a bounded number of audit rows whose
    summary counts all 300."""
    database = tmp_path / "refusals.db"
    env = {"LIAISON_AUDIT_REFUSAL_SUMMARY_SECONDS": "3600"}  # one interval: flushed at shutdown
    body = json.dumps(example("returnee-repatriation")).encode()
    async with running_broker(demo_dir, f"sqlite+aiosqlite:///{database}", env=env) as broker:
        before = len(await _audit_actions(broker))
        pair = broker.agency_key("mk-mvr")
        wrong = read_private_key(demo_dir / "keys" / "mk-bjb.pem", expected="ed25519")
        statuses: list[int] = []
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                headers = signed_headers(
                    f"{broker.url}/v1/notices", body, wrong.private, pair.key_id("mk-mvr")
                )
                async with http.post(
                    f"{broker.url}/v1/notices", data=body, headers=headers
                ) as response:
                    statuses.append(response.status)
            for _ in range(50):
                bad = {"Authorization": "Bearer not-a-token"}
                async with http.get(f"{broker.url}/v1/inbox", headers=bad) as response:
                    statuses.append(response.status)
            for _ in range(50):
                grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
                async with http.post(
                    f"{broker.url}/v1/token", json={**grant, "assertion": "x.y.z"}
                ) as response:
                    statuses.append(response.status)
        assert statuses == [401] * 250 + [400] * 50  # token refusals: RFC 6749 invalid_grant
        during = (await _audit_actions(broker))[before:]
        # Only the first refusal of each (action, reason, source) is written at once.
        assert [a for a, _ in during] == ["notice.refused", "auth.refused", "token.refused"]
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT action, body FROM audit_event"))).all()
    finally:
        await engine.dispose()
    refusal_rows = [r for r in rows if "refused" in r[0]]
    assert len(refusal_rows) == 4  # 3 first refusals and one summary, for 300 refusals
    summaries = [json.loads(r[1]) for r in rows if r[0] == "auth.refused_summary"]
    assert len(summaries) == 1
    details = summaries[0]["details"]
    assert details["total"] == 300
    counts = {(c["action"], c["source"]): c["count"] for c in details["counts"]}
    assert counts == {
        ("notice.refused", "127.0.0.1"): 200,
        ("auth.refused", "127.0.0.1"): 50,
        ("token.refused", "127.0.0.1"): 50,
    }
