"""``GET /v1/trust/{name}``: the administrators' signed root and key bindings, as given.

The broker only relays these files from ``DATA/trust/``; it cannot sign them, and clients check
them against the root they pinned at enrolment, so serving them unauthenticated is safe.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from broker.errors import NotFound
from broker.http.keys import SETTINGS
from broker.trust.core import MAX_METADATA_BYTES
from broker.trust.files import TRUST_DIR

_NAME = re.compile(r"^(root|bindings|[1-9][0-9]{0,5}\.root)\.json$")


async def get_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not _NAME.fullmatch(name):
        raise NotFound("no such trust file")
    path = request.app[SETTINGS].data_dir / TRUST_DIR / name
    data = await asyncio.to_thread(_read, path)
    return web.Response(body=data, content_type="application/json")


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_METADATA_BYTES + 1)
    except OSError as e:
        raise NotFound("no such trust file") from e
    if len(data) > MAX_METADATA_BYTES:
        raise NotFound("no such trust file")
    return data
