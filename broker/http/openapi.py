"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json.

``tests/integration/test_openapi.py`` checks that every route is described and every described
path is routed, so this document cannot drift from the server.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker import __version__
from broker.input import MAX_INT64
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
NO_CONTROL_CHARACTERS = "^[^\\u0000-\\u001f\\u007f]*$"

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
NOTICE_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]

RECIPIENT_PATHS: dict[str, Any] = {
    "/v1/token": {
        "post": {
            "summary": "Exchange a signed contact assertion (RFC 7523) or a trusted OIDC token for an access token",
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {"$ref": "#/components/schemas/TokenRequest"}
                    },
                    "application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}},
                },
            },
            "responses": {
                "200": _json("An access token (EdDSA JWT, typ at+jwt)", "Token"),
                "401": _problem("Refused (the same answer for every reason)"),
            },
        }
    },
    "/v1/inbox": {
        "get": {
            "summary": "The contact's notices, newest first (metadata only)",
            "security": BEARER,
            "parameters": [
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "enum": ["pending", "delivered", "read", "acknowledged", "escalated"]
                    },
                },
                {"name": "channel", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json("A page of the inbox", "Inbox"),
                "401": _problem("Not authenticated"),
            },
        }
    },
    "/v1/notices/{id}": {
        "get": {
            "summary": "A notice for its recipient: ciphertext, this contact's wrap, the agency's signature material",
            "security": BEARER,
            "parameters": NOTICE_ID,
            "responses": {
                "200": _json("The encrypted notice", "RecipientNotice"),
                "401": _problem("Not authenticated"),
                "404": _problem("No such notice (or not this contact's)"),
                "410": _problem("Destroyed at the end of its retention"),
            },
        }
    },
    "/v1/notices/{id}/ack": {
        "post": {
            "summary": "Acknowledge a notice, signed over its content digest; optionally reply to the agency",
            "security": BEARER,
            "parameters": NOTICE_ID,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ack"}}},
            },
            "responses": {
                "200": _json("Recorded", "AckRecorded"),
                "401": _problem("Not authenticated"),
                "404": _problem("No such notice"),
                "422": _problem("Signature or reply invalid"),
            },
        }
    },
    "/v1/stream": {
        "get": {
            "summary": "Server-Sent Events: one event per new delivery (metadata); resume with Last-Event-ID",
            "security": BEARER,
            "parameters": [{"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "text/event-stream"},
                "401": _problem("Not authenticated"),
            },
        }
    },
}

