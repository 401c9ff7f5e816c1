"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json.

``tests/integration/test_openapi.py`` checks that every route is described and every described
path is routed, so this document cannot drift from the server.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker import __version__
from broker.http.api_doc.audit import AUDIT_PATHS
from broker.http.api_doc.common import (
    ACCEPT_LANGUAGE,
    NO_CONTROL_CHARACTERS,
    SIGNED,
    _json,
    _problem,
)
from broker.http.api_doc.components import COMPONENTS
from broker.http.api_doc.enrol import ENROL_PATHS
from broker.http.api_doc.examples import NOTICE_EXAMPLES
from broker.http.api_doc.federation import FEDERATION_PATHS
from broker.http.api_doc.keys import KEY_PATHS
from broker.http.api_doc.pages import SENT_LIST
from broker.http.api_doc.recipients import RECIPIENT_PATHS
from broker.http.api_doc.release import RELEASE_PATHS
from broker.http.api_doc.witness import WITNESS_PATHS
from broker.input import MAX_INT64

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Liaison",
        "version": __version__,
        "description": "Secure inter-agency information-sharing broker. Errors are RFC 9457 problem+json.",
    },
    "tags": [
        {"name": "agencies", "description": "Agency systems: post notices (RFC 9421 signed)"},
        {"name": "recipients", "description": "Focal points: token, inbox, notices, stream"},
        {"name": "audit", "description": "Auditors: the transparency log"},
        {"name": "keys", "description": "Published keys and trust metadata"},
        {"name": "operations", "description": "Health, readiness, this document"},
        {"name": "web", "description": "The web inbox"},
        {"name": "federation", "description": "Peer brokers: notices crossing a border"},
    ],
    "paths": {
        "/": {
            "get": {
                "operationId": "getRoot",
                "tags": ["web"],
                "summary": "Redirects to the web inbox",
                "responses": {"302": {"description": "To /ui/"}},
            }
        },
        "/ui/{name}": {
            "get": {
                "operationId": "getWebFile",
                "tags": ["web"],
                "summary": "The web inbox: its page, script and style files, by exact name",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {
                            "text/html": {},
                            "text/javascript": {},
                            "text/css": {},
                        },
                    },
                    "404": {"description": "No such file"},
                },
            }
        },
        "/v1/trust/{name}": {
            "get": {
                "operationId": "getTrustFile",
                "tags": ["keys"],
                "summary": "The administrators' signed directory root and key bindings (TUF metadata)",
                "description": (
                    "root.json, N.root.json (every root version) and bindings.json, relayed as the "
                    "administrators signed them; clients verify them against the root they pinned."
                ),
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "404": _problem("No such file"),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "getHealth",
                "tags": ["operations"],
                "summary": "Liveness",
                "responses": {"200": _json("The process is up", "Health")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "getReadiness",
                "tags": ["operations"],
                "summary": "Readiness: database reachable, policies and directory loaded",
                "responses": {
                    "200": _json("Ready", "Readiness"),
                    "503": _json("Not ready", "Readiness"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "tags": ["operations"],
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/v1/notices": {
            "get": SENT_LIST,
            "post": {
                "operationId": "postNotice",
                "tags": ["agencies"],
                "summary": "Post a signed notice (agency systems)",
                "description": (
                    "Signed with HTTP Message Signatures (RFC 9421, alg ed25519) covering @method, @target-uri "
                    "(or @authority and @path), content-type and content-digest (RFC 9530), with created and nonce; "
                    "exactly one signature label per request. "
                    "A 201 means the notice, its key wraps and deliveries are durably committed. "
                    "A CAP 1.2 alert may be posted as it is, as application/cap+xml (channel "
                    "public-safety-alert; an Update or Cancel names what it supersedes in the "
                    "query, ?supersedes=ID, which the signature must cover: @target-uri or @query): "
                    "README, CAP 1.2."
                ),
                "security": SIGNED,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 128},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Notice"},
                            "examples": {
                                name: {"summary": f"A {name} notice", "value": notice}
                                for name, notice in NOTICE_EXAMPLES.items()
                            },
                        }
                    },
                },
                "responses": {
                    "201": {
                        **_json("Accepted and committed", "Accepted"),
                        "links": {
                            "status": {
                                "operationId": "getNoticeStatus",
                                "parameters": {"id": "$response.body#/id"},
                            }
                        },
                    },
                    "400": _problem("Not JSON"),
                    "401": _problem("Authentication failed (the same answer for every reason)"),
                    "403": _problem("This agency may not publish this notice"),
                    "409": _problem("The idempotency key was used for another request"),
                    "413": _problem("Body too large"),
                    "415": _problem("Neither application/json nor application/cap+xml"),
                    "422": _problem(
                        "Unknown channel or jurisdiction, schema violations, no recipients"
                    ),
                    "503": _problem(
                        "store_unavailable: nothing was committed. commit_in_doubt: the "
                        "database went during COMMIT, the notice may be stored; post it again "
                        "under the same Idempotency-Key"
                    ),
                },
            },
        },
        "/v1/notices/{id}/status": {
            "get": {
                "operationId": "getNoticeStatus",
                "tags": ["agencies"],
                "summary": "Delivery and acknowledgement status of one's own notice, per role",
                "security": SIGNED,
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    ACCEPT_LANGUAGE,
                ],
                "responses": {
                    "200": _json("Status per role and jurisdiction", "NoticeStatus"),
                    "401": _problem("Authentication failed"),
                    "404": _problem("No such notice (or not this agency's)"),
                },
            }
        },
        **RECIPIENT_PATHS,
        **AUDIT_PATHS,
        **KEY_PATHS,
        **ENROL_PATHS,
        **FEDERATION_PATHS,
        **WITNESS_PATHS,
        **RELEASE_PATHS,
    },
    "components": COMPONENTS,
}


def _bad_input_refusals(spec: dict[str, Any]) -> None:
    """Any operation may refuse input over a bound (control characters, numbers beyond 64 bits,
    JSON nested too deep) with 400, and a header field over the limit with 431; the bounds on
    path and query parameters are part of their schemas (``broker/input.py``)."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("400", _problem("Input over a bound, or malformed"))
            operation["responses"].setdefault("431", _problem("A header field over the limit"))
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("path", "query"):
                    _bounded(parameter["schema"])


def _bounded(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and "format" not in schema:
        schema.setdefault("pattern", NO_CONTROL_CHARACTERS)
    elif schema.get("type") == "integer":
        schema.setdefault("maximum", MAX_INT64)


_bad_input_refusals(SPEC)


async def serve(request: web.Request) -> web.Response:
    return web.json_response(SPEC)
