"""OpenAPI path of enrolment: a one-time code and the public keys a device made."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import _problem

PUBLIC_KEY = {
    "type": "string",
    "description": "A raw 32-byte public key, base64",
    "pattern": "^[A-Za-z0-9+/]{43}=$",
}

ENROL_PATHS: dict[str, Any] = {
    "/v1/enrol": {
        "post": {
            "operationId": "enrol",
            "tags": ["recipients"],
            "summary": "Send a one-time enrolment code with the public keys the device made",
            "description": (
                "The code (from `liaison directory invite`) is the credential: it is consumed, and "
                "the keys wait as pending until an administrator approves their fingerprint "
                "(`liaison directory approve`). Unknown, used and expired codes get the same 401; "
                "refused codes are rate-limited per source and broker-wide (429)."
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["code", "signing_key", "encryption_key"],
                            "properties": {
                                "code": {"type": "string", "minLength": 1, "maxLength": 64},
                                "signing_key": {**PUBLIC_KEY, "description": "Ed25519, base64"},
                                "encryption_key": {**PUBLIC_KEY, "description": "X25519, base64"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": {
                    "description": "The keys are pending; read the fingerprint to the administrator",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["contact", "name", "fingerprint", "state"],
                                "properties": {
                                    "contact": {"type": "string"},
                                    "name": {"type": "string"},
                                    "language": {"type": ["string", "null"]},
                                    "fingerprint": {
                                        "type": "string",
                                        "pattern": "^[0-9A-F]{4}(-[0-9A-F]{4}){3}$",
                                    },
                                    "state": {"const": "pending"},
                                },
                            }
                        }
                    },
                },
                "401": _problem("The code was not accepted (the same answer for every reason)"),
                "413": _problem("Body too large"),
                "415": _problem("Not application/json"),
                "422": _problem("Not a code and two 32-byte public keys"),
                "429": _problem("Too many refused codes lately; try again later"),
            },
        }
    },
}
