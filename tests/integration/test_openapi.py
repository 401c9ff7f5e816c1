"""/openapi.json describes exactly the routes the server has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import jsonschema

from broker.app import create_app
from broker.config import load_settings
from tests.support import LoopbackServer

EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[2] / "policies" / "examples" / "returnee-repatriation.json"
    ).read_text()
)


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
