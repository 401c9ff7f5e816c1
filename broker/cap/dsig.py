"""XML-DSig on CAP alerts: verify an enveloped signature, and say exactly what was verified.

Invariants:
- the signature is checked against the X.509 certificate it carries (its KeyInfo), with
  signxml's secure defaults: SHA-1 and other weak algorithms are refused, not reported valid;
- "valid" means the document is unchanged since the holder of that certificate's key signed it.
  Whether that holder is the producer it claims to be is not decided here (Liaison keeps no
  store of CAP producers' certificates): the result names the certificate's subject and its
  SHA-256 fingerprint for the recipient to compare with the producer's published certificate;
- the result is recomputed by the recipient from the carried original after decryption; the
  result the sending agency's client recorded at import is shown beside it, never instead of it.
"""

from __future__ import annotations

import base64
from typing import Any

from lxml import etree
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.verifier import XMLVerifier

from broker.cap.document import DSIG_NS, CapError, parse
from broker.crypto.certificates import read_certificate

ABSENT = {"status": "absent"}


def verify_signature(data: bytes, root: Any = None) -> dict[str, Any]:
    """``{"status": "absent" | "valid" | "invalid", …}`` for the alert's first enveloped signature.

    ``root`` is ``data`` already read by ``document.parse``, when the caller has it."""
    if root is None:
        try:
            root = parse(data)  # the carried original came from the sender: checked like an import
        except CapError as e:
            return {"status": "invalid", "reason": str(e)[:300]}
    signatures = root.findall(f"{{{DSIG_NS}}}Signature")
    if not signatures:
        return dict(ABSENT)
    result: dict[str, Any] = {"signatures": len(signatures)}
    certificate = signatures[0].find(f".//{{{DSIG_NS}}}X509Certificate")
    if certificate is None or not (certificate.text or "").strip():
        return {**result, "status": "invalid", "reason": "no X509Certificate in KeyInfo"}
    try:
        cert = read_certificate(base64.b64decode("".join(certificate.text.split())))
    except ValueError as e:
        return {**result, "status": "invalid", "reason": f"unreadable certificate: {e}"}
    result["signer"], result["certificate_sha256"] = cert.subject, cert.sha256
    try:
        XMLVerifier().verify(
            data,
            x509_cert=cert.pem,
            ignore_ambiguous_key_info=True,
        )
    except (InvalidSignature, InvalidInput, etree.DocumentInvalid) as e:
        return {**result, "status": "invalid", "reason": str(e)[:300]}
    return {**result, "status": "valid"}
