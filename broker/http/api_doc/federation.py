"""OpenAPI paths of federation: a notice forwarded by a declared peer broker, and a peer's
status report on a notice forwarded to it."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import _problem

B64 = {"type": "string", "description": "base64"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
STATUS_REPORT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["notice_id", "reporter_notice_id", "as_of", "status", "roles"],
    "properties": {
        "notice_id": {"type": "string", "description": "the sending broker's notice id"},
        "reporter_notice_id": {"type": "string", "description": "the reporting broker's id"},
        "as_of": {"type": "string", "format": "date-time"},
        "status": {"enum": ["active", "superseded", "cancelled", "expired"]},
        "roles": {
            "type": "array",
            "maxItems": 256,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "role",
                    "jurisdiction",
                    "state",
                    "recipients",
                    "delivered_at",
                    "read_at",
                    "acknowledged_at",
                    "escalated_at",
                ],
                "properties": {
                    "role": {"type": "string"},
                    "jurisdiction": {"type": "string"},
                    "state": {
                        "enum": ["pending", "delivered", "read", "acknowledged", "escalated"]
                    },
                    "recipients": {"type": "integer", "minimum": 0},
                    "delivered_at": TIME_OR_NULL,
                    "read_at": TIME_OR_NULL,
                    "acknowledged_at": TIME_OR_NULL,
                    "escalated_at": TIME_OR_NULL,
                },
            },
        },
        "replies": {
            "type": "array",
            "maxItems": 64,
            "description": (
                "Recipients' replies, sealed to the sending agency's X25519 key as its own "
                "country's directory binds it; stored once per id; no person"
            ),
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "role", "created_at", "key_id", "wrap", "nonce", "ciphertext"],
                "properties": {
                    "id": {"type": "string", "description": "the reporting broker's reply id"},
                    "role": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "key_id": {"type": "string", "description": "an X25519 key of the agency"},
                    "wrap": B64,
                    "nonce": B64,
                    "ciphertext": B64,
                },
            },
        },
    },
}

FEDERATION_PATHS: dict[str, Any] = {
    "/v1/federation/notices": {
        "post": {
            "operationId": "receiveFederatedNotice",
            "tags": ["federation"],
            "summary": "Receive a notice a peer broker forwards across a border",
            "description": (
                "Signed (RFC 9421) by the broker key a peer file (`policies/peers/<id>.yaml`) "
                "pins, over `@method`, `@target-uri`, `content-digest`, `content-type` and "
                "`idempotency-key` (the peer's notice id). The body carries the ciphertext, the "
                "data key wrapped for this broker's escrow key, the agency's original signature "
                "and signed values, and the sending broker's signed root and key bindings. "
                "The same notice sent again answers 200 with the first answer. A broker whose "
                "agreement with the sending peer says `relay` (the hub) routes nothing here "
                "but forwards the notice to the peer of its country, its origin unchanged."
            ),
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": [
                                "notice_id",
                                "sender",
                                "sender_key_id",
                                "channel",
                                "jurisdiction",
                                "severity",
                                "marking",
                                "policy_hash",
                                "aead",
                                "nonce",
                                "ciphertext",
                                "wrap",
                                "signature_input",
                                "signature",
                                "signed_values",
                                "content_digest",
                                "origin",
                            ],
                            "properties": {
                                "notice_id": {"type": "string"},
                                "sender": {"type": "string"},
                                "sender_kind": {"type": ["string", "null"]},
                                "sender_key_id": {"type": "string"},
                                "channel": {"type": "string"},
                                "jurisdiction": {"type": "string"},
                                "severity": {"type": "string"},
                                "marking": {"type": "string"},
                                "created_at": {"type": ["string", "null"]},
                                "expires_at": {"type": ["string", "null"]},
                                "policy_hash": {"type": "string"},
                                "aead": {"type": "string"},
                                "nonce": B64,
                                "ciphertext": B64,
                                "wrap": {
                                    "type": "object",
                                    "properties": {"key_id": {"type": "string"}, "sealed": B64},
                                },
                                "signature_input": {"type": "string"},
                                "signature": {"type": "string"},
                                "signed_values": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "content_digest": {"type": "string"},
                                "origin": {
                                    "type": "object",
                                    "properties": {
                                        "root": B64,
                                        "bindings": B64,
                                        "country": {
                                            "type": "string",
                                            "description": (
                                                "Relayed by the hub: the country whose signed "
                                                "directory this is (its root pinned in the "
                                                "hub's peer file, `member_roots`)"
                                            ),
                                        },
                                    },
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": {
                    "description": "Received and routed by this broker's policy",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["id", "peer_notice_id", "recipient_count"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "peer_notice_id": {"type": "string"},
                                    "recipient_count": {"type": "integer"},
                                    "policy_hash": {"type": "string"},
                                    "relayed": {
                                        "type": "object",
                                        "description": (
                                            "The hub: not routed here but queued for the peer "
                                            "that serves the notice's country"
                                        ),
                                        "properties": {
                                            "peer": {"type": "string"},
                                            "agreement": {"type": "string"},
                                            "agreement_crossing": {"type": "integer"},
                                            "state": {"type": "string"},
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "200": {"description": "Already received: the first answer, again"},
                "400": _problem("Not a forwarded notice"),
                "401": _problem("Not signed by a declared peer (the same answer for every reason)"),
                "403": _problem("Refused: origin, bytes or agreement; `reason` says which"),
                "413": _problem("Body too large"),
                "415": _problem("Not application/json"),
                "422": _problem("The notice names an unknown channel or jurisdiction here"),
            },
        }
    },
    "/v1/federation/status": {
        "post": {
            "operationId": "receiveFederatedStatus",
            "tags": ["federation"],
            "summary": "A peer broker reports the per-role state of a notice forwarded to it",
            "description": (
                "Signed (RFC 9421) by the pinned broker key of the peer the notice was forwarded "
                "to, over the same components as a forward; `Idempotency-Key` begins with the "
                "notice id. Role ids, jurisdiction ids, states, counts and times, and the "
                "recipients' replies sealed to the agency's X25519 key: any other field is "
                "refused. Merged monotonically (a state never goes back; a reply id is stored "
                "once). A report on a notice not forwarded to that peer is one 403."
            ),
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": STATUS_REPORT}},
            },
            "responses": {
                "200": {
                    "description": "Merged into the sender's view of its notice",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["notice_id", "changes"],
                                "properties": {
                                    "notice_id": {"type": "string"},
                                    "changes": {"type": "integer", "minimum": 0},
                                },
                            }
                        }
                    },
                },
                "400": _problem(
                    "Not a status report (or a field it may not carry, or a reply not sealed "
                    "to the agency's key)"
                ),
                "401": _problem("Not signed by a declared peer, or replayed (one answer)"),
                "403": _problem("No notice was forwarded to this peer under this id"),
                "413": _problem("Body too large"),
                "415": _problem("Not application/json"),
            },
        }
    },
}
