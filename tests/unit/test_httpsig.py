"""RFC 9421 and RFC 9530: the published test vectors, and every way a signature can fail."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto.httpsig import (
    HttpRequestView,
    SignatureInvalid,
    content_digest,
    digest_matches,
    sign_request,
    verify_base,
    verify_request,
)


def b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# RFC 9421 Appendix B.1.4 test-key-ed25519 (JWK coordinates) and Appendix B.2.6.
RFC_PUBLIC = b64url("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")
RFC_PRIVATE = b64url("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
B26_INPUT = 'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"'
B26_SIGNATURE = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
B2_HEADERS = {
    "host": "example.com",
    "date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "content-type": "application/json",
    "content-digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    "content-length": "18",
}
B2_BODY = b'{"hello": "world"}'


def test_rfc9421_b26_ed25519_example_verifies() -> None:
    """The published example verifies through the real verifier (nonce checks aside)."""
    from broker.crypto.httpsig import component_value, parse_signatures, signature_base

    request = HttpRequestView(
        "POST",
        "https://example.com/foo?param=Value&Pet=dog",
        {**B2_HEADERS, "signature-input": B26_INPUT, "signature": B26_SIGNATURE},
    )
    [sig] = parse_signatures(request.headers)
    values = [(c, component_value(c, request)) for c in sig.components]
    assert signature_base(values, sig.signature_params) == (
        b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n"@method": POST\n"@path": /foo\n"@authority": example.com\n'
        b'"content-type": application/json\n"content-length": 18\n'
        b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
        b';created=1618884473;keyid="test-key-ed25519"'
    )
    assert verify_base(RFC_PUBLIC, values, sig.signature_params, sig.signature)
    assert not verify_base(
        RFC_PUBLIC, [*values[:-1], ("content-length", "19")], sig.signature_params, sig.signature
    )


def test_our_signer_reproduces_the_rfc_signature() -> None:
    """Ed25519 is deterministic: signing the B.2.6 base with the RFC key gives the RFC bytes."""
    key = Ed25519PrivateKey.from_private_bytes(RFC_PRIVATE)
    from broker.crypto.httpsig import signature_base

    base = signature_base(
        [
            ("date", B2_HEADERS["date"]),
            ("@method", "POST"),
            ("@path", "/foo"),
            ("@authority", "example.com"),
            ("content-type", "application/json"),
            ("content-length", "18"),
        ],
        '("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
    )
    assert "sig-b26=:" + base64.b64encode(key.sign(base)).decode() + ":" == B26_SIGNATURE


def test_rfc9530_content_digests() -> None:
    assert content_digest(B2_BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    assert digest_matches(B2_HEADERS["content-digest"], B2_BODY)
    assert digest_matches(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, md5=:AAAA:", B2_BODY
    )
    assert not digest_matches(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", B2_BODY + b" "
    )
    assert not digest_matches("md5=:AAAA:", B2_BODY)
    assert not digest_matches("not a digest", B2_BODY)


KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()
NOW = 1_790_000_000
URL = "https://liaison.example/v1/notices"
REQUIRED = [("@method", "@target-uri", "content-type", "content-digest")]
COMPONENTS = ("@method", "@target-uri", "content-type", "content-digest")


def signed(
    body: bytes = b"{}",
    *,
    created: int = NOW,
    components: tuple[str, ...] = COMPONENTS,
    keyid: str = "agency-key",
    url: str = URL,
    **kwargs: object,
) -> HttpRequestView:
    headers = {"content-type": "application/json", "content-digest": content_digest(body)}
    headers.update(
        sign_request(
            method="POST",
            url=url,
            headers=headers,
            key=KEY,
            keyid=keyid,
            created=created,
            components=components,
            **kwargs,
        )
    )  # type: ignore[arg-type]
    return HttpRequestView("POST", url, {k.lower(): v for k, v in headers.items()})


def verify(request: HttpRequestView, **overrides: object) -> object:
    options: dict[str, object] = {
        "lookup_key": {"agency-key": PUBLIC}.get,
        "now": NOW,
        "max_skew": 300,
        "required": REQUIRED,
    }
    options.update(overrides)
    return verify_request(request, **options)  # type: ignore[arg-type]


def test_a_well_signed_request_verifies() -> None:
    result = verify(signed())
    assert result.keyid == "agency-key" and result.components == COMPONENTS  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: signed(created=NOW - 301), "clock skew"),
        (lambda: signed(created=NOW + 301), "clock skew"),
        (lambda: signed(expires=NOW - 1), "expired"),
        (lambda: signed(keyid="someone-else"), "unknown or unusable key"),
        (
            lambda: signed(components=("@method", "@target-uri", "content-type")),
            "required components",
        ),
        (lambda: signed(nonce="short"), "nonce"),
    ],
)
def test_refusals(make: object, reason: str) -> None:
    with pytest.raises(SignatureInvalid, match=reason):
        verify(make())  # type: ignore[operator]


def test_a_changed_covered_value_breaks_the_signature() -> None:
    request = signed()
    for name, value in (("content-type", "text/plain"), ("content-digest", content_digest(b"[]"))):
        tampered = HttpRequestView(
            request.method, request.target_uri, {**request.headers, name: value}
        )
        with pytest.raises(SignatureInvalid, match="does not verify"):
            verify(tampered)
    moved = HttpRequestView("POST", "https://liaison.example/v1/other", request.headers)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify(moved)


def test_other_algorithms_and_malformed_fields_are_refused() -> None:
    request = signed()
    hmac_input = request.headers["signature-input"].replace('alg="ed25519"', 'alg="hmac-sha256"')
    with pytest.raises(SignatureInvalid, match="algorithm"):
        verify(HttpRequestView("POST", URL, {**request.headers, "signature-input": hmac_input}))
    with pytest.raises(SignatureInvalid, match="malformed"):
        verify(HttpRequestView("POST", URL, {**request.headers, "signature-input": "sig1=(((("}))
    with pytest.raises(SignatureInvalid, match="no Signature-Input"):
        verify(HttpRequestView("POST", URL, {"content-type": "application/json"}))
    parameterised = request.headers["signature-input"].replace(
        '"content-type"', '"content-type";sf'
    )
    with pytest.raises(SignatureInvalid, match="unsupported component"):
        verify(HttpRequestView("POST", URL, {**request.headers, "signature-input": parameterised}))


def test_the_query_must_be_covered() -> None:
    request = signed(
        url=URL + "?x=1",
        components=("@method", "@authority", "@path", "content-type", "content-digest"),
    )
    with pytest.raises(SignatureInvalid, match="query"):
        verify(
            request, required=[("@method", "@authority", "@path", "content-type", "content-digest")]
        )


def test_exactly_one_label_is_accepted_even_when_every_label_verifies() -> None:
    one, two = signed(nonce="first-label-nonce"), signed(nonce="second-label-nonce", label="sig2")
    both = {
        **one.headers,
        "signature-input": f"{one.headers['signature-input']}, {two.headers['signature-input']}",
        "signature": f"{one.headers['signature']}, {two.headers['signature']}",
    }
    verify(two)  # each label alone verifies
    with pytest.raises(SignatureInvalid, match="exactly one signature label"):
        verify(HttpRequestView("POST", URL, both))
    extra_value = {**one.headers, "signature": both["signature"]}
    with pytest.raises(SignatureInvalid, match="exactly one signature label"):
        verify(HttpRequestView("POST", URL, extra_value))
    mismatched = {**one.headers, "signature": two.headers["signature"]}
    with pytest.raises(SignatureInvalid, match="no Signature matches"):
        verify(HttpRequestView("POST", URL, mismatched))


def test_a_repeated_label_or_parameter_is_refused_not_resolved_last_wins() -> None:
    one, other = signed(nonce="first-label-nonce"), signed(nonce="second-label-nonce")
    repeated = {
        **one.headers,
        "signature-input": f"{other.headers['signature-input']}, {one.headers['signature-input']}",
        "signature": f"{other.headers['signature']}, {one.headers['signature']}",
    }
    with pytest.raises(SignatureInvalid, match="repeated"):
        verify(HttpRequestView("POST", URL, repeated))
    doubled_nonce = one.headers["signature-input"] + ';nonce="another-nonce-1"'
    with pytest.raises(SignatureInvalid, match="repeated"):
        verify(HttpRequestView("POST", URL, {**one.headers, "signature-input": doubled_nonce}))
