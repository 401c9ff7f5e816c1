"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json.

``tests/integration/test_openapi.py`` checks that every route is described and every described
path is routed, so this document cannot drift from the server.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker import __version__
from broker.service.notices import NOTICE_SCHEMA


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


SIGNED: list[dict[str, list[str]]] = [{"httpMessageSignature": []}]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Liaison",
        "version": __version__,
        "description": "Secure inter-agency information-sharing broker. Errors are RFC 9457 problem+json.",
    },
    "paths": {
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "responses": {"200": _json("The process is up", "Health")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: database reachable, policies and directory loaded",
                "responses": {
                    "200": _json("Ready", "Readiness"),
                    "503": _json("Not ready", "Readiness"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        "/v1/notices": {
            "post": {
                "summary": "Post a signed notice (agency systems)",
                "description": (
                    "Signed with HTTP Message Signatures (RFC 9421, alg ed25519) covering @method, @target-uri "
                    "(or @authority and @path), content-type and content-digest (RFC 9530), with created and nonce. "
                    "A 201 means the notice, its key wraps and deliveries are durably committed."
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
                        "application/json": {"schema": {"$ref": "#/components/schemas/Notice"}}
                    },
                },
                "responses": {
                    "201": _json("Accepted and committed", "Accepted"),
                    "400": _problem("Not JSON"),
                    "401": _problem("Authentication failed (the same answer for every reason)"),
                    "403": _problem("This agency may not publish this notice"),
                    "409": _problem("The idempotency key was used for another request"),
                    "413": _problem("Body too large"),
                    "415": _problem("Not application/json"),
                    "422": _problem(
                        "Unknown channel or jurisdiction, schema violations, no recipients"
                    ),
                    "503": _problem("The store is unavailable; nothing was committed"),
                },
            }
        },
        "/v1/notices/{id}/status": {
            "get": {
                "summary": "Delivery and acknowledgement status of one's own notice, per role",
                "security": SIGNED,
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json("Status per role and jurisdiction", "NoticeStatus"),
                    "401": _problem("Authentication failed"),
                    "404": _problem("No such notice (or not this agency's)"),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "httpMessageSignature": {
                "type": "apiKey",
                "in": "header",
                "name": "Signature",
                "description": "RFC 9421 Signature and Signature-Input headers; keyid is the agency key id.",
            }
        },
        "schemas": {
            "Notice": {k: v for k, v in NOTICE_SCHEMA.items() if k != "$schema"},
            "Accepted": {
                "type": "object",
                "required": ["id", "recipient_count", "policy_hash"],
                "properties": {
                    "id": {"type": "string"},
                    "recipient_count": {"type": "integer"},
                    "policy_hash": {"type": "string"},
                    "status_url": {"type": "string"},
                    "not_reached": {"type": "array", "items": {"type": "object"}},
                },
            },
            "NoticeStatus": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "channel": {"type": "string"},
                    "status": {"type": "string"},
                    "roles": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "role": {"type": "string"},
                                "jurisdiction": {"type": "string"},
                                "state": {
                                    "enum": [
                                        "pending",
                                        "delivered",
                                        "read",
                                        "acknowledged",
                                        "escalated",
                                    ]
                                },
                                "recipients": {"type": "integer"},
                            },
                        },
                    },
                },
            },
            "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
            "Readiness": {
                "type": "object",
                "properties": {
                    "status": {"type": "string"},
                    "checks": {"type": "object"},
                    "policy_hash": {"type": "string"},
                },
            },
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                    "instance": {"type": "string"},
                    "violations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "pointer": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


async def serve(request: web.Request) -> web.Response:
    return web.json_response(SPEC)
