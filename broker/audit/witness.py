"""A witness's decision: cosign a log's new checkpoint only if it extends what it cosigned before.

The checks of c2sp.org/tlog-witness ``add-checkpoint``, as a pure function (no I/O, time passed
in, signing passed in). A checkpoint is cosigned only when:
- it is signed by the log key the witness pinned, for the origin it pinned;
- it is not smaller than the last checkpoint the witness cosigned (a rollback is refused);
- at the same size it has the same root (a different one is a fork: two histories);
- at a larger size, the RFC 9162 consistency proof from the last cosigned (size, root) to the
  new one verifies (else the log rewrote its history);
- the first checkpoint of a log is taken on trust, like a pin (and says so).
Any refusal leaves the state as it was: the witness never moves to a history it did not verify.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broker.audit.checkpoint import Checkpoint
from broker.audit.merkle import verify_consistency
from broker.crypto.note import open_note

FORMAT = "liaison-witness-v1"
Cosign = Callable[[str, int], str]  # (checkpoint body, timestamp) -> signature line


class WitnessRefused(Exception):
    """The witness will not cosign; ``code`` is stable, ``message`` says what the log did."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class WitnessState:
    """What a witness remembers of one log: the latest checkpoint it cosigned."""

    origin: str
    log_key: bytes  # the log's pinned Ed25519 key
    size: int = 0
    root: bytes = b""
    cosigned_at: int = 0  # POSIX time of the last cosignature
    checkpoint: str = ""  # the last cosigned checkpoint, with the log's and our signatures

    def dump(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "origin": self.origin,
            "log_key": base64.b64encode(self.log_key).decode(),
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "cosigned_at": self.cosigned_at,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def load(cls, data: Any) -> WitnessState:
        """From ``dump``'s form; ValueError for anything else."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} state")
        try:
            state = cls(
                str(data["origin"]),
                base64.b64decode(data["log_key"], validate=True),
                int(data["size"]),
                base64.b64decode(data["root"], validate=True),
                int(data["cosigned_at"]),
                str(data["checkpoint"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"a damaged witness state: {e}") from e
        if len(state.log_key) != 32 or state.size < 0 or (state.size and len(state.root) != 32):
            raise ValueError("a damaged witness state: bad key, size or root")
        return state


@dataclass(frozen=True, slots=True)
class Cosigned:
    state: WitnessState
    checkpoint: Checkpoint
    note: str  # the checkpoint with the witness's cosignature appended
    first: bool  # taken on trust: nothing cosigned before


def read_checkpoint(note: str, origin: str, log_key: bytes) -> tuple[str, Checkpoint]:
    """The body and checkpoint of ``note`` if the pinned key signed it for ``origin``."""
    try:
        body = open_note(note, origin, log_key)
        checkpoint = Checkpoint.parse(body)
    except (ValueError, UnicodeError) as e:
        raise WitnessRefused("bad_signature", f"the checkpoint does not verify: {e}") from e
    if checkpoint.origin != origin:
        raise WitnessRefused(
            "wrong_origin", f"the checkpoint is for {checkpoint.origin!r}, not {origin!r}"
        )
    return body, checkpoint


def advance(
    state: WitnessState, note: str, proof: Sequence[bytes], now: int, cosign: Cosign
) -> Cosigned:
    """Cosign ``note`` if it is consistent with ``state``; WitnessRefused otherwise."""
    body, new = read_checkpoint(note, state.origin, state.log_key)
    _check_consistent(state, new, proof)
    timestamp = max(now, state.cosigned_at)  # never back in time, whatever the clock says
    cosigned = note + cosign(body, timestamp)
    next_state = WitnessState(state.origin, state.log_key, new.size, new.root, timestamp, cosigned)
    return Cosigned(next_state, new, cosigned, first=state.size == 0)


def _check_consistent(state: WitnessState, new: Checkpoint, proof: Sequence[bytes]) -> None:
    old = f"size {state.size} (root {_b64(state.root)})"
    if new.size < state.size:
        raise WitnessRefused(
            "rollback",
            f"the log shows size {new.size}, smaller than the {old} this witness cosigned: "
            "it rolled back its history",
        )
    if new.size == state.size:
        if new.root != state.root:
            raise WitnessRefused(
                "fork",
                f"the log shows root {_b64(new.root)} at size {new.size}, where this witness "
                f"cosigned root {_b64(state.root)}: it shows two histories",
            )
        return
    if state.size == 0:
        if proof:
            raise WitnessRefused("bad_proof", "a first checkpoint comes with no proof")
        return
    if not verify_consistency(state.size, new.size, proof, state.root, new.root):
        raise WitnessRefused(
            "inconsistent",
            f"the log at size {new.size} (root {_b64(new.root)}) is not an extension of the "
            f"{old} this witness cosigned: the consistency proof fails, so the log rewrote "
            "its history (two histories)",
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def dumps(state: WitnessState) -> str:
    return json.dumps(state.dump(), indent=2) + "\n"
