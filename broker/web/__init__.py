"""The web inbox: static pages served by the broker itself, under a strict Content-Security-Policy.

Invariants: the pages hold no secret and set no cookie; they talk to the same API as every other
client, with a bearer token kept in the page's memory (so a forged cross-site request carries no
credential); private keys are read from a file the user picks, used in the page, and never sent.
Only the files in ``static/`` are served, by name; nothing outside it can be reached.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json; charset=utf-8",  # the interface's message catalogs
}
# No inline script or style, no other origin, no framing, no form posts, no plugins.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-cache",
}
# Read once at import: a few files of a few tens of KiB, served from memory.
_FILES = {
    p.relative_to(STATIC).as_posix(): (p.read_bytes(), TYPES[p.suffix])
    for p in STATIC.rglob("*")
    if p.is_file() and p.suffix in TYPES
}


async def page(request: web.Request) -> web.Response:
    """A file of the web inbox, by its exact name; 404 for anything else."""
    found = _FILES.get(request.match_info.get("name") or "index.html")
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    return web.Response(body=body, headers={**HEADERS, "Content-Type": content_type})


async def root(_: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/ui/"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", root)
    router.add_get("/ui/{name:.*}", page)
