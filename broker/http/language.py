"""The reader's language for the names in an answer: ``Accept-Language`` (RFC 9110 §12.5.4).

The page sends the language its switch shows, the CLI its ``--lang``; without the header, or
with none of the eight, names are the files' default text (``broker.titles``). An answer whose
names depend on the header says so (``Vary``) and in which language it is (``Content-Language``).
"""

from __future__ import annotations

from aiohttp import web

from broker.titles import from_accept_language


def reader_language(request: web.Request) -> str | None:
    return from_accept_language(request.headers.get("Accept-Language"))


def in_language(response: web.Response, language: str | None) -> web.Response:
    response.headers["Vary"] = "Accept-Language"
    if language is not None:
        response.headers["Content-Language"] = language
    return response
