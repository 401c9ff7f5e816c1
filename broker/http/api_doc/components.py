"""OpenAPI components: security schemes and the schemas the paths refer to."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.pages import NAMES, SENT_SCHEMAS
from broker.service.notices import NOTICE_SCHEMA

COMPONENTS: dict[str, Any] = {
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
        **SENT_SCHEMAS,
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
                **NAMES,
                "roles": {"type": "array", "items": {"$ref": "#/components/schemas/RoleState"}},
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
                "language": {
                    "type": "string",
                    "description": "The contact's language in the directory (BCP 47)",
                },
                "encryption_key_ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The contact's usable X25519 key ids in the directory",
                },
            },
        },
        "TokenError": {
            "type": "object",
            "description": "RFC 6749 §5.2: the same invalid_grant for every refused assertion",
            "required": ["error"],
            "properties": {
                "error": {"enum": ["invalid_request", "invalid_grant", "unsupported_grant_type"]},
                "error_description": {"type": "string"},
            },
        },
        "AuthorizationServerMetadata": {
            "type": "object",
            "description": "RFC 8414",
            "required": ["issuer", "token_endpoint", "jwks_uri", "grant_types_supported"],
            "properties": {
                "issuer": {"type": "string"},
                "token_endpoint": {"type": "string"},
                "jwks_uri": {"type": "string"},
                "grant_types_supported": {"type": "array", "items": {"type": "string"}},
            },
        },
        "JWKSet": {
            "type": "object",
            "description": "RFC 7517: the access-token signing key (OKP Ed25519, RFC 8037)",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
        },
        "Inbox": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/InboxItem"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "RecipientNotice": {
            "type": "object",
            "properties": {
                **NAMES,
                "sender_name": {"type": ["string", "null"]},
                "role_titles": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "null"]},
                    "description": "The title of each role the notice reached you through",
                },
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
                "events": {
                    "type": "array",
                    "items": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/AuditEvent"},
                            {"$ref": "#/components/schemas/HiddenAuditEvent"},
                        ]
                    },
                },
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "AuditEvent": {
            "type": "object",
            "description": (
                "One event: its fields as parsed from its leaf, and leaf_data, the exact leaf "
                "bytes. Leaf hash = SHA-256(0x00 || leaf_data) (RFC 9162). Leaf format v2 (v: 2): "
                "leaf_data is the RFC 8785 (JCS) form of the other fields; format v1 (no v, "
                "events written before v2): one line of JSON in the key order seq, prev, at, "
                "actor, action, object, channel, decision, policies, request, outcome, reason, "
                "details."
            ),
            "required": ["seq", "prev", "at", "actor", "action", "object", "leaf_data"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "prev": {
                    "type": "string",
                    "description": "hex leaf hash of event seq-1 (64 zeros for event 1)",
                },
                "at": {"type": "string", "format": "date-time"},
                "actor": {"type": "string"},
                "action": {"type": "string"},
                "object": {"type": "string"},
                "channel": {"type": ["string", "null"]},
                "decision": {"type": ["string", "null"]},
                "policies": {"type": "array", "items": {"type": "string"}},
                "request": {"type": ["string", "null"]},
                "outcome": {"type": "string"},
                "reason": {"type": ["string", "null"]},
                "details": {"type": "object"},
                "v": {"type": "integer", "enum": [2], "description": "leaf format (absent: v1)"},
                "leaf_data": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "the exact leaf bytes that were hashed (base64)",
                },
            },
        },
        "HiddenAuditEvent": {
            "type": "object",
            "required": ["seq", "hidden", "leaf"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "hidden": {"const": True},
                "leaf": {"type": "string", "description": "hex leaf hash of an event not shown"},
            },
        },
        "AuditCheckpoints": {
            "type": "object",
            "properties": {
                "origin": {"type": "string", "description": "the log's name (audit.origin)"},
                "origins": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "every name checkpoints were signed under, the current last",
                },
                "public_key": {"type": "string", "description": "base64 Ed25519 checkpoint key"},
                "checkpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "size": {"type": "integer"},
                            "note": {
                                "type": "string",
                                "description": "C2SP signed note; key name = its origin line",
                            },
                            "signed_at": {"type": "string", "format": "date-time"},
                        },
                    },
                },
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
                "event": {"$ref": "#/components/schemas/AuditEvent"},
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
}
