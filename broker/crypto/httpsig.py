"""HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest (RFC 9530).

One implementation serves both sides: the broker verifies agency requests with it, and the
sender SDK signs with it. Verification is strict and fails closed:
- only Ed25519 (``alg``, when present, must be ``ed25519``); only derived components and plain
  header fields, no component parameters;
- ``created`` and ``nonce`` are required; ``expires`` is honoured; ``created`` must lie within
  the allowed clock skew;
- exactly one signature per request: ``Signature-Input`` and ``Signature`` each carry exactly one
  member, with the same label, and no field repeats a key. One request, one label, one nonce:
  the replay record (one nonce per request) then covers everything that could authenticate
  it, so no label can be cut out of a request and sent again as a fresh one;
- the caller's policy names the components that must be covered;
- every failure raises ``SignatureInvalid`` with an internal reason, never shown to the client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
MAX_COMPONENTS = 32


class SignatureInvalid(Exception):
    """The request is not validly signed; ``reason`` is for the audit log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class HttpRequestView:
    """What a verifier sees of a request. ``target_uri`` is absolute: scheme://authority/path?query."""

    method: str
    target_uri: str
    headers: Mapping[str, str]  # lower-cased field names; repeated fields joined with ", "


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    label: str
    keyid: str
    created: int
    nonce: str
    expires: int | None
    components: tuple[str, ...]
    values: dict[str, str]  # each covered component's value, to rebuild the base later
    signature_params: str  # the serialized inner list, as in the base
    signature: bytes

    @property
    def signature_input_header(self) -> str:
        return f"{self.label}={self.signature_params}"

    @property
    def signature_header(self) -> str:
        return f"{self.label}=:{base64.b64encode(self.signature).decode()}:"


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    label: str
    components: tuple[str, ...]
    params: dict[str, Any]
    signature_params: str
    signature: bytes


# -- parsing ----------------------------------------------------------------------------------


def _sf_dictionary(value: str) -> dict[str, Any]:
    """An RFC 8941 dictionary: name -> (value or inner list, parameters).

    A repeated key (in the dictionary or in a member's parameters) is refused rather than
    resolved "last one wins": otherwise ``sig1=..., sig1=...`` would carry two signatures under
    one label, and only the one that was checked would have its nonce recorded.
    The exact shapes our clients send are read by ``_fast_dictionary``; anything else goes to
    the full parser, which gives the same answer for those shapes (tests/unit/test_httpsig_fast.py).
    """
    fast = _fast_dictionary(value)
    if fast is not None:
        return fast

    def duplicate(name: str, context: str) -> None:
        raise ValueError(f"repeated {context} key {name}")

    parsed: Any = http_sf.parse(value.encode(), tltype="dictionary", on_duplicate_key=duplicate)
    return dict(parsed)


def _sf_serialize(dictionary: dict[str, Any]) -> str:
    if len(dictionary) == 1:
        [(key, member)] = dictionary.items()
        fast = _fast_member(member)
        if fast is not None and _KEY.fullmatch(key):
            return f"{key}={fast}"
    serialized: Any = http_sf.ser(dictionary)
    return str(serialized)


# -- the fast path: one dictionary member, in canonical form ----------------------------------
# A key; a string without escapes; an integer without leading zeros, as RFC 8941 serializes them.
_KEY_TEXT = r"[a-z*][a-z0-9_.*-]*"
_STRING_TEXT = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_INTEGER_TEXT = r"0|-?[1-9][0-9]{0,14}"
_KEY = re.compile(_KEY_TEXT)
_STRING = re.compile(_STRING_TEXT)
_PARAM = re.compile(rf";({_KEY_TEXT})=({_STRING_TEXT}|{_INTEGER_TEXT})")
# label=("c1" "c2");p1=v1;p2=v2 (a Signature-Input) or name=:base64: (a Signature, a digest).
_INNER_LIST_MEMBER = re.compile(
    rf"({_KEY_TEXT})=\(((?:{_STRING_TEXT}(?: {_STRING_TEXT})*)?)\)"
    rf"((?:;{_KEY_TEXT}=(?:{_STRING_TEXT}|{_INTEGER_TEXT}))*)"
)
_BYTES_MEMBER = re.compile(rf"({_KEY_TEXT})=:([A-Za-z0-9+/]*={{0,2}}):")
_MAX_INTEGER = 10**15


