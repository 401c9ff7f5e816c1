"""OpenAPI paths of the auditors' API: events, checkpoint, inclusion and consistency proofs."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import ACCEPT_LANGUAGE, BEARER, _json, _problem

AUDIT_PATHS: dict[str, Any] = {
    "/v1/audit/events": {
        "get": {
            "operationId": "listAuditEvents",
            "tags": ["audit"],
            "summary": "Audit events (auditors only): canonical records, never notice contents",
            "description": (
                "Only events of the auditor's jurisdiction (Cedar audit_jurisdiction) and log-wide "
                "ones. hidden=leaves (without filters) puts every other event in its place as "
                "{seq, hidden: true, leaf}: its leaf hash, so the chain and the signed root recompute. "
                "Each shown event carries leaf_data, its exact leaf bytes (base64)."
            ),
            "security": BEARER,
            "parameters": [
                *(
                    {"name": n, "in": "query", "schema": {"type": "string", "format": "date-time"}}
                    for n in ("from", "to")
                ),
                *(
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("actor", "action", "notice", "channel")
                ),
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "next_cursor of the page before: the seq to continue after",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,64}$"},
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "hidden", "in": "query", "schema": {"type": "string", "enum": ["leaves"]}},
                {
                    "name": "exercise",
                    "in": "query",
                    "description": "events about exercise (or test) notices only; none: every "
                    "event not about a notice so marked",
                    "schema": {"type": "string", "enum": ["exercise", "test", "none"]},
                },
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
            "operationId": "getAuditCheckpoint",
            "tags": ["audit"],
            "summary": "The latest signed checkpoint (C2SP tlog-checkpoint); fresh=1 signs one now",
            "security": BEARER,
            "parameters": [
                {
                    "name": "fresh",
                    "in": "query",
                    "description": "1, true or yes: sign a checkpoint of the log as it is now",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": _json("A signed checkpoint", "AuditCheckpoint"),
                "401": _problem("Not authenticated"),
                "403": _problem("Not an auditor"),
            },
        }
    },
    "/v1/audit/checkpoints": {
        "get": {
            "operationId": "listAuditCheckpoints",
            "tags": ["audit"],
            "summary": "Every signed checkpoint, by tree size (paged: cursor is the last size seen)",
            "security": BEARER,
            "parameters": [
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "next_cursor of the page before: the tree size to continue after",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,64}$"},
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            ],
            "responses": {
                "200": _json("A page of signed checkpoints", "AuditCheckpoints"),
                "401": _problem("Not authenticated"),
                "403": _problem("Not an auditor"),
                "422": _problem("A cursor or limit that is not valid"),
            },
        }
    },
    "/v1/audit/proof/inclusion": {
        "get": {
            "operationId": "getInclusionProof",
            "tags": ["audit"],
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
            "operationId": "getConsistencyProof",
            "tags": ["audit"],
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

_STRINGS = {"type": "array", "items": {"type": "string"}}
_CONTINUITY_ROLE: dict[str, Any] = {
    "type": "object",
    "required": ["role", "title", "kind", "channels", "holders", "deputies", "acting", "flags"],
    "properties": {
        "role": {"type": "string"},
        "title": {"type": "string"},
        "kind": {"type": "string"},
        "channels": _STRINGS,
        "holders": _STRINGS,
        "deputies": _STRINGS,
        "acting": _STRINGS,
        "acting_names": _STRINGS,
        "holder_names": _STRINGS,
        "deputy_names": _STRINGS,
        "problems": {**_STRINGS, "description": "in English, as the CLI prints them"},
        "flags": {
            "type": "array",
            "items": {"type": "string", "enum": ["vacant", "deputy_only", "keyless"]},
        },
        "ending": _STRINGS,
        "ending_items": {
            "type": "array",
            "description": "assignments (what=assignment, as) and keys (what=key, key) ending "
            "within 30 days",
            "items": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "overdue": _STRINGS,
        "overdue_items": {
            "type": "array",
            "description": "notices delivered through the role, past the channel's "
            "acknowledgement deadline, acknowledged through it by nobody (real notices only)",
            "items": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "exercise_overdue": _STRINGS,
        "exercise_overdue_items": {
            "type": "array",
            "description": "the same for exercise and test notices, apart: each item also has "
            "its `exercise` marking; they never escalate",
            "items": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}
CONTINUITY_PATHS: dict[str, Any] = {
    "/v1/directory/continuity": {
        "get": {
            "operationId": "getContinuityReport",
            "tags": ["audit"],
            "summary": "The continuity report (auditors: their jurisdiction only)",
            "description": (
                "What `liaison directory report --json` prints: per jurisdiction, every role some "
                "channel routes to, its holder, deputies, and what needs attention. Read by "
                "contacts Cedar lets read_audit, filtered to their audit_jurisdiction scope (a "
                "jurisdiction outside it is a 404, as if absent); operators run the command on "
                "the host. Each read is an audit event (continuity.read)."
            ),
            "security": BEARER,
            "parameters": [
                {
                    "name": "jurisdiction",
                    "in": "query",
                    "description": "only this jurisdiction and those below it",
                    "schema": {"type": "string"},
                },
                ACCEPT_LANGUAGE,
            ],
            "responses": {
                "200": {
                    "description": "The report",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["jurisdictions", "channels"],
                                "properties": {
                                    "generated_at": {"type": "string", "format": "date-time"},
                                    "directory_revision": {"type": "integer"},
                                    "channels": {
                                        "type": "object",
                                        "description": "channel id -> title",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "jurisdiction_names": {
                                        "type": "object",
                                        "description": "every jurisdiction the auditor sees: "
                                        "id -> name",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "jurisdictions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "jurisdiction": {"type": "string"},
                                                "name": {"type": "string"},
                                                "level": {"type": "string"},
                                                "roles": {
                                                    "type": "array",
                                                    "items": _CONTINUITY_ROLE,
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "401": _problem("Not authenticated"),
                "403": _problem("Not an auditor"),
                "404": _problem("No such jurisdiction (or one outside the auditor's)"),
            },
        }
    },
}
AUDIT_PATHS.update(CONTINUITY_PATHS)
