"""Load YAML source files keeping the line of every value, so refusals can say ``file:line``.

Only plain data is built (mappings, sequences, strings, numbers, booleans, null): no tags, no
anchors-with-merge tricks, and duplicate keys are refused rather than silently overwritten.
Validation against a JSON Schema reports each violation at the line of the offending value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from broker.errors import SourceProblem

Pointer = tuple[str | int, ...]

# libyaml's parser where PyYAML was built with it (the wheels are): the same nodes and marks, at
# a tenth of the pure-Python parser's cost (the demo directory is 166 kB, read on every apply).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed file: its data, and the line (1-based) each value starts on."""

    file: str
    data: Any
    lines: dict[Pointer, int]

    def line(self, pointer: Sequence[str | int]) -> int:
        """The line of the value at ``pointer``, or of its nearest parent that has one."""
        path = tuple(pointer)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def problem(self, pointer: Sequence[str | int], reason: str) -> SourceProblem:
        return SourceProblem(self.file, self.line(pointer), reason)


class SourceParseError(Exception):
    def __init__(self, problem: SourceProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document into plain data with line positions."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise SourceParseError(SourceProblem(file, line, f"not valid YAML: {e.problem}")) from e
    except yaml.YAMLError as e:
        raise SourceParseError(SourceProblem(file, 1, f"not valid YAML: {e}")) from e
    lines: dict[Pointer, int] = {}
    data = None if node is None else _build(node, (), lines, file, set())
    return Source(file, data, lines)


def read_yaml(path: Path, *, max_bytes: int, display: str | None = None) -> Source:
    """Read and parse ``path``, refusing files above ``max_bytes``."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceParseError(
                SourceProblem(name, 1, f"file is {size} bytes, over the limit of {max_bytes}")
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SourceParseError(SourceProblem(name, 1, "file is not UTF-8 text")) from e
    except OSError as e:
        raise SourceParseError(SourceProblem(name, 1, f"cannot read file: {e.strerror}")) from e
    return parse_yaml(text, name)


def _build(
    node: yaml.Node, path: Pointer, lines: dict[Pointer, int], file: str, seen: set[int]
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        # An alias of a list or mapping is the same node met twice: refused, since a recursive
        # alias never ends and nested ones multiply ("billion laughs"). Nothing here needs them.
        if id(node) in seen:
            raise SourceParseError(
                SourceProblem(
                    file, node.start_mark.line + 1, "YAML aliases of lists or mappings are refused"
                )
            )
        seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, file)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                raise SourceParseError(
                    SourceProblem(file, key_node.start_mark.line + 1, f"duplicate key {key!r}")
                )
            result[key] = _build(value_node, (*path, key), lines, file, seen)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, file, seen) for i, item in enumerate(node.value)]
    return _scalar(node, file)


def _scalar(node: yaml.Node, file: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise SourceParseError(
            SourceProblem(file, node.start_mark.line + 1, "a key must be plain text")
        )
    if node.tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:str"):
        # Times stay text: the schema and the domain parse them explicitly. A string is its
        # value as SafeConstructor.construct_yaml_str gives it, without building a constructor
        # for each one (most scalars of a directory are strings, and names in eight languages
        # multiply them).
        return node.value
    constructor = yaml.SafeLoader("")
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as e:
        raise SourceParseError(
            SourceProblem(file, node.start_mark.line + 1, f"bad value: {e}")
        ) from e
    finally:
        constructor.dispose()


def schema_problems(
    source: Source, validator: jsonschema.protocols.Validator
) -> list[SourceProblem]:
    """Every JSON Schema violation of ``source``, each at its line, in file order."""
    problems = [
        source.problem(_where(e), _describe(e))
        for e in _leaf_errors(validator.iter_errors(source.data))
    ]
    return sorted(problems, key=lambda p: p.line)


def _where(error: jsonschema.ValidationError) -> Pointer:
    """Point an unknown key at its own line rather than at the object that holds it."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [k for k in error.instance if k not in declared]
        if extra:
            return (*path, extra[0])
    return path


def _leaf_errors(
    errors: Iterator[jsonschema.ValidationError],
) -> Iterator[jsonschema.ValidationError]:
    for error in errors:
        if error.context:
            # For oneOf/anyOf, report the branch that got furthest rather than a wall of text.
            yield from _leaf_errors(iter([jsonschema.exceptions.best_match(error.context)]))
        else:
            yield error


def _describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    prefix = f"{where}: " if where else ""
    if error.validator == "additionalProperties":
        return f"{prefix}{error.message.replace('Additional properties are not allowed', 'unknown key')}"
    return f"{prefix}{error.message}"
