"""``liaison witness``: an auditor's own witness of a broker's log (c2sp.org/tlog-witness).

Each round fetches the broker's signed checkpoint (as an auditor: ``--url/--contact/--key`` or
``--data --as``), checks it against the log key pinned with ``--log-key``, fetches the RFC 9162
consistency proof from the last checkpoint it cosigned, and only then cosigns
(``cosignature/v1``) with its own key. Its memory is one file (``--state``), replaced atomically
under a lock, so two runs never roll it back. A checkpoint that does not extend what it cosigned
(a broker showing two histories) is refused loudly: one line on stderr, exit 1, the evidence
appended to ``STATE.evidence.jsonl``, and the state left as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.cli.common import EXIT_FAILED, EXIT_OK, command
from broker.cli.principals import recipient_call, recipient_options
from broker.errors import ConfigError
from broker.terminal import safe_print as print  # untrusted text: control characters escaped

if TYPE_CHECKING:  # the witness and key libraries load only when the command runs
    from broker.audit.witness import Cosigned, WitnessRefused, WitnessState
    from broker.crypto.keys import Signer


def _log_key(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError("--log-key: not an Ed25519 public key (base64 of 32 bytes)")
    return key


@contextmanager
def _locked(state_file: Path) -> Iterator[None]:
    """One witness round at a time per state file (read, decide, replace)."""
    lock = state_file.with_name(state_file.name + ".lock")
    try:
        handle = lock.open("a")
    except OSError as e:
        raise ConfigError(f"cannot lock {lock}: {e.strerror}") from e
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise ConfigError(f"{state_file} is in use by another witness") from e
        yield


def _read_state(path: Path, pinned: bytes | None) -> WitnessState | None:
    from broker.audit.witness import WitnessState

    if not path.exists():
        return None
    try:
        state = WitnessState.load(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot use this witness state: {e}") from e
    if pinned is not None and pinned != state.log_key:
        raise ConfigError(f"--log-key differs from the log key pinned in {path}")
    return state


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically and durably (written, synced, renamed)."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def _evidence(state_file: Path, refused: WitnessRefused, note: str, proof: Any) -> str:
    """Keep what the log showed, as proof of its misbehaviour; where it was kept."""
    path = state_file.with_name(state_file.name + ".evidence.jsonl")
    record = {"at": int(time.time()), "code": refused.code, "message": refused.message}
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({**record, "checkpoint": note, "proof": proof}) + "\n")
    except OSError as e:
        return f"evidence NOT kept: {e.strerror}"
    return f"evidence in {path}"


async def _round(
    client: Any, args: argparse.Namespace, key: Signer, pinned: bytes | None
) -> Cosigned:
    """Fetch, check, cosign, remember: one witness round; WitnessRefused if the log misbehaves."""
    from broker.audit.witness import WitnessRefused, WitnessState, advance, dumps, read_checkpoint
    from broker.crypto.cosignature import cosign

    state_file = Path(args.state)
    with _locked(state_file):
        state = _read_state(state_file, pinned)
        answer = await client.audit_checkpoint(fresh=True)
        if not isinstance(answer, dict) or not isinstance(answer.get("note"), str):
            raise ConfigError("the broker's checkpoint answer holds no signed note")
        note = answer["note"]
        if state is None:
            if pinned is None:
                raise ConfigError(
                    f"first run: pin the log's key with --log-key (the broker says it is "
                    f"{answer.get('public_key')!s:.60}; check that out of band)"
                )
            state = WitnessState(str(answer.get("origin")), pinned)
        proof: list[Any] = []
        try:
            # The size comes from the signed note, never from the unsigned answer around it.
            _, shown = read_checkpoint(note, state.origin, state.log_key)
            if 0 < state.size < shown.size:
                proof = (await client.audit_consistency(state.size, shown.size)).get("proof")
            hashes = _hashes(proof)
            cosigned = advance(
                state,
                note,
                hashes,
                int(time.time()),
                lambda body, at: cosign(body, args.name, key, at),
            )
        except WitnessRefused as refused:
            where = _evidence(state_file, refused, note, proof)
            raise WitnessRefused(refused.code, f"{refused.message} ({where})") from None
        _write(state_file, dumps(cosigned.state))
        if args.out:
            _write(Path(args.out), cosigned.note)
        return cosigned


def _hashes(proof: Any) -> list[bytes]:
    """A consistency proof's hashes (base64 each); WitnessRefused for anything else."""
    from broker.audit.witness import WitnessRefused

    if not isinstance(proof, list) or len(proof) > 63:
        raise WitnessRefused("bad_proof", "the consistency proof is not a list of hashes")
    try:
        return [base64.b64decode(h, validate=True) for h in proof]
    except (binascii.Error, TypeError, ValueError) as e:
        raise WitnessRefused("bad_proof", "a consistency proof hash is not base64") from e


def _report(cosigned: Cosigned, name: str) -> None:
    c = cosigned.checkpoint
    trust = " (the first checkpoint of this log: taken on trust)" if cosigned.first else ""
    root = base64.b64encode(c.root).decode()
    print(f"cosigned {c.origin} at size {c.size} (root {root}) as {name}{trust}")


def cmd_witness(args: argparse.Namespace) -> int:
    from broker.audit.witness import WitnessRefused
    from broker.crypto.cosignature import vkey
    from broker.crypto.keys import ed25519_signer, read_private_key

    key = ed25519_signer(read_private_key(Path(args.cosigning_key), expected="ed25519"))
    try:
        verifier = vkey(args.name, key.public_key().public_bytes_raw())
    except ValueError as e:
        raise ConfigError(f"--name: {e}") from e
    if args.vkey:
        print(verifier)
        return EXIT_OK
    if not args.state:
        raise ConfigError("give --state FILE: the witness's memory of what it cosigned")
    pinned = _log_key(args.log_key)

    async def run(client: Any) -> int:
        from adapters.client.errors import BrokerError

        while True:
            try:
                _report(await _round(client, args, key, pinned), args.name)
            except WitnessRefused as e:
                print(f"liaison witness: REFUSED to cosign: {e.message}", file=sys.stderr)
                return EXIT_FAILED
            except BrokerError as e:  # unreachable or refusing: the next round tries again
                if args.once:
                    raise
                print(f"liaison witness: no checkpoint this round: {e}", file=sys.stderr)
            if args.once:
                return EXIT_OK
            await asyncio.sleep(args.interval)

    result: int = recipient_call(args, run)
    return result


def add_witness_command(sub: Any) -> None:
    """``liaison witness``."""
    p = command(
        sub,
        "witness",
        cmd_witness,
        "cosign a broker's checkpoints after checking they extend what was cosigned before",
    )
    p.add_argument(
        "--cosigning-key", required=True, metavar="PEM", help="the witness's Ed25519 key"
    )
    p.add_argument("--name", required=True, help="the witness's name, e.g. ombudsperson.mk/witness")
    p.add_argument("--state", metavar="FILE", help="what the witness cosigned last (kept here)")
    p.add_argument(
        "--log-key", metavar="BASE64", help="the broker's checkpoint key to pin (first run)"
    )
    p.add_argument("--out", metavar="FILE", help="write the cosigned checkpoint here")
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.add_argument("--interval", type=float, default=60.0, metavar="SECONDS", help="between rounds")
    p.add_argument("--vkey", action="store_true", help="print the witness's verifier key and exit")
    recipient_options(p)
