"""JSON Schema of a directory file (YAML on disk). ``policies/README.md`` documents every key."""

from __future__ import annotations

from typing import Any

from broker.titles import text_schema

ID = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._-]{0,127}$"}
TIME = {"type": "string", "format": "date-time", "minLength": 10, "maxLength": 40}
TEXT = {"type": "string", "minLength": 1, "maxLength": 300}
KIND = {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,63}$"}
NAME = text_schema(300)  # plain text, or {language tag: text} (broker.titles)
LEVELS = ["country", "entity", "region", "canton", "district", "county", "municipality"]

PERIOD: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["from"],
    "properties": {"from": TIME, "until": {"anyOf": [TIME, {"type": "null"}]}},
}

KEY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,  # a private key has nowhere to go in this file
    "required": ["id", "type", "public"],
    "properties": {
        "id": ID,
        # tls-client-sha256: an organisation's mTLS client certificate, "public" its SHA-256.
        "type": {"enum": ["ed25519", "x25519", "tls-client-sha256"]},
        "public": {"type": "string", "pattern": r"^[A-Za-z0-9+/]{43}=$"},
        "status": {"enum": ["active", "retired", "revoked"]},
        "from": TIME,
        "until": {"anyOf": [TIME, {"type": "null"}]},
    },
}

WEBHOOK: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "url"],
    "properties": {
        "id": ID,
        "url": {"type": "string", "pattern": r"^https?://[^\s]+$", "maxLength": 2000},
        # HMAC secret (Standard Webhooks "whsec_..."), by reference only; without one the broker
        # signs with its Ed25519 key (v1a) and receivers verify with its public key.
        "secret": {"type": "string", "pattern": r"^(env|file):.+$"},
        "content": {"enum": ["metadata", "ciphertext"]},
    },
}

DIRECTORY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "jurisdictions"],
    "properties": {
        "version": {"const": 1},
        "jurisdictions": {
            "type": "array",
            "maxItems": 20_000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "name", "level"],
                "properties": {"id": ID, "name": NAME, "level": {"enum": LEVELS}, "parent": ID},
            },
        },
        "organisations": {
            "type": "array",
            "maxItems": 50_000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "name", "kind", "jurisdiction"],
                "properties": {
                    "id": ID,
                    "name": NAME,
                    "kind": KIND,
                    "jurisdiction": ID,
                    "keys": {"type": "array", "maxItems": 16, "items": KEY},
                    "webhooks": {"type": "array", "maxItems": 8, "items": WEBHOOK},
                },
            },
        },
        "roles": {
            "type": "array",
            "maxItems": 100_000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "organisation", "kind"],
                "properties": {"id": ID, "organisation": ID, "kind": KIND, "title": NAME},
            },
        },
        "contacts": {
            "type": "array",
            "maxItems": 100_000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "name", "organisation"],
                "properties": {
                    "id": ID,
                    "name": TEXT,
                    "organisation": ID,
                    "email": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$", "maxLength": 254},
                    "language": {"type": "string", "pattern": r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"},
                    "keys": {"type": "array", "maxItems": 16, "items": KEY},
                    "webhooks": {"type": "array", "maxItems": 8, "items": WEBHOOK},
                },
            },
        },
        "assignments": {
            "type": "array",
            "maxItems": 200_000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["role", "contact", "from"],
                "properties": {
                    "role": ID,
                    "contact": ID,
                    "as": {"enum": ["holder", "deputy"]},
                    "from": TIME,
                    "until": {"anyOf": [TIME, {"type": "null"}]},
                    "absences": {"type": "array", "maxItems": 64, "items": PERIOD},
                },
            },
        },
    },
}
