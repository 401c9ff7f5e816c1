"""OpenAPI components: security schemes and the schemas the paths refer to."""

from __future__ import annotations

from typing import Any

from broker.audit.events import FIELDS as EVENT_FIELDS
from broker.domain.notice import EXERCISES, SEVERITIES
from broker.http.api_doc.examples import NOTICE_EXAMPLES
from broker.http.api_doc.pages import INBOX_NAMES, NAMES, SENT_SCHEMAS
from broker.http.api_doc.release import RELEASE_STATE
from broker.service.notices import NOTICE_SCHEMA
from broker.service.tokens import CLIENT_ASSERTION_TYPE, CLIENT_CREDENTIALS
from broker.service.tokens import GRANT_TYPE as GRANT


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


STRING: dict[str, Any] = {"type": "string"}
NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
BASE64: dict[str, Any] = {"type": "string", "contentEncoding": "base64"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NULLABLE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
SEVERITY: dict[str, Any] = {"type": "string", "enum": list(SEVERITIES)}
# The agency's exercise or test marking (signed in the notice; null for a real notice).
EXERCISE: dict[str, Any] = {
    "type": ["string", "null"],
    "enum": [*EXERCISES, None],
    "description": "exercise or test: labelled everywhere, never escalated; null: a real notice",
}
DELIVERY_STATES = ["pending", "delivered", "read", "acknowledged", "escalated"]
DELIVERY_STATE: dict[str, Any] = {"type": "string", "enum": DELIVERY_STATES}
# The metadata of one delivery (``broker.service.live.event_data``): the inbox and the stream.
DELIVERY_PROPERTIES: dict[str, Any] = {
    "notice_id": STRING,
    "channel": STRING,
    "jurisdiction": STRING,
    "severity": SEVERITY,
    "marking": STRING,
    "exercise": EXERCISE,
    "kind": STRING,
    "status": STRING,
    "supersedes": NULLABLE_STRING,
    "sender": STRING,
    "role": STRING,
    "state": DELIVERY_STATE,
    "created_at": TIME,
    "acknowledged_at": NULLABLE_TIME,
}
DELIVERY_FIELDS = tuple(DELIVERY_PROPERTIES)
ASSERTION: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 4096}
# A token request: the jwt-bearer grant's assertion, or the client-credentials grant's
# client_assertion (RFC 7523 §2.2) with its type and, optionally, the client's own id.
TOKEN_FIELDS: dict[str, Any] = {
    "grant_type": {"type": "string", "enum": [GRANT, CLIENT_CREDENTIALS]},
    "assertion": ASSERTION,
    "client_assertion_type": {"type": "string", "enum": [CLIENT_ASSERTION_TYPE]},
    "client_assertion": ASSERTION,
    "client_id": {"type": "string", "description": "the contact the client assertion names"},
    "scope": {"type": "string", "description": "accepted and ignored: a token names a contact"},
}

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
        "Notice": {
            **{k: v for k, v in NOTICE_SCHEMA.items() if k != "$schema"},
            "description": (
                "A notice document; body is checked against its channel's schema "
                "(policies/channels/<channel>.yaml)"
            ),
            "examples": list(NOTICE_EXAMPLES.values()),
        },
        "Accepted": {
            "type": "object",
            "required": [
                "id",
                "channel",
                "recipient_count",
                "policy_hash",
                "status_url",
                "not_reached",
            ],
            "properties": {
                "id": STRING,
                "channel": STRING,
                "recipient_count": {"type": "integer", "minimum": 0},
                "policy_hash": STRING,
                "status_url": STRING,
                "not_reached": {"type": "array", "items": _ref("NotReached")},
                "release": {"const": "waiting", "description": "held for two-person release"},
            },
        },
        "NotReached": {
            "type": "object",
            "description": "A role the policy names that this notice did not reach, and why",
            "required": ["role", "jurisdiction", "reason"],
            "properties": {
                "role": STRING,
                "jurisdiction": STRING,
                "reason": {"enum": ["vacant", "no_encryption_key", "denied_by_policy"]},
            },
        },
        "NoticeStatus": {
            "type": "object",
            "required": [
                "id",
                "channel",
                "jurisdiction",
                "kind",
                "status",
                "marking",
                "exercise",
                "created_at",
                "supersedes",
                "policy_hash",
                "roles",
                "replies",
            ],
            "properties": {
                "id": STRING,
                "channel": STRING,
                "jurisdiction": STRING,
                "kind": STRING,
                "status": STRING,
                "marking": STRING,
                "exercise": EXERCISE,
                "created_at": TIME,
                "supersedes": NULLABLE_STRING,
                "policy_hash": STRING,
                **NAMES,
                "roles": {"type": "array", "items": _ref("RoleStatus")},
                "replies": {"type": "array", "items": _ref("Reply")},
                "release": RELEASE_STATE,
                "abroad": {
                    "type": ["object", "null"],
                    "description": (
                        "A notice forwarded to a peer broker: the peer, the forward's state, and "
                        "the peer's latest report (its roles are in `roles`, `foreign: true`)"
                    ),
                    "properties": {
                        "peer": STRING,
                        "peer_title": STRING,
                        "agreement": STRING,
                        "country": {
                            "type": ["string", "null"],
                            "description": (
                                "The country the notice is for (through the hub: the one behind "
                                "it), when this broker's directory or the peer names it"
                            ),
                        },
                        "forward": {"enum": ["pending", "sent", "dead", "unknown"]},
                        "forward_error": {
                            "type": ["string", "null"],
                            "description": (
                                "Why the forward is dead: the peer's refusal (`HTTP 403: "
                                "<its reason>`) or the last failure; null otherwise"
                            ),
                        },
                        "peer_notice_id": NULLABLE_STRING,
                        "reported_at": NULLABLE_TIME,
                        "status": NULLABLE_STRING,
                    },
                },
            },
        },
        "RoleStatus": {
            "type": "object",
            "description": "How far delivery got for one role in one jurisdiction",
            "required": [
                "role",
                "role_title",
                "jurisdiction",
                "jurisdiction_name",
                "rule",
                "recipients",
                "state",
                "delivered_at",
                "read_at",
                "acknowledged_at",
                "escalated_at",
            ],
            "properties": {
                "role": STRING,
                "role_title": STRING,
                "jurisdiction": STRING,
                "jurisdiction_name": NULLABLE_STRING,
                "rule": NULLABLE_STRING,
                "recipients": {"type": "integer", "minimum": 0},
                "state": DELIVERY_STATE,
                "delivered_at": NULLABLE_TIME,
                "read_at": NULLABLE_TIME,
                "acknowledged_at": NULLABLE_TIME,
                "escalated_at": NULLABLE_TIME,
                "foreign": {"type": "boolean", "description": "a peer broker's role, abroad"},
                "peer": STRING,
                "peer_title": STRING,
            },
        },
        "Reply": {
            "type": "object",
            "description": "A recipient's reply, encrypted to the agency's X25519 key; the broker passes it on unread",
            "required": ["role", "created_at", "key_id", "wrap", "nonce", "ciphertext"],
            "properties": {
                "role": STRING,
                "created_at": TIME,
                "key_id": STRING,
                "wrap": BASE64,
                "nonce": BASE64,
                "ciphertext": BASE64,
            },
        },
        "TokenForm": {
            "type": "object",
            "description": (
                "RFC 7523 jwt-bearer grant (assertion), or the client-credentials grant with the"
                " same signed assertion as RFC 7523 §2.2 client authentication (client_assertion,"
                " OpenID Connect private_key_jwt); form-encoded as RFC 6749 has it"
            ),
            "properties": TOKEN_FIELDS,
        },
        "TokenRequest": {
            "type": "object",
            "description": "The same grants as a JSON object",
            "properties": TOKEN_FIELDS,
        },
        "Token": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": STRING,
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer"},
                "contact": STRING,
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
            "description": (
                "RFC 6749 §5.2: the same invalid_grant for every refused assertion (invalid_client"
                " when it was a client assertion)"
            ),
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "string",
                    "enum": [
                        "invalid_request",
                        "invalid_grant",
                        "invalid_client",
                        "unsupported_grant_type",
                    ],
                },
                "error_description": STRING,
            },
        },
        "AuthorizationServerMetadata": {
            "type": "object",
            "description": "RFC 8414",
            "required": ["issuer", "token_endpoint", "jwks_uri", "grant_types_supported"],
            "properties": {
                "issuer": STRING,
                "token_endpoint": STRING,
                "jwks_uri": STRING,
                "grant_types_supported": {"type": "array", "items": STRING},
            },
        },
        "JWKSet": {
            "type": "object",
            "description": "RFC 7517: the access-token signing key (OKP Ed25519, RFC 8037)",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
        },
        "InboxItem": {
            "type": "object",
            "description": "One delivery of a notice to this contact: metadata only, never contents",
            "required": [*DELIVERY_FIELDS, "delivery_id"],
            "properties": {
                **DELIVERY_PROPERTIES,
                "delivery_id": {"type": "integer", "minimum": 1},
                **INBOX_NAMES,
            },
        },
        "StreamEvent": {
            "type": "object",
            "description": (
                "The data of each `event: notice` of GET /v1/stream (one JSON line), its `id` the "
                "delivery id to resume from with Last-Event-ID; lines starting with ':' are keep-alives"
            ),
            "required": list(DELIVERY_FIELDS),
            "properties": DELIVERY_PROPERTIES,
        },
        "Inbox": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref("InboxItem")},
                "next_cursor": {
                    **NULLABLE_STRING,
                    "description": "Pass as cursor for the next (older) page; null on the last page",
                },
            },
        },
        "RecipientNotice": {
            "type": "object",
            "description": (
                "A notice for its recipient: ciphertext, this contact's own key wrap, and what lets "
                "the client verify the agency's signature itself. Never a data key."
            ),
            "required": [
                "id",
                "channel",
                "jurisdiction",
                "severity",
                "marking",
                "exercise",
                "kind",
                "status",
                "supersedes",
                "sender",
                "sender_name",
                "policy_hash",
                "created_at",
                "expires_at",
                "roles",
                "acknowledged_at",
                "reply_key",
                "encryption",
                "signature",
            ],
            "properties": {
                "id": STRING,
                "channel": STRING,
                "jurisdiction": STRING,
                "severity": SEVERITY,
                "marking": STRING,
                "exercise": EXERCISE,
                "kind": STRING,
                "status": STRING,
                "supersedes": NULLABLE_STRING,
                "sender": STRING,
                "sender_name": NULLABLE_STRING,
                **NAMES,
                "role_titles": {
                    "type": "object",
                    "additionalProperties": NULLABLE_STRING,
                    "description": "The title of each role the notice reached you through",
                },
                "labels": {
                    "type": "object",
                    "description": (
                        "The channel's names for the body's fields and enum values, in the "
                        "Accept-Language asked (policy file payload.labels); presentation only"
                    ),
                    "required": ["fields", "values"],
                    "properties": {
                        "fields": {"type": "object", "additionalProperties": STRING},
                        "values": {"type": "object", "additionalProperties": STRING},
                    },
                },
                "policy_hash": STRING,
                "created_at": TIME,
                "expires_at": NULLABLE_TIME,
                "roles": {"type": "array", "items": STRING},
                "acknowledged_at": NULLABLE_TIME,
                "reply_key": {
                    "description": "The agency's X25519 key to encrypt a reply to; null where the channel takes none",
                    "oneOf": [_ref("ReplyKey"), {"type": "null"}],
                },
                "encryption": _ref("Encryption"),
                "signature": _ref("SignatureMaterial"),
            },
        },
        "ReplyKey": {
            "type": "object",
            "required": ["key_id", "public"],
            "properties": {"key_id": STRING, "public": BASE64},
        },
        "Encryption": {
            "type": "object",
            "description": (
                "The notice document, encrypted: open wrap.sealed (a sealed box to this contact's "
                "X25519 key wrap.key_id) to get the data key, then decrypt ciphertext with aead, "
                "nonce and aad"
            ),
            "required": ["aead", "nonce", "aad", "ciphertext", "wrap"],
            "properties": {
                "aead": STRING,
                "nonce": BASE64,
                "aad": BASE64,
                "ciphertext": BASE64,
                "wrap": {
                    "type": "object",
                    "required": ["key_id", "sealed"],
                    "properties": {"key_id": STRING, "sealed": BASE64},
                },
            },
        },
        "SignatureMaterial": {
            "type": "object",
            "description": (
                "The agency's RFC 9421 signature of the request that posted the notice, with the "
                "component values it covered, so the recipient verifies it without trusting the broker"
            ),
            "required": [
                "sender_key_id",
                "sender_public_key",
                "signature_input",
                "signature",
                "signed_values",
                "content_digest",
            ],
            "properties": {
                "sender_key_id": STRING,
                "sender_public_key": {**NULLABLE_STRING, "contentEncoding": "base64"},
                "signature_input": STRING,
                "signature": STRING,
                "signed_values": {"type": "object", "additionalProperties": STRING},
                "content_digest": STRING,
            },
        },
        "Ack": {
            "type": "object",
            "required": ["key_id", "signature"],
            "properties": {
                "key_id": {"type": "string", "description": "The contact's current Ed25519 key id"},
                "signature": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "base64 Ed25519 over the liaison-ack-v1 statement",
                },
                "reply": {
                    "type": "object",
                    "description": "Only on a channel that takes replies, encrypted to reply_key",
                    "required": ["key_id", "wrap", "nonce", "ciphertext"],
                    "properties": {
                        "key_id": STRING,
                        "wrap": BASE64,
                        "nonce": BASE64,
                        "ciphertext": BASE64,
                    },
                },
            },
        },
        "AckRecorded": {
            "type": "object",
            "required": ["id", "acknowledged_at"],
            "properties": {"id": STRING, "acknowledged_at": TIME},
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
            "required": [*EVENT_FIELDS, "leaf_data"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "prev": {
                    "type": "string",
                    "description": "The leaf hash (hex) of the event before",
                },
                "at": TIME,
                "actor": STRING,
                "action": STRING,
                "object": STRING,
                "channel": NULLABLE_STRING,
                "decision": {**NULLABLE_STRING, "description": "allow or deny, for decisions"},
                "policies": {"type": "array", "items": STRING},
                "request": NULLABLE_STRING,
                "outcome": {"type": "string", "enum": ["ok", "refused", "failed"]},
                "reason": NULLABLE_STRING,
                "details": {"type": "object"},
                "v": {"type": "integer", "enum": [2], "description": "leaf format (absent: v1)"},
                "leaf_data": {
                    **BASE64,
                    "description": "the exact leaf bytes that were hashed (base64)",
                },
            },
        },
        "HiddenAuditEvent": {
            "type": "object",
            "description": "An event outside the auditor's jurisdiction, in its place: its leaf hash only",
            "required": ["seq", "hidden", "leaf"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "hidden": {"type": "boolean", "description": "Always true"},
                "leaf": {"type": "string", "description": "The leaf hash, hex"},
            },
        },
        "AuditEvents": {
            "type": "object",
            "required": ["events", "next_cursor"],
            "properties": {
                "events": {
                    "type": "array",
                    "items": {"oneOf": [_ref("AuditEvent"), _ref("HiddenAuditEvent")]},
                },
                "next_cursor": {
                    **NULLABLE_STRING,
                    "description": "Pass as cursor for the next page; null at the end of the log",
                },
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
            "required": ["origin", "key_name", "public_key", "size", "note"],
            "properties": {
                "origin": STRING,
                "key_name": STRING,
                "public_key": BASE64,
                "size": {"type": "integer", "minimum": 0},
                "note": {"type": "string", "description": "The signed note (C2SP tlog-checkpoint)"},
            },
        },
        "InclusionProof": {
            "type": "object",
            "required": ["seq", "tree_size", "leaf_index", "leaf_hash", "event", "proof"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "tree_size": {"type": "integer", "minimum": 1},
                "leaf_index": {"type": "integer", "minimum": 0},
                "leaf_hash": BASE64,
                "event": _ref("AuditEvent"),
                "proof": {"type": "array", "items": BASE64},
            },
        },
        "ConsistencyProof": {
            "type": "object",
            "required": ["first", "second", "proof"],
            "properties": {
                "first": {"type": "integer", "minimum": 1},
                "second": {"type": "integer", "minimum": 1},
                "proof": {"type": "array", "items": BASE64},
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
                "reason": {
                    "type": "string",
                    "description": "why an agency may not publish its notice (403)",
                },
                "why": {
                    "type": "object",
                    "description": "the reason as data: its rule and the rule's fields",
                    "properties": {
                        "rule": {"enum": ["forbidden_by_policy", "no_policy_permits"]},
                        "policies": {"type": "array", "items": {"type": "string"}},
                        "sender": {"type": "string"},
                        "channel": {"type": "string"},
                        "jurisdiction": {"type": "string"},
                    },
                    "required": ["rule"],
                },
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
