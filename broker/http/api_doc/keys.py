"""OpenAPI paths of the published keys: the audit log's checkpoint keys and the webhook keys."""

from __future__ import annotations

from typing import Any

_STATE = {"enum": ["active", "verifying", "retired"]}

LOG_KEYS: dict[str, Any] = {
    "type": "object",
    "required": ["origin", "keys"],
    "properties": {
        "origin": {"type": "string", "description": "The log's origin, also the note key name"},
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kid", "state", "key_name", "public_key", "verifier_key"],
                "properties": {
                    "kid": {"type": "string"},
                    "state": _STATE,
                    "key_name": {"type": "string"},
                    "public_key": {"type": "string", "description": "Ed25519, base64"},
                    "verifier_key": {
                        "type": "string",
                        "description": "C2SP signed-note verifier key: name+hexid+base64(0x01||key)",
                    },
                },
            },
        },
    },
}
WEBHOOK_KEYS: dict[str, Any] = {
    "type": "object",
    "required": ["keys"],
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kid", "state", "public_key"],
                "properties": {
                    "kid": {"type": "string"},
                    "state": _STATE,
                    "public_key": {
                        "type": "string",
                        "pattern": "^whpk_",
                        "description": "Standard Webhooks",
                    },
                },
            },
        }
    },
}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


KEY_PATHS: dict[str, Any] = {
    "/v1/keys/log": {
        "get": {
            "operationId": "getLogKeys",
            "tags": ["keys"],
            "summary": "The audit log's checkpoint keys (signed-note verifier keys), retired ones too",
            "responses": {"200": _answer("The log's keys, the signing one first", LOG_KEYS)},
        }
    },
    "/v1/keys/webhooks": {
        "get": {
            "operationId": "getWebhookKeys",
            "tags": ["keys"],
            "summary": "The whpk_ keys that sign v1a webhooks (Standard Webhooks), the signing one first",
            "responses": {"200": _answer("The webhook keys", WEBHOOK_KEYS)},
        }
    },
}
