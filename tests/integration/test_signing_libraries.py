"""The two common RFC 9421 libraries, with the settings the README gives, against a real broker.

``http-message-signatures`` in Python and the npm package of the same name in JavaScript (run by
node from ``tests/interop/js``, with its packages vendored beside its lockfile, in a temporary
directory) each post a notice and read its status as an agency system; with each library's own
defaults (no nonce; no ``content-type`` covered in Python, nothing covered in JavaScript) the
broker answers its one 401, which is why the README lists the settings.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.intake_support import Broker, example, running_broker

JS = Path(__file__).resolve().parents[1] / "interop" / "js"
AGENCY = "mk-anb"


@pytest.fixture
async def broker(demo_dir: Path, tmp_path: Path) -> Any:
    async with running_broker(demo_dir, f"sqlite+aiosqlite:///{tmp_path / 'l.db'}") as running:
        yield running


class _Message:
    """A request as the Python library signs it: method, url, headers (changed in place)."""

    def __init__(self, method: str, url: str, headers: dict[str, str]) -> None:
        self.method, self.url, self.headers = method, url, headers


def _python_signer(broker: Broker) -> Any:
    from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

    private = broker.agency_key(AGENCY).private

    class Keys(HTTPSignatureKeyResolver):
        def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
            return private  # type: ignore[return-value]

    return HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=Keys())


async def _send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, data=body) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_python_http_message_signatures_with_the_readme_settings(broker: Broker) -> None:
    signer, keyid = _python_signer(broker), broker.agency_key(AGENCY).key_id(AGENCY)
    url = f"{broker.url}/v1/notices"
    body = json.dumps(example("returnee-repatriation")).encode()
    posted = _Message("POST", url, {"Content-Type": "application/json"})
    signer.sign(  # the README's settings
        posted,
        key_id=keyid,
        nonce=secrets.token_urlsafe(16),
        covered_component_ids=("@method", "@target-uri", "content-type"),
        body=body,  # adds Content-Digest (sha-256) and covers it
    )
    status, document = await _send("POST", url, posted.headers, body)
    assert status == 201, document
    read = _Message("GET", f"{broker.url}/v1/notices/{document['id']}/status", {})
    signer.sign(
        read,
        key_id=keyid,
        nonce=secrets.token_urlsafe(16),
        covered_component_ids=("@method", "@target-uri"),
    )
    status, answer = await _send("GET", read.url, read.headers, None)
    assert status == 200 and answer["id"] == document["id"], answer

    defaults = _Message("POST", url, {"Content-Type": "application/json"})
    signer.sign(defaults, key_id=keyid, body=body)  # no nonce, content-type not covered
    status, refused = await _send("POST", url, defaults.headers, body)
    assert status == 401 and refused["code"] == "authentication_failed", refused


@pytest.fixture(scope="module")
def node_signer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JavaScript signer with its two packages from ``vendor/node_modules`` (the files of the
    lockfile's versions that run; see tests/interop/js/README.md): nothing is fetched."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed here")
    work = tmp_path_factory.mktemp("interop-js")
    for name in ("package.json", "package-lock.json", "sign.mjs"):
        shutil.copy(JS / name, work / name)
    shutil.copytree(JS / "vendor" / "node_modules", work / "node_modules")
    return work / "sign.mjs"


async def _node(script: Path, *args: str) -> dict[str, Any]:
    """Run the script without blocking the loop the broker is served on."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        *args,
        cwd=script.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)  # type: ignore[no-any-return]


async def test_javascript_http_message_signatures_with_the_readme_settings(
    broker: Broker, node_signer: Path, tmp_path: Path
) -> None:
    key = broker.data / "keys" / f"{AGENCY}.pem"
    keyid = broker.agency_key(AGENCY).key_id(AGENCY)
    notice = tmp_path / "notice.json"
    notice.write_text(json.dumps(example("returnee-repatriation")))
    url = f"{broker.url}/v1/notices"
    posted = await _node(node_signer, "POST", url, str(key), keyid, str(notice))
    assert posted["status"] == 201, posted
    notice_id = posted["body"]["id"]
    read = await _node(node_signer, "GET", f"{url}/{notice_id}/status", str(key), keyid, "-")
    assert read["status"] == 200 and read["body"]["id"] == notice_id, read
    refused = await _node(node_signer, "POST", url, str(key), keyid, str(notice), "defaults")
    assert refused["status"] == 401 and refused["body"]["code"] == "authentication_failed"
