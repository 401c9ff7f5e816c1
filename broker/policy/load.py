"""Load a policy directory: ``channels/*.yaml`` plus top-level ``*.cedar`` files.

The whole set is validated before it is used: every channel against its schema, every Cedar
statement parsed on its own (so an error names its line), and all policies together against the
Cedar schema. Any problem refuses the whole set, so a running broker keeps its last valid one.
The set's ``hash`` covers every file it was built from; each notice records it.
Peer files (``peers/<id>.yaml``, ``broker/federation/agreements.py``) are checked against the
channels of the same set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cedarpy

from broker.errors import PolicyFileError, SourceProblem
from broker.federation.agreements import Peer, check_peers, parse_peer
from broker.policy.cedar import CEDAR_SCHEMA, Statement, compile_channel, split_statements
from broker.policy.channel import Channel, parse_channel
from broker.sourcefile import SourceParseError, read_yaml


@dataclass(frozen=True)
class PolicySet:
    """A validated, immutable set of channels and Cedar policies."""

    channels: dict[str, Channel]
    statements: tuple[Statement, ...]
    hash: str
    cedar: cedarpy.PolicySet = field(repr=False)
    files: tuple[str, ...] = ()
    peers: dict[str, Peer] = field(default_factory=dict)

    @classmethod
    def from_parts(
        cls,
        channels: dict[str, Channel],
        statements: list[Statement],
        content_hash: str,
        files: tuple[str, ...] = (),
        peers: dict[str, Peer] | None = None,
    ) -> PolicySet:
        text = "\n\n".join(s.text for s in statements)
        return cls(
            channels,
            tuple(statements),
            content_hash,
            cedarpy.PolicySet.from_str(text),
            files,
            peers or {},
        )


def load_policies(
    root: Path, *, max_file_bytes: int = 1_048_576, max_files: int = 500
) -> PolicySet:
    """Load and validate ``root``; raise ``PolicyFileError`` listing every problem."""
    if not root.is_dir():
        raise PolicyFileError([SourceProblem(str(root), 1, "policy directory not found")])
    channel_files = (
        sorted((root / "channels").glob("*.yaml")) if (root / "channels").is_dir() else []
    )
    cedar_files = sorted(root.glob("*.cedar"))
    peer_files = sorted((root / "peers").glob("*.yaml")) if (root / "peers").is_dir() else []
    files = [*channel_files, *cedar_files, *peer_files]
    if len(files) > max_files:
        raise PolicyFileError(
            [
                SourceProblem(
                    str(root), 1, f"{len(files)} policy files, over the limit of {max_files}"
                )
            ]
        )
    problems: list[SourceProblem] = []
    channels: dict[str, Channel] = {}
    statements: list[Statement] = []
    origins: list[tuple[str, int]] = []  # (file, line) of each statement, by position
    for path in channel_files:
        display = str(path.relative_to(root.parent)) if root.parent != path else str(path)
        try:
            source = read_yaml(path, max_bytes=max_file_bytes, display=display)
        except SourceParseError as e:
            problems.append(e.problem)
            continue
        channel, found = parse_channel(source, path.stem)
        problems += found
        if channel is not None:
            channels[channel.id] = channel
            for statement in compile_channel(channel):
                statements.append(statement)
                origins.append((display, statement.line))
    for path in cedar_files:
        display = str(path.relative_to(root.parent))
        found_statements, found = _read_cedar(path, display, max_file_bytes)
        problems += found
        statements += found_statements
        origins += [(display, s.line) for s in found_statements]
    peers = _read_peers(root, peer_files, channels, max_file_bytes, problems)
    problems += _check_ids(statements, origins)
    if not problems:
        problems += _validate(statements, origins)
    if problems:
        raise PolicyFileError(problems)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    names = tuple(str(p.relative_to(root)) for p in files)
    return PolicySet.from_parts(channels, statements, f"sha256:{digest.hexdigest()}", names, peers)


def _read_peers(
    root: Path,
    paths: list[Path],
    channels: dict[str, Channel],
    max_bytes: int,
    problems: list[SourceProblem],
) -> dict[str, Peer]:
    """Each ``peers/<id>.yaml``, checked against the set's channels and against each other."""
    peers: dict[str, Peer] = {}
    for path in paths:
        display = str(path.relative_to(root.parent))
        try:
            source = read_yaml(path, max_bytes=max_bytes, display=display)
        except SourceParseError as e:
            problems.append(e.problem)
            continue
        peer, found = parse_peer(source, path.stem, channels)
        problems += found
        if peer is not None:
            peers[peer.id] = peer
    problems += check_peers(peers)
    return peers


def _read_cedar(
    path: Path, display: str, max_bytes: int
) -> tuple[list[Statement], list[SourceProblem]]:
    try:
        if path.stat().st_size > max_bytes:
            return [], [SourceProblem(display, 1, f"file is over the limit of {max_bytes} bytes")]
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [], [SourceProblem(display, 1, f"cannot read file: {e}")]
    statements, rest = split_statements(text)
    problems = []
    for s in statements:
        try:
            cedarpy.PolicySet.from_str(s.text)
        except ValueError as e:
            problems.append(SourceProblem(display, s.line, f"Cedar syntax: {e}"))
            continue
        if s.policy_id is None:
            problems.append(
                SourceProblem(display, s.line, 'every policy needs an @id("...") annotation')
            )
    if rest is not None:
        last = text.rstrip().count("\n") + 1
        problems.append(
            SourceProblem(display, last, "incomplete policy at end of file (missing ';'?)")
        )
    return statements, problems


def _check_ids(statements: list[Statement], origins: list[tuple[str, int]]) -> list[SourceProblem]:
    seen: dict[str, tuple[str, int]] = {}
    problems = []
    for s, (file, line) in zip(statements, origins, strict=True):
        if s.policy_id is None:
            continue
        if s.policy_id in seen:
            other = seen[s.policy_id]
            problems.append(
                SourceProblem(
                    file, line, f"policy id {s.policy_id!r} already used at {other[0]}:{other[1]}"
                )
            )
        seen[s.policy_id] = (file, line)
    return problems


def _validate(statements: list[Statement], origins: list[tuple[str, int]]) -> list[SourceProblem]:
    text = "\n\n".join(s.text for s in statements)
    result = cedarpy.validate_policies(text, CEDAR_SCHEMA)
    problems = []
    for error in result.errors:
        index = _policy_index(error.policy_id)
        file, line = (
            origins[index] if index is not None and index < len(origins) else ("policies", 1)
        )
        message = (
            error.error.split(", ", 1)[-1] if error.error.startswith("for policy") else error.error
        )
        problems.append(SourceProblem(file, line, f"Cedar validation: {message}"))
    return problems


def _policy_index(policy_id: str) -> int | None:
    if policy_id.startswith("policy") and policy_id[6:].isdigit():
        return int(policy_id[6:])
    return None
