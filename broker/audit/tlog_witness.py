"""The wire format of c2sp.org/tlog-witness ``add-checkpoint``, and the witness's answer to it.

Pure functions (no I/O, time and signing passed in), shared by the witness a broker runs for
its peers' logs (``federation/witnessing.py``) and by the client that submits this broker's own
checkpoints to them (``federation/cosigning.py``).

A request body is ``old <size>\\n``, at most 63 base64 consistency-proof lines, an empty line,
then the checkpoint note (which may carry several signatures). The answer, in the order the
specification lists its checks (each a ``Refusal`` carrying its HTTP status):
- 404: the origin is not a log this witness knows;
- 403: no signature on the note verifies with the log key pinned for that origin;
- 400: the old size is larger than the checkpoint's size (or the body cannot be read);
- 409, body ``<size>\\n`` of type ``text/x.tlog.size``: the old size is not the size this
  witness last cosigned (``Conflict``: the client learns where to start from);
- 422: the consistency proof from the old size does not verify (the log rewrote its history);
- 409: same size as the last cosigned checkpoint, another root (a fork: two histories);
- 200: cosignature lines (``— <name> <base64>``), after the state moved forward.
The state moves only from the exact state the decision was made on (the caller stores it with a
compare-and-swap), so two concurrent requests can never roll it back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from broker.audit.witness import (
    Cosign,
    Cosigned,
    WitnessRefused,
    WitnessState,
    advance,
    read_checkpoint,
)
from broker.crypto.note import DASH

MAX_PROOF = 63  # lines; the specification's bound (a proof of a 2^63 tree)
MAX_BODY = 16 * 1024  # bytes: an old size line, 63 hashes and a checkpoint with a few signatures
SIZE_TYPE = "text/x.tlog.size"
MAX_SIZE = 2**63 - 1


class Refusal(Exception):
    """The witness will not cosign: ``status`` per the specification, ``code`` stable."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Conflict(Refusal):
    """The old size is not what the witness cosigned last; ``size`` is (the 409 body)."""

    def __init__(self, size: int) -> None:
        super().__init__(409, "witness_conflict", f"this witness last cosigned size {size}")
        self.size = size


@dataclass(frozen=True, slots=True)
class Submission:
    old: int
    proof: tuple[bytes, ...]
    note: str  # the checkpoint, a signed note

    @property
    def origin(self) -> str:
        return self.note.partition("\n")[0]


def parse_request(body: bytes) -> Submission:
    """A request body as the specification lays it out; ``Refusal`` 400 for anything else."""
    if len(body) > MAX_BODY:
        raise Refusal(400, "witness_request_invalid", "the request is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refusal(400, "witness_request_invalid", "the request is not UTF-8") from e
    head, sep, note = text.partition("\n\n")
    if not sep or not head.startswith("old ") or not note.endswith("\n"):
        raise Refusal(400, "witness_request_invalid", "not an add-checkpoint request")
    lines = head.split("\n")
    old = _decimal(lines[0].removeprefix("old "))
    if len(lines) - 1 > MAX_PROOF:
        raise Refusal(400, "witness_request_invalid", f"more than {MAX_PROOF} proof lines")
    proof = tuple(_hash(line) for line in lines[1:])
    if "\n\n" not in note:
        raise Refusal(400, "witness_request_invalid", "the checkpoint is not a signed note")
    return Submission(old, proof, note)


def format_request(old: int, proof: Sequence[bytes], note: str) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_size(body: str) -> int:
    """The body of a 409 (``text/x.tlog.size``): one decimal and a newline."""
    if not body.endswith("\n"):
        raise ValueError("a tree size ends in a newline")
    try:
        return _decimal(body[:-1])
    except Refusal as e:
        raise ValueError(e.message) from e


def parse_cosignatures(body: str) -> list[str]:
    """The signature lines of a 200, each ending in a newline; ValueError otherwise."""
    if not body.endswith("\n"):
        raise ValueError("the answer does not end in a newline")
    lines = body[:-1].split("\n")
    if not lines or not all(line.startswith(DASH) and " " in line[2:] for line in lines):
        raise ValueError("the answer is not signature lines")
    return [line + "\n" for line in lines]


def decide(state: WitnessState, submission: Submission, now: int, cosign: Cosign) -> Cosigned:
    """The witness's checks once the origin is known (the 404 is the caller's): cosign or refuse.

    ``state`` is what the witness holds for the origin (size 0 when it never cosigned).
    """
    try:
        _, checkpoint = read_checkpoint(submission.note, state.origin, state.log_key)
        if submission.old > checkpoint.size:
            raise Refusal(
                400,
                "witness_request_invalid",
                f"old size {submission.old} is larger than the checkpoint's {checkpoint.size}",
            )
        if submission.old != state.size:
            raise Conflict(state.size)
        return advance(state, submission.note, submission.proof, now, cosign)
    except WitnessRefused as e:
        raise Refusal(_STATUS.get(e.code, 422), f"witness_{e.code}", e.message) from e


_STATUS = {
    "bad_signature": 403,
    "wrong_origin": 403,
    "fork": 409,
    "rollback": 409,  # cannot happen once the old size matched; kept for completeness
    "inconsistent": 422,
    "bad_proof": 422,
}


def _decimal(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (text != "0" and text[0] == "0"):
        raise Refusal(400, "witness_request_invalid", "a size is a decimal without leading zeros")
    value = int(text)
    if value > MAX_SIZE:
        raise Refusal(400, "witness_request_invalid", "a size is at most 2^63-1")
    return value


def _hash(line: str) -> bytes:
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Refusal(400, "witness_request_invalid", "a proof line is not base64") from e
    if len(raw) != 32:
        raise Refusal(400, "witness_request_invalid", "a proof line is not a SHA-256 hash")
    return raw
