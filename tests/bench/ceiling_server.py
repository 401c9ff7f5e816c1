"""Ceilings for the intake benchmark: the same HTTP stack with less work behind it.

python tests/bench/ceiling_server.py bare PORT         read the body, answer 201
python tests/bench/ceiling_server.py crypto PORT N     verify the signature and digest, encrypt,
                                                       wrap for N recipients; no storage
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from nacl.public import PrivateKey

from broker.crypto.envelope import associated_data, seal, wrap_many
from broker.crypto.httpsig import HttpRequestView, digest_matches, verify_request


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    recipients = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    publics = [bytes(PrivateKey.generate().public_key) for _ in range(recipients + 1)]  # + escrow
    keys: dict[str, bytes] = {}
    pool = ThreadPoolExecutor(2)

    def crypto(headers: dict[str, str], body: bytes, url: str) -> None:
        verify_request(
            HttpRequestView("POST", url, headers),
            lookup_key=keys.get,
            now=int(__import__("time").time()),
            max_skew=300,
            required=[("@method", "@target-uri", "content-type", "content-digest")],
        )
        if not digest_matches(headers["content-digest"], body):
            raise ValueError("digest")
        sealed = seal(body, associated_data("n", "c", "h"))
        wrap_many(sealed.data_key, publics)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if mode == "crypto":
            headers = {k.lower(): v for k, v in request.headers.items()}
            await asyncio.get_running_loop().run_in_executor(
                pool, crypto, headers, body, str(request.url)
            )
        return web.json_response({"id": "x"}, status=201)

    async def register(request: web.Request) -> web.Response:
        data = await request.json()
        keys[data["keyid"]] = bytes.fromhex(data["public"])
        return web.Response(status=204)

    app = web.Application(client_max_size=262_144)
    app.router.add_post("/v1/notices", handle)
    app.router.add_post("/register", register)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
