"""OpenAPI parts the web inbox's pages read: the names beside the ids, the acknowledgement
deadline, and the agency's list of its own notices (``GET /v1/notices``)."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import ACCEPT_LANGUAGE, SIGNED, _json, _problem

_NAME = {"type": ["string", "null"]}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

# Fields added beside the ids wherever a page shows a notice: the titles from the policies and
# the directory (null when the id is no longer known), and when an acknowledgement is due
# (null when the channel sets no deadline).
NAMES: dict[str, Any] = {
    "channel_title": {
        **_NAME,
        "description": "The channel's title in the policies, in the Accept-Language asked",
    },
    "jurisdiction_name": {**_NAME, "description": "The jurisdiction's name in the directory"},
    "ack_deadline": {
        **_TIME_OR_NULL,
        "description": "When an acknowledgement is due: ack_deadline_hours after sending",
    },
}

# The inbox also names who sent it and the role it reached you through.
INBOX_NAMES: dict[str, Any] = {
    **NAMES,
    "sender_name": {**_NAME, "description": "The sending organisation's name"},
    "role_title": {**_NAME, "description": "The title of the role it reached you through"},
}

SENT_SCHEMAS: dict[str, Any] = {
    "SentNotices": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "channel": {"type": "string"},
                        "jurisdiction": {"type": "string"},
                        "severity": {"type": "string"},
                        "marking": {"type": "string"},
                        "exercise": {
                            "type": ["string", "null"],
                            "enum": ["exercise", "test", None],
                        },
                        "kind": {"type": "string"},
                        "status": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        **NAMES,
                        "roles": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/RoleStatus"},
                        },
                        "replies": {"type": "integer", "description": "Encrypted replies received"},
                    },
                },
            },
            "next_cursor": {"type": ["string", "null"]},
        },
    },
}

SENT_LIST: dict[str, Any] = {
    "operationId": "listSentNotices",
    "tags": ["agencies"],
    "summary": "The agency's own notices, newest first, with each role's state (signed request)",
    "security": SIGNED,
    "parameters": [
        {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 512}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 50},
        },
        ACCEPT_LANGUAGE,
    ],
    "responses": {
        "200": _json("A page of the agency's notices", "SentNotices"),
        "401": _problem("Authentication failed"),
        "422": _problem("A malformed cursor or limit"),
    },
}
