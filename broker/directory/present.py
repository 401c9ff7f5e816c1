"""Present a directory: as the file document it came from, as a tree, and as a diff."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from broker.domain.directory import Directory, Period, PublicKey, Webhook
from broker.titles import Translations


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _period(period: Period) -> dict[str, Any]:
    out: dict[str, Any] = {"from": _time(period.start)}
    if period.end is not None:
        out["until"] = _time(period.end)
    return out


def _key(key: PublicKey) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": key.id,
        "type": key.type.value,
        "public": base64.b64encode(key.public).decode(),
        "status": key.status.value,
    }
    if key.valid is not None:
        out.update(_period(key.valid))
    return out


def _hook(hook: Webhook) -> dict[str, Any]:
    out: dict[str, Any] = {"id": hook.id, "url": hook.url, "content": hook.content}
    if hook.secret_ref:
        out["secret"] = hook.secret_ref
    return out


def _text(default: str, translations: Translations) -> str | dict[str, str]:
    """A name as the file wrote it: plain text, or its translations (the default among them)."""
    return dict(translations) if translations else default


def to_document(directory: Directory) -> dict[str, Any]:
    """The directory in file form (version 1); ``parse_directory`` reads it back unchanged."""
    d = directory
    return {
        "version": 1,
        "jurisdictions": [
            {
                "id": j.id,
                "name": _text(j.name, j.names),
                "level": j.level,
                **({"parent": j.parent} if j.parent else {}),
            }
            for j in d.jurisdictions.values()
        ],
        "organisations": [
            {
                "id": o.id,
                "name": _text(o.name, o.names),
                "kind": o.kind,
                "jurisdiction": o.jurisdiction,
                **({"keys": [_key(k) for k in d.keys_of(o.id)]} if d.keys_of(o.id) else {}),
                **(
                    {"webhooks": [_hook(w) for w in d.webhooks_of(o.id)]}
                    if d.webhooks_of(o.id)
                    else {}
                ),
            }
            for o in d.organisations.values()
        ],
        "roles": [
            {
                "id": r.id,
                "organisation": r.organisation,
                "kind": r.kind,
                "title": _text(r.title, r.titles),
            }
            for r in d.roles.values()
        ],
        "contacts": [
            {
                "id": c.id,
                "name": c.name,
                "organisation": c.organisation,
                "language": c.language,
                **({"email": c.email} if c.email else {}),
                **({"keys": [_key(k) for k in d.keys_of(c.id)]} if d.keys_of(c.id) else {}),
                **(
                    {"webhooks": [_hook(w) for w in d.webhooks_of(c.id)]}
                    if d.webhooks_of(c.id)
                    else {}
                ),
            }
            for c in d.contacts.values()
        ],
        "assignments": [
            {
                "role": a.role,
                "contact": a.contact,
                "as": a.kind.value,
                **_period(a.period),
                **({"absences": [_period(p) for p in a.absences]} if a.absences else {}),
            }
            for a in d.assignments
        ],
    }


def jurisdiction_tree(directory: Directory) -> list[dict[str, Any]]:
    """The jurisdiction hierarchy as nested nodes, countries first, children by name."""

    def node(jid: str) -> dict[str, Any]:
        j = directory.jurisdictions[jid]
        kids = sorted(directory.children(jid), key=lambda c: directory.jurisdictions[c].name)
        return {"id": j.id, "name": j.name, "level": j.level, "children": [node(c) for c in kids]}

    roots = sorted(
        (j for j in directory.jurisdictions.values() if j.parent is None), key=lambda j: j.name
    )
    return [node(j.id) for j in roots]


def tree_text(directory: Directory) -> str:
    lines: list[str] = []

    def walk(nodes: list[dict[str, Any]], depth: int) -> None:
        for n in nodes:
            roles = directory.roles_in(n["id"])
            suffix = f"  ({len(roles)} roles)" if roles else ""
            lines.append(f"{'  ' * depth}{n['name']} [{n['level']}, {n['id']}]{suffix}")
            walk(n["children"], depth + 1)

    walk(jurisdiction_tree(directory), 0)
    counts = (
        f"{len(directory.jurisdictions)} jurisdictions, {len(directory.organisations)} organisations, "
        f"{len(directory.roles)} roles, {len(directory.contacts)} contacts, "
        f"{len(directory.assignments)} assignments, {len(directory.keys)} keys"
    )
    return "\n".join([*lines, "", counts])


@dataclass(frozen=True)
class DirectoryDiff:
    added: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    # (section, id) -> what changed inside a changed entry, one line per field
    details: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        out: list[str] = []
        for sign, part in (("+", self.added), ("-", self.removed), ("~", self.changed)):
            for section, ids in part.items():
                for i in ids:
                    out.append(f"{sign} {section[:-1]} {i}")
                    out += [f"    {d}" for d in self.details.get((section, i), [])]
        return out

    def summary(self) -> str:
        def count(part: dict[str, list[str]]) -> int:
            return sum(len(v) for v in part.values())

        return f"{count(self.added)} added, {count(self.removed)} removed, {count(self.changed)} changed"


def _identity(section: str, item: dict[str, Any]) -> str:
    if section == "assignments":
        return f"{item['contact']}@{item['role']}:{item['as']}:{item['from']}"
    return str(item["id"])


def diff(old: Directory, new: Directory) -> DirectoryDiff:
    """What applying ``new`` over ``old`` adds, removes and changes, section by section."""
    before, after = to_document(old), to_document(new)
    result = DirectoryDiff()
    for section in ("jurisdictions", "organisations", "roles", "contacts", "assignments"):
        a = {_identity(section, i): i for i in before[section]}
        b = {_identity(section, i): i for i in after[section]}
        for target, ids in (
            (result.added, sorted(b.keys() - a.keys())),
            (result.removed, sorted(a.keys() - b.keys())),
            (result.changed, sorted(k for k in a.keys() & b.keys() if a[k] != b[k])),
        ):
            if ids:
                target[section] = ids
        for k in result.changed.get(section, []):
            result.details[(section, k)] = field_changes(a[k], b[k])
    return result


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two versions of one entry: ``field: old -> new``; for a list of
    entries with ids (keys, webhooks), each one added, removed or changed."""
    out = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):  # a name by language: each one
            out += [f"{name}.{change}" for change in field_changes(a, b)]
        elif _with_ids(a) and _with_ids(b):
            before = {i["id"]: i for i in a or []}
            after = {i["id"]: i for i in b or []}
            out += [f"{name}: + {i}" for i in sorted(after.keys() - before.keys())]
            out += [f"{name}: - {i}" for i in sorted(before.keys() - after.keys())]
            for i in sorted(before.keys() & after.keys()):
                if before[i] != after[i]:
                    inner = "; ".join(field_changes(before[i], after[i]))
                    out.append(f"{name}: ~ {i} ({inner})")
        else:
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return out