def _fast_dictionary(value: str) -> dict[str, Any] | None:
    """``value`` parsed when it is one canonical member of the shapes above, else None."""
    member = _INNER_LIST_MEMBER.fullmatch(value)
    if member is not None:
        params = _fast_params(member.group(3))
        if params is None:
            return None
        items: list[tuple[str, dict[str, Any]]] = [
            (s.group()[1:-1], {}) for s in _STRING.finditer(member.group(2))
        ]
        return {member.group(1): (items, params)}
    member = _BYTES_MEMBER.fullmatch(value)
    if member is None:
        return None
    try:
        data = base64.b64decode(member.group(2), validate=True)
    except ValueError:
        return None
    if base64.b64encode(data).decode() != member.group(2):
        return None  # not in canonical form: the full parser decides
    return {member.group(1): (data, {})}


def _fast_params(text: str) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    for match in _PARAM.finditer(text):
        key, raw = match.groups()
        if key in params:
            return None  # repeated: the full parser refuses it
        params[key] = raw[1:-1] if raw.startswith('"') else int(raw)
    return params


def _fast_member(member: Any) -> str | None:
    """A member of inner-list shape serialized as RFC 8941 does, or None for any other shape."""
    if not (isinstance(member, tuple) and len(member) == 2 and isinstance(member[0], list)):
        return None
    items, params = member
    texts = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and item[1] == {}):
            return None
        text = _fast_bare(item[0])
        if text is None or not text.startswith('"'):
            return None
        texts.append(text)
    if not isinstance(params, dict):
        return None
    serialized = ["(" + " ".join(texts) + ")"]
    for key, value in params.items():
        text = _fast_bare(value)
        if text is None or not isinstance(key, str) or not _KEY.fullmatch(key):
            return None
        serialized.append(f";{key}={text}")
    return "".join(serialized)


def _fast_bare(value: Any) -> str | None:
    if isinstance(value, str) and _STRING.fullmatch(f'"{value}"'):
        return f'"{value}"'
    if type(value) is int and -_MAX_INTEGER < value < _MAX_INTEGER:
        return str(value)
    return None


def parse_signatures(headers: Mapping[str, str]) -> list[ParsedSignature]:
    """The one labelled signature of a request (a list, for callers that iterate).

    More than one label in either field is refused outright, even when every one verifies.
    """
    try:
        inputs = _sf_dictionary(headers.get("signature-input", ""))
        values = _sf_dictionary(headers.get("signature", ""))
    except (ValueError, UnicodeEncodeError) as e:
        raise SignatureInvalid(f"malformed signature fields: {e}") from e
    if not inputs:
        raise SignatureInvalid("no Signature-Input")
    if len(inputs) != 1 or len(values) != 1:
        raise SignatureInvalid("exactly one signature label is accepted")
    [(label, member)] = inputs.items()
    items, params = member
    signature = values.get(label)
    if not isinstance(items, list) or signature is None or not isinstance(signature[0], bytes):
        raise SignatureInvalid("no Signature matches the Signature-Input label")
    if len(items) > MAX_COMPONENTS:
        raise SignatureInvalid("too many covered components")
    components = []
    for name, component_params in items:
        if not isinstance(name, str) or component_params:
            raise SignatureInvalid("unsupported component identifier")
        components.append(name)
    if len(set(components)) != len(components):
        raise SignatureInvalid("a component is covered twice")
    serialized = _sf_serialize({"x": member})[2:]
    return [ParsedSignature(label, tuple(components), dict(params), serialized, signature[0])]


# -- the signature base -----------------------------------------------------------------------


def component_value(name: str, request: HttpRequestView) -> str:
    url = urlsplit(request.target_uri)
    if name == "@method":
        return request.method.upper()
    if name == "@target-uri":
        return request.target_uri
    if name == "@authority":
        return _authority(url.scheme, url.netloc)
    if name == "@scheme":
        return url.scheme.lower()
    if name == "@path":
        return url.path or "/"
    if name == "@query":
        return f"?{url.query}"
    if name.startswith("@"):
        raise SignatureInvalid(f"unsupported derived component {name}")
    if name != name.lower() or name not in request.headers:
        raise SignatureInvalid(f"covered header {name} is missing")
    return (
        " ".join(request.headers[name].split())
        if "\n" in request.headers[name]
        else request.headers[name].strip()
    )


def _authority(scheme: str, netloc: str) -> str:
    host = netloc.lower().rsplit("@", 1)[-1]
    default = {"http": ":80", "https": ":443"}.get(scheme.lower())
    return host.removesuffix(default) if default and host.endswith(default) else host


def signature_base(values: Sequence[tuple[str, str]], signature_params: str) -> bytes:
    lines = [f'"{name}": {value}' for name, value in values]
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode()


# -- verification -----------------------------------------------------------------------------


