"""OpenAPI paths of the recipient API: token, inbox, notice, acknowledgement, stream."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import BEARER, NOTICE_ID, _json, _problem

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
                "200": _json("An access token (EdDSA JWT, typ at+jwt, RFC 9068)", "Token"),
                "400": _json(
                    "Refused, as RFC 6749 §5.2 (invalid_grant: the same answer for every reason)",
                    "TokenError",
                ),
            },
        }
    },
    "/.well-known/oauth-authorization-server": {
        "get": {
            "summary": "Authorization-server metadata (RFC 8414)",
            "responses": {"200": _json("The metadata", "AuthorizationServerMetadata")},
        }
    },
    "/.well-known/jwks.json": {
        "get": {
            "summary": "The access-token signing key as a JWK Set (RFC 7517)",
            "responses": {"200": _json("The key set", "JWKSet")},
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
