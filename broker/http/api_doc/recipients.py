"""OpenAPI paths of the recipient API: token, inbox, notice, acknowledgement, stream."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import ACCEPT_LANGUAGE, BEARER, NOTICE_ID, _json, _problem
from broker.http.api_doc.components import DELIVERY_STATES

EVENT_ID: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{1,64}$"}

RECIPIENT_PATHS: dict[str, Any] = {
    "/v1/token": {
        "post": {
            "operationId": "postToken",
            "tags": ["recipients"],
            "summary": "Exchange a signed contact assertion (RFC 7523) or a trusted OIDC token for an access token",
            "requestBody": {
                # Not required: a request without one is answered like any refused grant, 400
                # invalid_request (RFC 6749 §5.2). Said so, openapi-python-client 0.29 also
                # generates code that runs for a body under two media types (its issue 1451).
                "required": False,
                "content": {
                    # Two schemas of the same shape: a generated client tells the media types
                    # apart by the schema's class (openapi-python-client).
                    "application/x-www-form-urlencoded": {
                        "schema": {"$ref": "#/components/schemas/TokenForm"}
                    },
                    "application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}},
                },
            },
            "responses": {
                "200": _json("An access token (EdDSA JWT, typ at+jwt, RFC 9068)", "Token"),
                "400": {
                    "description": (
                        "Refused, as RFC 6749 §5.2 (invalid_grant: the same answer for every "
                        "reason); input over a bound before the request is read (a control "
                        "character in the query, a header over the limit) is a problem document"
                    ),
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/TokenError"}},
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        },
                    },
                },
            },
        }
    },
    "/.well-known/oauth-authorization-server": {
        "get": {
            "operationId": "getAuthorizationServerMetadata",
            "tags": ["keys"],
            "summary": "Authorization-server metadata (RFC 8414)",
            "responses": {"200": _json("The metadata", "AuthorizationServerMetadata")},
        }
    },
    "/.well-known/jwks.json": {
        "get": {
            "operationId": "getJwks",
            "tags": ["keys"],
            "summary": "The access-token signing key as a JWK Set (RFC 7517)",
            "responses": {"200": _json("The key set", "JWKSet")},
        }
    },
    "/v1/inbox": {
        "get": {
            "operationId": "listInbox",
            "tags": ["recipients"],
            "summary": "The contact's notices, newest first (metadata only)",
            "security": BEARER,
            "parameters": [
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "next_cursor of the page before",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "description": "Items per page (default 50); above the broker's page size, its page size",
                    "schema": {"type": "integer", "minimum": 1},
                },
                {
                    "name": "status",
                    "in": "query",
                    "description": "Only deliveries in this state",
                    "schema": {"type": "string", "enum": DELIVERY_STATES},
                },
                {"name": "channel", "in": "query", "schema": {"type": "string"}},
                ACCEPT_LANGUAGE,
            ],
            "responses": {
                "200": _json("A page of the inbox", "Inbox"),
                "401": _problem("Not authenticated"),
                "422": _problem("A limit, status or cursor that is not valid"),
            },
        }
    },
    "/v1/notices/{id}": {
        "get": {
            "operationId": "getNotice",
            "tags": ["recipients"],
            "summary": "A notice for its recipient: ciphertext, this contact's wrap, the agency's signature material",
            "security": BEARER,
            "parameters": [*NOTICE_ID, ACCEPT_LANGUAGE],
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
            "operationId": "acknowledgeNotice",
            "tags": ["recipients"],
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
                "415": _problem("Not application/json"),
                "422": _problem("Signature or reply invalid"),
            },
        }
    },
    "/v1/stream": {
        "get": {
            "operationId": "streamDeliveries",
            "tags": ["recipients"],
            "summary": "Server-Sent Events: one event per new delivery (metadata); resume with Last-Event-ID",
            "description": (
                "Each event is `id: <delivery id>`, `event: notice`, `data: <StreamEvent as JSON>`; "
                "comment lines (`: keep-alive`) keep the connection open. The stream ends when the "
                "token that opened it expires or is no longer entitled; reconnect with a new token "
                "and the last id seen."
            ),
            "security": BEARER,
            "parameters": [
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "description": "The id of the last event received: the stream resumes after it",
                    "schema": EVENT_ID,
                },
                {
                    "name": "last_event_id",
                    "in": "query",
                    "description": "The same, for clients that cannot set headers (EventSource)",
                    "schema": EVENT_ID,
                },
            ],
            "responses": {
                "200": {
                    "description": "text/event-stream; each event's data is a StreamEvent",
                    "content": {
                        "text/event-stream": {
                            "schema": {"type": "string"},
                            "x-event-data": {"$ref": "#/components/schemas/StreamEvent"},
                        }
                    },
                },
                "401": _problem("Not authenticated"),
                "422": _problem("Last-Event-ID is not an event id this broker sent"),
                "429": _problem("This contact has as many streams open as allowed"),
            },
        }
    },
}
