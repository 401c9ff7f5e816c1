"""One error family for everything Liaison refuses: every error class is defined here.

Every error has a stable snake_case ``code`` and a message that is safe to show to the caller.
Detail that must not reach the caller (which key, which rule) travels in ``detail`` and goes to the
audit log only. HTTP statuses live in one table in ``broker.http.problems``, keyed by class (the
most specific class in the table wins), not here; ``tests/unit/test_errors.py`` ties the two.

    LiaisonError
    ├── ConfigError            settings file, environment or secret reference unusable
    ├── SourceError            a directory or policy file refused: carries file:line: reason items
    │   ├── DirectoryFileError
    │   └── PolicyFileError
    ├── StoreError             the database cannot be reached or refused the operation
    │   └── StoreUnavailable
    │       └── CommitInDoubt  the connection was lost during COMMIT: stored or not, unknown
    ├── BadRequest             the request cannot be read at all (a body that is not JSON)
    │   └── CheckpointRequestInvalid  not an add-checkpoint body (c2sp.org/tlog-witness)
    ├── UnsupportedMediaType   a body of a type the endpoint does not take
    ├── NoticeInvalid          a notice, acknowledgement or query that breaks its schema
    ├── NotFound               unknown id (and ids the caller may not see: no oracle)
    │   └── UnknownLog         a checkpoint for a log this witness does not know
    ├── Gone                   a notice destroyed at the end of its retention
    ├── AuthenticationFailed   one answer for every authentication failure
    ├── Forbidden              authenticated, but policy does not allow it
    │   └── CheckpointNotSigned  no signature on a checkpoint verifies with the pinned log key
    ├── Conflict               the request contradicts what the broker already holds
    │   ├── IdempotencyConflict  an Idempotency-Key reused for a different request
    │   ├── CheckpointConflict   an old size that is not the one this witness cosigned last
    │   └── CheckpointFork       same size as the last cosigned checkpoint, another root
    ├── CheckpointInconsistent  a consistency proof that fails: the log rewrote its history
    ├── SupersedesInvalid      an update or cancel that names no notice it may replace
    ├── NoRecipients           no one may receive the notice under the policies in force
    ├── TooManyRecipients      more recipients than limits.max_recipients
    ├── TooManyStreams         a contact's live streams are at their cap
    ├── TooManyAttempts        too many refused enrolment codes from one source, or at all
    ├── RoutingError           a notice cannot be routed
    │   ├── UnknownChannel
    │   └── UnknownJurisdiction
    ├── TrustRefused           signed root / key bindings, or a sender's key, did not check out
    │   ├── KeyNotBound
    │   └── KeyRevoked
    └── InputRefused           bad input refused before it is parsed or reaches the store
        ├── NestingTooDeep     JSON nested deeper than limits.max_json_depth
        ├── NumberOutOfRange   an integer the client sent is negative or beyond 64 bits
        ├── ControlCharacter   a NUL or control character in an id, key or text the store keeps
        ├── KeyInvalid         an Idempotency-Key that is empty, too long or not printable
        └── HeaderTooLarge     a header field or request line over limits.max_header_bytes

    DriverFailed               a delivery driver could not do its job; never shown to a client,
    ├── JwksUnavailable        caught where the driver is called (the service logs and retries)
    └── EmailFailed

Outside this tree, on purpose: the pure cores' own signals (``crypto.TokenInvalid``,
``crypto.DecryptionFailed``, ``crypto.SignatureInvalid``, ``sourcefile.SourceParseError``,
``audit.witness.WitnessRefused``) and
the store's (``NonceReplayed``, ``IdempotencyRace``, ``BatchConflict``) are caught by their one
caller and turned into an error above; the client SDK's errors (``adapters.client.errors``)
belong to the client, not to the broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the policy core imports this module
    from broker.policy.payload import Violation
    from broker.policy.route import NotReached


class LiaisonError(Exception):
    """Root of every error Liaison raises on purpose."""

    code = "liaison_error"

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def diagnostics(self) -> str:
        """The human explanation for an operator's terminal."""
        return self.message

    def extensions(self) -> dict[str, object]:
        """Extra problem+json members that are safe to show the caller (e.g. violations)."""
        return {}


