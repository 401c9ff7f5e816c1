"""OpenAPI paths of the witness this broker runs for its peers' logs (c2sp.org/tlog-witness)."""

from __future__ import annotations

from typing import Any

from broker.http.api_doc.common import _problem

TEXT = {"type": "string"}
WITNESS_KEY: dict[str, Any] = {
    "type": "object",
    "required": ["name", "vkey", "public_key"],
    "properties": {
        "name": {"type": "string", "description": "The witness name: the log origin + /witness"},
        "vkey": {
            "type": "string",
            "description": "cosignature/v1 verifier key: name+hexid+base64(0x04||key)",
        },
        "public_key": {"type": "string", "description": "Ed25519 (the broker key), base64"},
    },
}

WITNESS_PATHS: dict[str, Any] = {
    "/v1/witness/add-checkpoint": {
        "post": {
            "operationId": "addCheckpoint",
            "tags": ["federation"],
            "summary": "Cosign a peer's checkpoint that extends what this witness cosigned",
            "description": (
                "c2sp.org/tlog-witness `add-checkpoint`: the body is `old <size>`, at most 63 "
                "base64 consistency-proof lines, an empty line, then the checkpoint (a signed "
                "note). Only logs declared in a peer file (`log_origin`, `log_key`) are "
                "witnessed; the checkpoint's signature is the only authentication."
            ),
            "requestBody": {
                "required": True,
                "content": {"text/plain": {"schema": TEXT}},
            },
            "responses": {
                "200": {
                    "description": "The cosignature line(s) (`cosignature/v1`)",
                    "content": {"text/plain": {"schema": TEXT}},
                },
                "400": _problem("Not an add-checkpoint body, or the old size is too large"),
                "403": _problem("No signature verifies with the log key pinned for the origin"),
                "404": _problem("No log of that origin is witnessed here"),
                "409": {
                    "description": (
                        "The old size is not the size cosigned last (body: that size), or the "
                        "same size with another root (a fork: problem+json)"
                    ),
                    "content": {
                        "text/x.tlog.size": {"schema": {"type": "string", "pattern": "^[0-9]+\n$"}},
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        },
                    },
                },
                "422": _problem(
                    "The consistency proof does not verify: the log rewrote its history"
                ),
            },
        }
    },
    "/v1/keys/witness": {
        "get": {
            "operationId": "getWitnessKey",
            "tags": ["keys"],
            "summary": "The name and verifier key this broker cosigns its peers' checkpoints with",
            "responses": {
                "200": {
                    "description": "The witness key",
                    "content": {"application/json": {"schema": WITNESS_KEY}},
                }
            },
        }
    },
}
