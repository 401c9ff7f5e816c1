"""Turn a directory file into a ``Directory``, or refuse it whole with ``file:line: reason``.

Invariants: a refused file changes nothing; every reference (parent, organisation, role, contact)
resolves; the jurisdiction tree has countries at its roots and no cycles; ids are unique; only
public keys of the right length are accepted.
"""

from __future__ import annotations

import base64
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema

from broker.directory.schema import DIRECTORY_SCHEMA
from broker.domain.directory import (
    Assignment,
    AssignmentKind,
    Contact,
    Directory,
    Jurisdiction,
    KeyStatus,
    KeyType,
    Organisation,
    Period,
    PublicKey,
    Role,
    Webhook,
)
from broker.errors import DirectoryFileError, SourceProblem
from broker.policy.schema_check import format_checker
from broker.sourcefile import (
    Pointer,
    Source,
    SourceParseError,
    parse_yaml,
    read_yaml,
    schema_problems,
)
from broker.titles import Text, read

_VALIDATOR = jsonschema.Draft202012Validator(DIRECTORY_SCHEMA, format_checker=format_checker())


def load_directory_file(path: Path, *, max_bytes: int) -> tuple[Directory, Source]:
    """Read, validate and build the directory declared in ``path``."""
    try:
        source = read_yaml(path, max_bytes=max_bytes)
    except SourceParseError as e:
        raise DirectoryFileError([e.problem]) from e
    return parse_directory(source), source


def parse_directory_text(text: str, file: str) -> Directory:
    """Validate and build a directory from its YAML text."""
    try:
        source = parse_yaml(text, file)
    except SourceParseError as e:
        raise DirectoryFileError([e.problem]) from e
    return parse_directory(source)


def parse_directory(source: Source) -> Directory:
    problems = schema_problems(source, _VALIDATOR)
    if problems:
        raise DirectoryFileError(problems)
    builder = _Builder(source)
    directory = builder.build()
    if builder.problems:
        raise DirectoryFileError(sorted(builder.problems, key=lambda p: p.line))
    return directory


