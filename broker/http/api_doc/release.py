"""OpenAPI paths of two-person release: a second officer approves or refuses a held notice."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import SIGNED, _problem

RELEASE_STATE: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "Two-person release, when the channel requires it (else null)",
    "required": ["state", "deadline", "decided_by", "decided_at", "reason"],
    "properties": {
        "state": {"enum": ["waiting", "approved", "refused", "timed_out"]},
        "deadline": {"type": "string", "format": "date-time"},
        "decided_by": {"type": ["string", "null"], "description": "the second officer's key"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "reason": {"type": ["string", "null"]},
    },
}

_ANSWER = {
    "type": "object",
    "required": ["id", "release", "by"],
    "properties": {
        "id": {"type": "string"},
        "release": {"enum": ["approved", "refused"]},
        "by": {"type": "string", "description": "the key id of the officer who decided"},
    },
}


def _operation(operation_id: str, summary: str, reason: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "content_digest": {
            "type": "string",
            "description": "The notice's Content-Digest (RFC 9530) as the first officer signed it",
        }
    }
    if reason:
        properties["reason"] = {"type": "string", "maxLength": 500}
    return {
        "operationId": operation_id,
        "tags": ["agencies"],
        "summary": summary,
        "description": (
            "Signed (RFC 9421) by a different Ed25519 key of the agency that posted the notice; "
            "the poster's own key, another agency's key, or another digest is refused (403)."
        ),
        "security": SIGNED,
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["content_digest"],
                        "properties": properties,
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "Decided",
                "content": {"application/json": {"schema": _ANSWER}},
            },
            "401": _problem("Authentication failed"),
            "403": _problem("Same officer, another digest, or no longer waiting"),
            "404": _problem("No such notice waiting for release (or not this agency's)"),
        },
    }


RELEASE_PATHS: dict[str, Any] = {
    "/v1/notices/{id}/approve": {
        "post": _operation(
            "approveNotice", "Release a held notice as a second officer of its agency", False
        )
    },
    "/v1/notices/{id}/refuse": {
        "post": _operation("refuseNotice", "Refuse a held notice: it is never routed", True)
    },
}
