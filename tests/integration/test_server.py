"""The broker as a server: probes, problem+json, reload and shutdown, on loopback."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from broker.app import create_app
from broker.config import load_settings
from tests.conftest import fresh_pg_database
from tests.support import LoopbackServer, get_json, run_cli, serve_process
from tests.support import output as read_output


async def test_health_and_readiness(demo_dir: Path) -> None:
    settings = load_settings(demo_dir, {})
    async with LoopbackServer(create_app(settings, {})) as server, aiohttp.ClientSession() as http:
        assert await get_json(http, f"{server.url}/healthz") == (
            200,
            "application/json",
            {"status": "ok"},
        )
        status, _, body = await get_json(http, f"{server.url}/readyz")
        assert status == 200
        assert body["checks"] == {"database": "ok", "policies": "loaded"}  # type: ignore[index]
        assert body["directory_revision"] == 1  # type: ignore[index]
        assert str(body["policy_hash"]).startswith("sha256:")  # type: ignore[index]


async def test_errors_are_problem_json_with_a_request_id(demo_dir: Path) -> None:
    settings = load_settings(demo_dir, {})
    async with LoopbackServer(create_app(settings, {})) as server, aiohttp.ClientSession() as http:
        status, content_type, body = await get_json(http, f"{server.url}/v1/nothing-here")
        assert (status, content_type) == (404, "application/problem+json")
        assert body["type"].endswith("/not_found") and body["status"] == 404  # type: ignore[index]
        async with http.post(
            f"{server.url}/healthz", headers={"X-Request-Id": "test-request-0001"}
        ) as response:
            assert response.status == 405 and response.content_type == "application/problem+json"
            assert response.headers["X-Request-Id"] == "test-request-0001"
            assert (await response.json(content_type=None))[
                "instance"
            ] == "urn:liaison:request:test-request-0001"


@pytest.mark.postgres
async def test_readiness_fails_when_the_database_goes_away(demo_dir: Path) -> None:
    async with fresh_pg_database() as url:
        settings = load_settings(demo_dir, {"LIAISON_DATABASE_URL": url})
        async with (
            LoopbackServer(create_app(settings, {})) as server,
            aiohttp.ClientSession() as http,
        ):
            assert (await get_json(http, f"{server.url}/readyz"))[0] == 200
            import asyncpg

            from tests.conftest import PG_URL

            admin = await asyncpg.connect(PG_URL)
            await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            await admin.close()
            status, _, body = await get_json(http, f"{server.url}/readyz")
            assert status == 503 and body["checks"]["database"] == "unreachable"  # type: ignore[index]
            assert (await get_json(http, f"{server.url}/healthz"))[0] == 200


def test_serve_refuses_to_start_on_an_invalid_policy_set(demo_dir: Path) -> None:
    guards = demo_dir / "policies" / "guards.cedar"
    guards.write_text(guards.read_text().replace("unless {", "unless ((", 1))
    result = run_cli("serve", "--data", demo_dir, "--port", "0", timeout=60)
    assert result.returncode == 1
    assert "policies/guards.cedar:" in result.stderr and "Cedar syntax" in result.stderr
    assert "Traceback" not in result.stderr


def _ready(url: str) -> dict[str, object]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:  # noqa: S310 (loopback test URL)
        return json.loads(response.read())  # type: ignore[no-any-return]


def _wait_until(predicate: object, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_reload_keeps_the_last_valid_set_then_takes_a_fixed_one(demo_dir: Path) -> None:
    with serve_process(demo_dir) as (proc, url):
        original = _ready(url)["policy_hash"]
        channel = demo_dir / "policies" / "channels" / "hate-incident.yaml"
        good = channel.read_text()
        channel.write_text(good.replace("retention_days: 180", "retention_days: forever"))
        refused = run_cli("policy", "reload", "--data", demo_dir)
        assert refused.returncode == 1 and "retention_days" in refused.stderr
        assert "policy_reload_refused" not in read_output(proc)  # the CLI refused, not the broker
        os.kill(proc.pid, signal.SIGHUP)  # a reload the CLI did not pre-check
        # The broker logs the refusal once it has decided: only then is "unchanged" a proof.
        assert _wait_until(lambda: "policy_reload_refused" in read_output(proc))
        assert _ready(url)["policy_hash"] == original
        channel.write_text(good.replace("retention_days: 180", "retention_days: 90"))
        accepted = run_cli("policy", "reload", "--data", demo_dir)
        assert accepted.returncode == 0, accepted.stderr
        assert _wait_until(lambda: _ready(url)["policy_hash"] != original)
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        output = read_output(proc)
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "policy_reload_refused" in events and "policy_reloaded" in events
    assert list((demo_dir / "run").glob("*.pid")) == []


def test_a_directory_applied_while_serving_is_picked_up(demo_dir: Path, tmp_path: Path) -> None:
    with serve_process(demo_dir) as (_, url):
        assert _ready(url)["directory_revision"] == 1
        changed = tmp_path / "directory.yaml"
        changed.write_text(
            (demo_dir / "directory.yaml")
            .read_text()
            .replace("Municipality of Kumanovo", "Opština Kumanovo")
        )
        assert run_cli("directory", "apply", changed, "--data", demo_dir).returncode == 0
        assert _wait_until(lambda: _ready(url)["directory_revision"] == 2, timeout=15)


async def test_metrics_count_requests_notices_and_state(demo_dir: Path) -> None:
    from tests.integration.intake_support import example, running_broker
    from tests.support import free_port

    port = free_port()
    env = {"LIAISON_METRICS_PORT": str(port)}
    database = f"sqlite+aiosqlite:///{demo_dir / 'm.db'}"
    async with running_broker(demo_dir, database, env=env) as broker:
        async with broker.sender("mk-mvr") as sender:
            await sender.post_notice(example("returnee-repatriation"))
        async with broker.sender("mk-bjb") as police:
            with pytest.raises(Exception):  # noqa: B017, PT011 - the 403 itself is tested elsewhere
                await police.post_notice(example("returnee-repatriation"))
        metrics = f"http://127.0.0.1:{port}/metrics"  # its own listener, never the public one
        async with aiohttp.ClientSession() as http, http.get(metrics) as response:
            assert response.status == 200 and response.content_type == "text/plain"
            text = await response.text()
    assert 'liaison_notices_accepted_total{channel="returnee-repatriation"}' in text
    assert 'liaison_notices_refused_total{reason="forbidden"}' in text
    assert 'liaison_deliveries{state="pending"} 2.0' in text
    assert (
        'liaison_request_duration_seconds_count{method="POST",route="/v1/notices",status="201"}'
        in text
    )
    assert "liaison_audit_events" in text and "mk-kumanovo" not in text  # counts, never names
    assert 'liaison_push_decisions{source="hit"}' in text  # live push's kept decisions
    assert 'python_gc_collections_total{generation="2"}' in text  # full collections pause all
