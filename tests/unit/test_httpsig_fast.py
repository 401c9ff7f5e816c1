"""The strict fast path for signature headers against the full structured-field parser (http_sf)
it stands in front of: on any header it either declines, or returns exactly what http_sf
returns — same values, same types — and serializes byte for byte as http_sf does. So a request
is accepted or refused, and its signature base built, exactly as before."""

from __future__ import annotations

from typing import Any
from unittest import mock

import http_sf
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto import httpsig
from broker.crypto.httpsig import (
    HttpRequestView,
    SignatureInvalid,
    content_digest,
    parse_signatures,
    sign_request,
    verify_request,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()
NOW = 1_700_000_000
URL = "https://broker.example/v1/notices"


def _full(value: str) -> Any:
    def duplicate(name: str, context: str) -> None:
        raise ValueError(f"repeated {context} key {name}")

    return dict(http_sf.parse(value.encode(), tltype="dictionary", on_duplicate_key=duplicate))


def _typed(value: Any) -> Any:
    """``value`` with its types spelled out: 1 and True, or str and Token, never compare equal."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])  # order matters: it is signed
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_typed(v) for v in value])
    return (type(value).__qualname__, value)


def _agrees(text: str) -> None:
    fast = httpsig._fast_dictionary(text)
    if fast is None:
        return  # declined: the full parser decides, as before
    assert _typed(fast) == _typed(_full(text))
    for name, member in fast.items():
        assert httpsig._sf_serialize({name: member}) == http_sf.ser({name: member})


# -- generated structured-field dictionaries, serialized by http_sf ---------------------------

KEYS = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,6}", fullmatch=True)
BARE = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.sampled_from([0, -1, 10**15 - 1, 1_700_000_000]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
    st.binary(max_size=16),
    st.booleans(),
    st.from_regex(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]{0,6}", fullmatch=True).map(http_sf.Token),
    st.sampled_from(["@method", "@target-uri", "content-digest", "ed25519", "agency-1"]),
)
PARAMS = st.dictionaries(KEYS, BARE, max_size=4)
ITEM = st.tuples(BARE, PARAMS | st.just({}))
INNER = st.tuples(st.lists(ITEM, max_size=5), PARAMS)
MEMBER = st.one_of(ITEM, INNER)
DICTIONARY = st.dictionaries(KEYS, MEMBER, min_size=1, max_size=3)


@settings(max_examples=500)
@given(DICTIONARY)
def test_generated_dictionaries(dictionary: dict[str, Any]) -> None:
    _agrees(http_sf.ser(dictionary))


@settings(max_examples=300)
@given(st.tuples(st.lists(st.tuples(BARE, st.just({})), max_size=5), PARAMS))
def test_members_serialize_as_http_sf_does(member: Any) -> None:
    fast = httpsig._fast_member(member)
    if fast is not None:
        assert f"x={fast}" == http_sf.ser({"x": member})


# -- byte-level mutations of real headers -----------------------------------------------------

COMPONENTS = st.lists(
    st.sampled_from(["@method", "@target-uri", "@authority", "@path", "content-digest"]),
    min_size=1,
    max_size=5,
    unique=True,
)
NOISE = st.sampled_from(
    [*'"\\();=,: \t*-_.09aAz/+', "\x7f", "é", "\x00", "==", "000000"]  # 000000: too many digits
)


def _real_headers(components: list[str], expires: int | None) -> dict[str, str]:
    headers = {"content-digest": content_digest(b"{}")}
    signed = sign_request(
        method="POST",
        url=URL,
        headers=headers,
        key=KEY,
        keyid="agency-1",
        created=NOW,
        components=components,
        expires=expires,
    )
    return {**headers, **{k.lower(): v for k, v in signed.items()}}


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        noise = draw(NOISE)
        if action == "insert":
            text = text[:at] + noise + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + noise + text[at + 1 :]
    return text


@settings(max_examples=500)
@given(COMPONENTS, st.none() | st.just(NOW + 60), st.data())
def test_mutated_real_headers(
    components: list[str], expires: int | None, data: st.DataObject
) -> None:
    headers = _real_headers(components, expires)
    for name in ("signature-input", "signature", "content-digest"):
        _agrees(data.draw(mutated(headers[name])))


def _outcome(headers: dict[str, str]) -> Any:
    request = HttpRequestView("POST", URL, headers)
    try:
        verified = verify_request(
            request,
            lookup_key=lambda keyid: PUBLIC if keyid == "agency-1" else None,
            now=NOW,
            max_skew=300,
            required=[("@method", "@target-uri")],
        )
    except (SignatureInvalid, ValueError) as e:
        return ("refused", type(e).__name__)
    return ("verified", verified)


@settings(max_examples=300)
@given(COMPONENTS, st.data())
def test_verification_is_unchanged(components: list[str], data: st.DataObject) -> None:
    """With or without the fast path: the same verdict, the same signed values and base."""
    headers = _real_headers(["@method", "@target-uri", *components], None)
    name = data.draw(st.sampled_from(["signature-input", "signature", "content-digest"]))
    headers[name] = data.draw(mutated(headers[name]))
    fast = _outcome(headers)
    with (
        mock.patch.object(httpsig, "_fast_dictionary", return_value=None),
        mock.patch.object(httpsig, "_fast_member", return_value=None),
    ):
        full = _outcome(headers)
    assert fast == full


def test_the_shapes_clients_send_take_the_fast_path() -> None:
    """Otherwise the tests above would compare http_sf with itself."""
    headers = _real_headers(["@method", "@target-uri", "content-digest"], NOW + 60)
    for name in ("signature-input", "signature", "content-digest"):
        assert httpsig._fast_dictionary(headers[name]) is not None
    [parsed] = parse_signatures(headers)
    assert parsed.signature_params == headers["signature-input"].removeprefix("sig1=")


@pytest.mark.parametrize(
    "value",
    [
        'sig1=("@method");created=1;created=2',  # a repeated parameter: refused by http_sf
        'sig1=("@method");created=01',  # not canonical
        'sig1=("@method");created=-0',
        'sig1=("@method" "@path");keyid="a\\"b"',  # an escape
        'sig1=("@method");created=1000000000000000',  # 16 digits: out of range
        "sig1=:AB==:",  # non-zero padding bits
        "sig1=:AAA:",  # unpadded
        ' sig1=("@method")',
        'sig1=("@method")  ',
        'sig1=("@method"  "@path")',
        'sig1=("@method";x=1)',
        'sig1=("@method");flag',
        'Sig1=("@method")',
        "sig1=:AA==:;x=1",
        'sig1=("@method"), sig2=("@path")',
    ],
)
def test_the_fast_path_declines_what_is_not_canonical(value: str) -> None:
    assert httpsig._fast_dictionary(value) is None