class ConfigError(LiaisonError):
    code = "config_invalid"


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """One reason a source file was refused, pointing at the line that caused it."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class SourceError(LiaisonError):
    """A file (directory, channel, Cedar policy) was refused; nothing was changed."""

    code = "source_invalid"

    def __init__(self, problems: Iterable[SourceProblem]) -> None:
        self.problems: Sequence[SourceProblem] = tuple(problems)
        first = str(self.problems[0]) if self.problems else "invalid source"
        super().__init__(first)

    def diagnostics(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class DirectoryFileError(SourceError):
    code = "directory_invalid"


class PolicyFileError(SourceError):
    code = "policy_invalid"


class StoreError(LiaisonError):
    code = "store_error"


class StoreUnavailable(StoreError):
    code = "store_unavailable"


class CommitInDoubt(StoreUnavailable):
    """The connection was lost after COMMIT was sent and before the database answered: the
    write may be stored or not. A retry under the same idempotency key tells which."""

    code = "commit_in_doubt"


class BadRequest(LiaisonError):
    code = "bad_request"


class CheckpointRequestInvalid(BadRequest):
    code = "checkpoint_request_invalid"


class UnsupportedMediaType(LiaisonError):
    code = "unsupported_media_type"


class NoticeInvalid(LiaisonError):
    code = "payload_invalid"

    def __init__(
        self, violations: list[Violation], message: str = "the notice does not match its schema"
    ) -> None:
        super().__init__(message)
        self.violations = violations

    def diagnostics(self) -> str:
        return "; ".join(f"{v.pointer or '/'}: {v.message}" for v in self.violations)

    def extensions(self) -> dict[str, object]:
        return {
            "violations": [{"pointer": v.pointer, "message": v.message} for v in self.violations]
        }


class NotFound(LiaisonError):
    code = "not_found"


class UnknownLog(NotFound):
    code = "unknown_log"


class Gone(LiaisonError):
    code = "gone"


class AuthenticationFailed(LiaisonError):
    code = "authentication_failed"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__("authentication failed", detail=detail)
        self.recorded = False  # True once its refusal is in the audit count (service/refusals.py)


class TokenRequestInvalid(AuthenticationFailed):
    """A token request that is not a well-formed jwt-bearer or client-credentials grant: RFC 6749
    §5.2 ``invalid_request`` at the token endpoint (counted like any unauthenticated refusal)."""

    code = "invalid_request"


class GrantTypeUnsupported(TokenRequestInvalid):
    """A token request for another grant than jwt-bearer or client credentials: RFC 6749 §5.2
    ``unsupported_grant_type``."""

    code = "unsupported_grant_type"


class Forbidden(LiaisonError):
    """``reason``, when given, is shown to the caller: only where the caller may know it (an
    agency told why its own notice may not be published: its channel, jurisdiction and the
    published policy ids that decided — nothing about recipients)."""

    code = "forbidden"

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        reason: str | None = None,
        why: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.reason = reason
        self.why = why  # the reason as data ({"rule": ..., its fields}), for a client to translate

    def extensions(self) -> dict[str, object]:
        given = {"reason": self.reason, "why": self.why}
        return {k: v for k, v in given.items() if v}


class Conflict(LiaisonError):
    code = "conflict"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class CheckpointNotSigned(Forbidden):
    code = "checkpoint_not_signed"


class CheckpointConflict(Conflict):
    """``size``: what this witness cosigned last (the 409's ``text/x.tlog.size`` body)."""

    code = "checkpoint_conflict"

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class CheckpointFork(Conflict):
    code = "checkpoint_fork"


class CheckpointInconsistent(LiaisonError):
    code = "checkpoint_inconsistent"


class SupersedesInvalid(LiaisonError):
    code = "supersedes_invalid"


class NoRecipients(LiaisonError):
    code = "no_recipients"

    def __init__(self, not_reached: list[NotReached]) -> None:
        super().__init__("no one can receive this notice under the policies in force")
        self.not_reached = not_reached

    def extensions(self) -> dict[str, object]:
        return {"not_reached": [{"role": n.role, "reason": n.reason} for n in self.not_reached]}


class TooManyRecipients(LiaisonError):
    code = "too_many_recipients"


class TooManyStreams(LiaisonError):
    """A contact already holds as many live streams as ``delivery.max_streams_per_contact``."""

    code = "too_many_streams"


class TooManyAttempts(LiaisonError):
    """Enrolment codes refused too often lately, from this source or from anywhere."""

    code = "too_many_attempts"


class RoutingError(LiaisonError):
    code = "routing_failed"


class UnknownChannel(RoutingError):
    code = "unknown_channel"


class UnknownJurisdiction(RoutingError):
    code = "unknown_jurisdiction"


class TrustRefused(LiaisonError):
    """Signed trust metadata (root, key bindings) or a sender's key did not check out."""

    code = "trust_refused"


class KeyNotBound(TrustRefused):
    """The sender's key is not bound to the sender in the administrators' signed directory."""

    code = "key_not_bound"


class KeyRevoked(TrustRefused):
    """The signed directory lists the sender's key as revoked."""

    code = "key_revoked"


class InputRefused(LiaisonError):
    """Input refused by a bound checked before parsing or before the store; ``pointer`` says where
    (a JSON pointer, or the name of the header or query parameter), never what was sent."""

    code = "input_refused"

    def __init__(self, message: str, *, pointer: str = "", detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.pointer = pointer

    def extensions(self) -> dict[str, object]:
        return {"pointer": self.pointer} if self.pointer else {}


class NestingTooDeep(InputRefused):
    code = "nesting_too_deep"


class NumberOutOfRange(InputRefused):
    code = "number_out_of_range"


class ControlCharacter(InputRefused):
    code = "control_character"


class KeyInvalid(InputRefused):
    code = "idempotency_key_invalid"


class HeaderTooLarge(InputRefused):
    code = "header_too_large"


class DriverFailed(Exception):
    """A delivery driver (JWKS fetch, e-mail) failed; the message names the kind of failure only.
    Not a ``LiaisonError``: it never answers a request, its caller logs it and tries again."""


class JwksUnavailable(DriverFailed):
    pass


class EmailFailed(DriverFailed):
    pass
