"""TLS for the listener, and the mutual-TLS requirement for agency endpoints.

With ``server.client_ca`` set, the TLS layer asks every client for a certificate (CERT_OPTIONAL,
so recipients' browsers still connect) and the agency endpoints refuse a request whose
connection did not present a certificate that verified against that CA. The refusal is the
same 401 as any other authentication failure. The certificate's SHA-256 is then handed to
agency authentication, which requires the signing key's organisation to list it
(``service/auth.py``): a certificate of the CA does not work for another agency's key.
"""

from __future__ import annotations

import hashlib
import ssl

from aiohttp import web

from broker.config import Settings
from broker.errors import AuthenticationFailed, ConfigError


def server_context(settings: Settings) -> ssl.SSLContext | None:
    server = settings.server
    if not server.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.path(server.tls_cert), settings.path(server.tls_key))
        if server.client_ca:
            context.load_verify_locations(cafile=settings.path(server.client_ca))
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"TLS set-up failed: {e}") from e
    return context


def require_client_certificate(request: web.Request, settings: Settings) -> bytes | None:
    """Agency endpoints: with a client CA configured, a verified client certificate is required;
    its SHA-256 (over the DER) is returned. Without a client CA: None."""
    if not settings.server.client_ca:
        return None
    transport = request.transport
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    der = tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
    if not der:  # with CERT_OPTIONAL, a certificate is only returned once it has verified
        raise AuthenticationFailed(detail="no verified client certificate")
    return hashlib.sha256(der).digest()


def peer_client_context(settings: Settings) -> ssl.SSLContext:
    """Outgoing federation requests: a peer's https certificate must chain to
    ``federation.server_ca`` (the system's trust store without it) and name the host; with
    ``federation.tls_cert`` this broker presents its own client certificate (mutual TLS)."""
    federation = settings.federation
    try:
        cafile = settings.path(federation.server_ca) if federation.server_ca else None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if federation.tls_cert:
            context.load_cert_chain(
                settings.path(federation.tls_cert), settings.path(federation.tls_key)
            )
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"[federation] TLS set-up failed: {e}") from e
    return context