AUDIT_PATHS: dict[str, Any] = {
    "/v1/audit/events": {
        "get": {
            "summary": "Audit events (auditors only): canonical records, never notice contents",
            "description": (
                "Only events of the auditor's jurisdiction (Cedar audit_jurisdiction) and log-wide "
                "ones. hidden=leaves (without filters) puts every other event in its place as "
                "{seq, hidden: true, leaf}: its leaf hash, so the chain and the signed root recompute."
            ),
            "security": BEARER,
            "parameters": [
                *(
                    {"name": n, "in": "query", "schema": {"type": "string", "format": "date-time"}}
                    for n in ("from", "to")
                ),
                *(
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("actor", "action", "notice", "channel", "cursor")
                ),
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "hidden", "in": "query", "schema": {"type": "string", "enum": ["leaves"]}},
            ],
            "responses": {
                "200": _json("A page of events", "AuditEvents"),
                "401": _problem("Not authenticated"),
                "403": _problem("Not an auditor"),
                "422": _problem("A filter or cursor that is not valid"),
            },
        }
    },
    "/v1/audit/checkpoint": {
        "get": {
            "summary": "The latest signed checkpoint (C2SP tlog-checkpoint); fresh=1 signs one now",
            "security": BEARER,
            "parameters": [{"name": "fresh", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": _json("A signed checkpoint", "AuditCheckpoint"),
                "401": _problem("Not authenticated"),
                "403": _problem("Not an auditor"),
            },
        }
    },
    "/v1/audit/proof/inclusion": {
        "get": {
            "summary": "RFC 9162 inclusion proof of event seq in the tree of the given size",
            "security": BEARER,
            "parameters": [
                {
                    "name": n,
                    "in": "query",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                }
                for n in ("seq", "size")
            ],
            "responses": {
                "200": _json("The proof", "InclusionProof"),
                "401": _problem("Not authenticated"),
                "403": _problem("Not an auditor"),
                "404": _problem("No such event, or one outside the auditor's jurisdiction"),
                "422": _problem("Out of range"),
            },
        }
    },
    "/v1/audit/proof/consistency": {
        "get": {
            "summary": "RFC 9162 consistency proof between two tree sizes",
            "security": BEARER,
            "parameters": [
                {
                    "name": n,
                    "in": "query",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                }
                for n in ("first", "second")
            ],
            "responses": {
                "200": _json("The proof", "ConsistencyProof"),
                "401": _problem("Not authenticated"),
                "403": _problem("Not an auditor"),
                "422": _problem("Out of range"),
            },
        }
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Liaison",
        "version": __version__,
        "description": "Secure inter-agency information-sharing broker. Errors are RFC 9457 problem+json.",
    },
    "paths": {
        "/": {
            "get": {
                "summary": "Redirects to the web inbox",
                "responses": {"302": {"description": "To /ui/"}},
            }
        },
        "/ui/{name}": {
            "get": {
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
                "summary": "The administrators' signed directory root and key bindings (TUF metadata)",
                "description": (
                    "root.json, N.root.json (every root version) and bindings.json, relayed as the "
                    "administrators signed them; clients verify them against the root they pinned."
                ),
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "The file", "content": {"application/json": {}}},
                    "404": _problem("No such file"),
                },
            }
        },
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
                    "(or @authority and @path), content-type and content-digest (RFC 9530), with created and nonce; "
                    "exactly one signature label per request. "
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
        **RECIPIENT_PATHS,
        **AUDIT_PATHS,
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "httpMessageSignature": {
                "type": "apiKey",
                "in": "header",
                "name": "Signature",
                "description": "RFC 9421 Signature and Signature-Input headers; keyid is the agency key id.",
            },
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
            "TokenRequest": {
                "type": "object",
                "required": ["assertion"],
                "properties": {
                    "grant_type": {"const": "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                    "assertion": {"type": "string", "maxLength": 4096},
                },
            },
            "Token": {
                "type": "object",
                "properties": {
                    "access_token": {"type": "string"},
                    "token_type": {"const": "Bearer"},
                    "expires_in": {"type": "integer"},
                    "contact": {"type": "string"},
                },
            },
            "Inbox": {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"type": "object"}},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "RecipientNotice": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "channel": {"type": "string"},
                    "marking": {"type": "string"},
                    "encryption": {"type": "object"},
                    "signature": {"type": "object"},
                },
            },
            "Ack": {
                "type": "object",
                "required": ["key_id", "signature"],
                "properties": {
                    "key_id": {"type": "string"},
                    "signature": {
                        "type": "string",
                        "description": "base64 Ed25519 over liaison-ack-v1 statement",
                    },
                    "reply": {
                        "type": "object",
                        "properties": {
                            "key_id": {"type": "string"},
                            "wrap": {"type": "string"},
                            "nonce": {"type": "string"},
                            "ciphertext": {"type": "string"},
                        },
                    },
                },
            },
            "AckRecorded": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "acknowledged_at": {"type": "string"}},
            },
            "AuditEvents": {
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": {"type": "object"}},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "AuditCheckpoint": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string"},
                    "key_name": {"type": "string"},
                    "public_key": {"type": "string"},
                    "size": {"type": "integer"},
                    "note": {"type": "string"},
                },
            },
            "InclusionProof": {
                "type": "object",
                "properties": {
                    "seq": {"type": "integer"},
                    "tree_size": {"type": "integer"},
                    "leaf_hash": {"type": "string"},
                    "proof": {"type": "array", "items": {"type": "string"}},
                },
            },
            "ConsistencyProof": {
                "type": "object",
                "properties": {
                    "first": {"type": "integer"},
                    "second": {"type": "integer"},
                    "proof": {"type": "array", "items": {"type": "string"}},
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
