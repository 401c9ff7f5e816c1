"""A schemathesis hooks module (``SCHEMATHESIS_HOOKS``): every request is signed as an agency
system signs it, RFC 9421 with Ed25519, a fresh nonce and ``created`` now, over the exact bytes
that are sent (a ``requests`` auth sees the prepared request). So the generated notices reach the
notice checks past authentication, and the status endpoint answers for real.

The agency's key is read from ``LIAISON_SCHEMATHESIS_KEY`` (a PEM file) and its id from
``LIAISON_SCHEMATHESIS_KEYID``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests
import schemathesis

from broker.crypto.httpsig import content_digest, sign_request
from broker.crypto.keys import read_private_key
from broker.service.auth import WITH_BODY, WITHOUT_BODY


class AgencySignature(requests.auth.AuthBase):
    def __init__(self, key_file: Path, keyid: str) -> None:
        self.key = read_private_key(key_file, expected="ed25519").private
        self.keyid = keyid

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        covered: dict[str, str] = {}
        if body:
            request.headers["Content-Digest"] = content_digest(body)
            covered = {
                "content-type": request.headers.get("Content-Type", ""),
                "content-digest": request.headers["Content-Digest"],
            }
        request.headers.update(
            sign_request(
                method=str(request.method),
                url=str(request.url),
                headers=covered,
                key=self.key,  # type: ignore[arg-type]
                keyid=self.keyid,
                created=int(time.time()),
                components=WITH_BODY[0] if body else WITHOUT_BODY[0],
            )
        )
        return request


if "LIAISON_SCHEMATHESIS_KEY" in os.environ:
    schemathesis.auth.set_from_requests(  # type: ignore[attr-defined]
        AgencySignature(
            Path(os.environ["LIAISON_SCHEMATHESIS_KEY"]), os.environ["LIAISON_SCHEMATHESIS_KEYID"]
        )
    )
