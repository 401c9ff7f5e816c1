"""X.509 certificates carried by others' documents (an XML signature's KeyInfo): read, not trusted.

Nothing here decides trust: it names a certificate (subject, SHA-256 fingerprint of its DER) and
gives it as PEM for a verifier that pins it; ``read_pem_certificate`` names this broker's own
(its federation client certificate, for the card a peer pins).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


@dataclass(frozen=True, slots=True)
class Certificate:
    subject: str  # RFC 4514
    sha256: str  # hex, of the DER encoding
    pem: str


def read_certificate(der: bytes) -> Certificate:
    """Raise ValueError when ``der`` is not an X.509 certificate."""
    cert = x509.load_der_x509_certificate(der)
    encoded = cert.public_bytes(Encoding.DER)
    return Certificate(
        cert.subject.rfc4514_string(),
        hashlib.sha256(encoded).hexdigest(),
        cert.public_bytes(Encoding.PEM).decode(),
    )


def read_pem_certificate(pem: bytes) -> Certificate:
    """The first certificate of a PEM chain; ValueError when there is none."""
    return read_certificate(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))