def _with_ids(value: Any) -> bool:
    return value is None or (
        isinstance(value, list) and all(isinstance(i, dict) and "id" in i for i in value)
    )


def _short(value: Any, limit: int = 80) -> str:
    text = "(none)" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# libyaml's emitter where PyYAML has it (its wheels do), about 3.6 times faster — `liaison init
# --demo` spent 2.5 s writing the demo directory's 700 entries. The same bytes as the pure-Python
# SafeDumper for printable text; for an emoji, a control or a line-break character the two write
# different escapes of one value, which reads back the same (tests/unit/test_directory_yaml.py).
_SafeDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _FlowDumper(_SafeDumper):  # type: ignore[misc]
    """One line per entry: a directory file stays readable and diffs well under version control."""


_FlowDumper.add_representer(
    dict,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True),
)


def to_yaml(document: dict[str, Any], header: str = "") -> str:
    """Write a directory document in the one-entry-per-line style of the shipped files."""
    out = (
        [header.rstrip("\n"), f"version: {document['version']}"]
        if header
        else [f"version: {document['version']}"]
    )
    for section in ("jurisdictions", "organisations", "roles", "contacts", "assignments"):
        out.append(f"\n{section}:" if document.get(section) else f"\n{section}: []")
        for item in document.get(section, []):
            line = yaml.dump(
                item, Dumper=_FlowDumper, allow_unicode=True, sort_keys=False, width=10_000
            )
            out.append(f"  - {line.strip()}")
    return "\n".join(out) + "\n"