def verify_request(
    request: HttpRequestView,
    *,
    lookup_key: Any,  # Callable[[str], bytes | None]: keyid -> raw Ed25519 public key
    now: int,
    max_skew: int,
    required: Sequence[Sequence[str]],
) -> VerifiedSignature:
    """Verify the request's one signature, which must cover one of the ``required`` component sets.

    ``required`` lists alternatives, e.g. ``[("@method", "@target-uri"), ("@method", "@authority",
    "@path")]``. Raises ``SignatureInvalid`` on any failure.
    """
    [candidate] = parse_signatures(request.headers)
    try:
        return _verify_one(candidate, request, lookup_key, now, max_skew, required)
    except SignatureInvalid as e:
        raise SignatureInvalid(f"{candidate.label}: {e.reason}") from e


def _verify_one(
    sig: ParsedSignature,
    request: HttpRequestView,
    lookup_key: Any,
    now: int,
    max_skew: int,
    required: Sequence[Sequence[str]],
) -> VerifiedSignature:
    params = sig.params
    if params.get("alg", "ed25519") != "ed25519":
        raise SignatureInvalid("algorithm is not ed25519")
    keyid, created, nonce = params.get("keyid"), params.get("created"), params.get("nonce")
    if not isinstance(keyid, str) or not isinstance(created, int) or isinstance(created, bool):
        raise SignatureInvalid("keyid and created are required")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
        raise SignatureInvalid("a nonce of 8 to 128 characters is required")
    expires = params.get("expires")
    if expires is not None and (not isinstance(expires, int) or expires <= now):
        raise SignatureInvalid("signature expired")
    if abs(now - created) > max_skew:
        raise SignatureInvalid("created is outside the allowed clock skew")
    covered = set(sig.components)
    if not any(set(option) <= covered for option in required):
        raise SignatureInvalid("required components are not covered")
    if (
        urlsplit(request.target_uri).query
        and "@target-uri" not in covered
        and "@query" not in covered
    ):
        raise SignatureInvalid("the query is not covered")
    public = lookup_key(keyid)
    if public is None:
        raise SignatureInvalid("unknown or unusable key")
    values = {name: component_value(name, request) for name in sig.components}
    base = signature_base([(n, values[n]) for n in sig.components], sig.signature_params)
    if not ed25519_verify(public, base, sig.signature):
        raise SignatureInvalid("signature does not verify")
    return VerifiedSignature(
        sig.label,
        keyid,
        created,
        nonce,
        expires if isinstance(expires, int) else None,
        sig.components,
        values,
        sig.signature_params,
        sig.signature,
    )


def verify_base(
    public: bytes, values: Sequence[tuple[str, str]], signature_params: str, signature: bytes
) -> bool:
    """Check a stored signature again (a recipient, after decryption)."""
    return ed25519_verify(public, signature_base(values, signature_params), signature)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """PyNaCl verifies about twice as fast as ``cryptography`` here: this is on the hot path."""
    try:
        VerifyKey(public).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


# -- Content-Digest (RFC 9530) ----------------------------------------------------------------


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    digest = DIGESTS[algorithm](body).digest()
    return _sf_serialize({algorithm: (digest, {})})


def digest_matches(header: str, body: bytes) -> bool:
    """True when every known algorithm in ``header`` matches ``body``, and at least one is known."""
    try:
        members = _sf_dictionary(header)
    except (ValueError, UnicodeEncodeError):
        return False
    known = [(name, value[0]) for name, value in members.items() if name in DIGESTS]
    if not known:
        return False
    return all(
        isinstance(v, bytes) and hmac.compare_digest(DIGESTS[n](body).digest(), v) for n, v in known
    )


# -- signing (the sender side) ----------------------------------------------------------------


def sign_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    key: Ed25519PrivateKey,
    keyid: str,
    created: int,
    components: Sequence[str],
    nonce: str | None = None,
    expires: int | None = None,
    label: str = "sig1",
) -> dict[str, str]:
    """The ``Signature-Input`` and ``Signature`` headers for a request."""
    view = HttpRequestView(method, url, {k.lower(): v for k, v in headers.items()})
    params: dict[str, Any] = {
        "created": created,
        "keyid": keyid,
        "alg": "ed25519",
        "nonce": nonce or secrets.token_urlsafe(16),
    }
    if expires is not None:
        params["expires"] = expires
    member: tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]] = (
        [(c, {}) for c in components],
        params,
    )
    serialized = _sf_serialize({"x": member})[2:]
    base = signature_base([(c, component_value(c, view)) for c in components], serialized)
    signature = key.sign(base)
    return {
        "Signature-Input": f"{label}={serialized}",
        "Signature": f"{label}=:{base64.b64encode(signature).decode()}:",
    }