class _Builder:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.data: dict[str, Any] = source.data
        self.problems: list[SourceProblem] = []

    def fail(self, pointer: Pointer, reason: str) -> None:
        self.problems.append(self.source.problem(pointer, reason))

    def text(self, pointer: Pointer, value: object) -> Text:
        """A translatable name; an unknown language tag is a problem at its own line."""
        text, problems = read(value, pointer, self.source.problem)
        self.problems += problems
        return text

    def build(self) -> Directory:
        jurisdictions = self._jurisdictions()
        organisations, org_keys = self._organisations(jurisdictions)
        roles = self._roles(organisations)
        contacts, contact_keys = self._contacts(organisations)
        assignments = self._assignments(roles, contacts)
        keys = self._unique_keys([*org_keys, *contact_keys])
        webhooks = self._webhooks()
        return Directory.build(
            list(jurisdictions.values()),
            list(organisations.values()),
            list(roles.values()),
            list(contacts.values()),
            assignments,
            keys,
            webhooks,
        )

    def _unique(self, section: str) -> list[tuple[int, dict[str, Any]]]:
        items = self.data.get(section, [])
        counts = Counter(item["id"] for item in items)
        seen: set[str] = set()
        for i, item in enumerate(items):
            if counts[item["id"]] > 1 and item["id"] in seen:
                self.fail((section, i, "id"), f"duplicate {section[:-1]} id {item['id']!r}")
            seen.add(item["id"])
        return list(enumerate(items))

    def _jurisdictions(self) -> dict[str, Jurisdiction]:
        result: dict[str, Jurisdiction] = {}
        for i, item in self._unique("jurisdictions"):
            name = self.text(("jurisdictions", i, "name"), item["name"])
            result[item["id"]] = Jurisdiction(
                item["id"], name.default, item["level"], item.get("parent"), name.translations
            )
        for i, item in enumerate(self.data["jurisdictions"]):
            where: Pointer = ("jurisdictions", i)
            parent = item.get("parent")
            if item["level"] == "country" and parent is not None:
                self.fail((*where, "parent"), f"country {item['id']!r} cannot have a parent")
            elif item["level"] != "country" and parent is None:
                self.fail(
                    where, f"jurisdiction {item['id']!r} needs a parent (only a country has none)"
                )
            elif parent is not None and parent not in result:
                self.fail((*where, "parent"), f"unknown parent jurisdiction {parent!r}")
            elif parent is not None and self._cycles(result, item["id"]):
                self.fail((*where, "parent"), f"jurisdiction {item['id']!r} is its own ancestor")
        return result

    @staticmethod
    def _cycles(tree: dict[str, Jurisdiction], start: str) -> bool:
        seen = {start}
        node = tree[start].parent
        while node is not None and node in tree:
            if node in seen:
                return True
            seen.add(node)
            node = tree[node].parent
        return False

    def _organisations(
        self, jurisdictions: dict[str, Jurisdiction]
    ) -> tuple[dict[str, Organisation], list[PublicKey]]:
        result: dict[str, Organisation] = {}
        keys: list[PublicKey] = []
        for i, item in self._unique("organisations"):
            if item["jurisdiction"] not in jurisdictions:
                self.fail(
                    ("organisations", i, "jurisdiction"),
                    f"unknown jurisdiction {item['jurisdiction']!r}",
                )
            name = self.text(("organisations", i, "name"), item["name"])
            result[item["id"]] = Organisation(
                item["id"], name.default, item["kind"], item["jurisdiction"], name.translations
            )
            keys += self._keys(("organisations", i), item)
        return result, keys

    def _roles(self, organisations: dict[str, Organisation]) -> dict[str, Role]:
        result: dict[str, Role] = {}
        for i, item in self._unique("roles"):
            if item["organisation"] not in organisations:
                self.fail(
                    ("roles", i, "organisation"), f"unknown organisation {item['organisation']!r}"
                )
                continue
            title = self.text(
                ("roles", i, "title"), item.get("title") or item["kind"].replace("-", " ")
            )
            result[item["id"]] = Role(
                item["id"], item["organisation"], item["kind"], title.default, title.translations
            )
        return result

    def _contacts(
        self, organisations: dict[str, Organisation]
    ) -> tuple[dict[str, Contact], list[PublicKey]]:
        result: dict[str, Contact] = {}
        keys: list[PublicKey] = []
        for i, item in self._unique("contacts"):
            if item["organisation"] not in organisations:
                self.fail(
                    ("contacts", i, "organisation"),
                    f"unknown organisation {item['organisation']!r}",
                )
            result[item["id"]] = Contact(
                item["id"],
                item["name"],
                item["organisation"],
                item.get("email"),
                item.get("language", "en"),
            )
            keys += self._keys(("contacts", i), item)
        return result, keys

    def _assignments(
        self, roles: dict[str, Role], contacts: dict[str, Contact]
    ) -> list[Assignment]:
        result: list[Assignment] = []
        for i, item in enumerate(self.data.get("assignments", [])):
            where: Pointer = ("assignments", i)
            if item["role"] not in roles:
                self.fail((*where, "role"), f"unknown role {item['role']!r}")
            if item["contact"] not in contacts:
                self.fail((*where, "contact"), f"unknown contact {item['contact']!r}")
            period = self._period(where, item)
            absences = tuple(
                p
                for j, a in enumerate(item.get("absences", []))
                if (p := self._period((*where, "absences", j), a)) is not None
            )
            if period is not None:
                result.append(
                    Assignment(
                        item["role"],
                        item["contact"],
                        AssignmentKind(item.get("as", "holder")),
                        period,
                        absences,
                    )
                )
        return result

    def _keys(self, owner_where: Pointer, owner: dict[str, Any]) -> list[PublicKey]:
        keys: list[PublicKey] = []
        for j, item in enumerate(owner.get("keys", [])):
            where: Pointer = (*owner_where, "keys", j)
            raw = base64.b64decode(item["public"])
            if len(raw) != 32:
                self.fail((*where, "public"), "a public key must be 32 bytes, base64-encoded")
                continue
            if item["type"] == KeyType.TLS_CLIENT_SHA256 and owner_where[0] != "organisations":
                self.fail((*where, "type"), "only an organisation has a TLS client certificate")
                continue
            valid = self._period(where, item) if "from" in item else None
            keys.append(
                PublicKey(
                    item["id"],
                    owner["id"],
                    KeyType(item["type"]),
                    raw,
                    KeyStatus(item.get("status", "active")),
                    valid,
                )
            )
        return keys

    def _webhooks(self) -> list[Webhook]:
        found: list[Webhook] = []
        seen: set[str] = set()
        for section in ("organisations", "contacts"):
            for i, owner in enumerate(self.data.get(section, [])):
                for j, hook in enumerate(owner.get("webhooks", [])):
                    where: Pointer = (section, i, "webhooks", j)
                    if hook["id"] in seen:
                        self.fail((*where, "id"), f"duplicate webhook id {hook['id']!r}")
                    seen.add(hook["id"])
                    content = hook.get("content", "metadata")
                    if content == "ciphertext" and section == "organisations":
                        self.fail(
                            (*where, "content"), "only a contact's webhook may carry ciphertext"
                        )
                    found.append(
                        Webhook(hook["id"], owner["id"], hook["url"], hook.get("secret"), content)
                    )
        return found

    def _unique_keys(self, keys: list[PublicKey]) -> list[PublicKey]:
        counts = Counter(k.id for k in keys)
        for key_id, n in counts.items():
            if n > 1:
                self.problems.append(
                    SourceProblem(
                        self.source.file,
                        self._line_of_key(key_id),
                        f"key id {key_id!r} is used {n} times",
                    )
                )
        return keys

    def _line_of_key(self, key_id: str) -> int:
        for section in ("organisations", "contacts"):
            for i, owner in enumerate(self.data.get(section, [])):
                for j, key in enumerate(owner.get("keys", [])):
                    if key["id"] == key_id:
                        return self.source.line((section, i, "keys", j))
        return 1

    def _period(self, where: Pointer, item: dict[str, Any]) -> Period | None:
        start = self._time((*where, "from"), item["from"])
        end = self._time((*where, "until"), item["until"]) if item.get("until") else None
        if start is None or (item.get("until") and end is None):
            return None
        if end is not None and end <= start:
            self.fail((*where, "until"), "'until' must be after 'from'")
            return None
        return Period(start, end)

    def _time(self, where: Pointer, text: str) -> datetime | None:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            self.fail(where, f"not an ISO 8601 time: {text!r}")
            return None
        if value.tzinfo is None:
            self.fail(where, f"time {text!r} needs a timezone (e.g. Z)")
            return None
        return value
