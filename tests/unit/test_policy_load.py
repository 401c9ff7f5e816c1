"""Policy sets: the shipped one is valid; every kind of broken copy is refused at file:line."""

import shutil
from pathlib import Path

import pytest

from broker.errors import PolicyFileError
from broker.policy.cedar import split_statements
from broker.policy.load import load_policies
from tests.conftest import POLICIES

RETURNEE = "channels/returnee-repatriation.yaml"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("demo"))
    return target


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def problems(root: Path) -> list[str]:
    with pytest.raises(PolicyFileError) as caught:
        load_policies(root)
    return [str(p) for p in caught.value.problems]


def line_of(root: Path, name: str, needle: str) -> int:
    """The last line of ``name`` that contains ``needle``."""
    return max(
        i for i, line in enumerate((root / name).read_text().splitlines(), 1) if needle in line
    )


def test_shipped_policies_are_valid() -> None:
    policies = load_policies(POLICIES)
    assert set(policies.channels) == {
        "returnee-repatriation",
        "threat-assessment",
        "hate-incident",
        "information-request",
        "public-safety-alert",
    }
    assert policies.hash.startswith("sha256:") and len(policies.hash) == 71
    ids = [s.policy_id for s in policies.statements]
    assert len(ids) == len(set(ids)) and None not in ids


def test_the_hash_changes_with_any_file_and_only_then(copy: Path) -> None:
    before = load_policies(copy).hash
    assert load_policies(copy).hash == before
    edit(copy, "guards.cedar", "// Guards", "// Guards (edited)")
    assert load_policies(copy).hash != before


def test_yaml_syntax_error(copy: Path) -> None:
    edit(copy, RETURNEE, "retention_days: 365", "retention_days: [365")
    assert problems(copy)[0].startswith("policies/channels/returnee-repatriation.yaml:")
    assert "not valid YAML" in problems(copy)[0]


@pytest.mark.parametrize(
    ("old", "new", "needle", "reason"),
    [
        (
            "retention_days: 365",
            "retention_days: 365\nretension: 1",
            "retension",
            "unknown key ('retension' was unexpected)",
        ),
        (
            "marking: AMBER+STRICT",
            "marking: AMBER-STRICT",
            "marking:",
            "marking: 'AMBER-STRICT' is not one of",
        ),
        (
            "webhook: metadata",
            "webhook: ciphertext",
            "webhook:",
            "TLP:AMBER+STRICT allows webhooks to carry metadata only",
        ),
        (
            "marking: AMBER+STRICT",
            "marking: RED",
            "escalation:",
            "TLP:RED is for the named recipients only",
        ),
        ("id: returnee-repatriation", "id: returnees", "id: returnees", "must match its file name"),
        (
            "    scope: same\n  - rule: municipal-social-welfare",
            "    scope: same\n  - rule: municipal-pcve-focal-point",
            "rule: municipal-pcve-focal-point",
            "duplicate rule",
        ),
        (
            "    roles: [pcve-focal-point]\n",
            "",
            "rule: municipal-pcve-focal-point",
            "must name the roles it selects",
        ),
        (
            "required: [adults,",
            "required: [adultz, adults,",
            "required: [adultz",
            "required field 'adultz' is not declared",
        ),
        (
            "    adults: {type: integer,",
            "    name: {type: string}\n    adults: {type: integer,",
            "name: {type",
            "both declared and forbidden",
        ),
        (
            "    adults: {type: integer,",
            "    adults: {type: integr,",
            "adults: {type",
            "field 'adults'",
        ),
        (
            "ack_deadline_hours: 24\n",
            "",
            "escalation:",
            "an escalation chain needs ack_deadline_hours",
        ),
    ],
)
def test_broken_channel_is_refused_at_its_line(
    copy: Path, old: str, new: str, needle: str, reason: str
) -> None:
    edit(copy, RETURNEE, old, new)
    found = problems(copy)
    line = line_of(copy, RETURNEE, needle)
    assert any(p.startswith(f"policies/{RETURNEE}:{line}: ") and reason in p for p in found), found


def test_cedar_syntax_error_names_the_statement_line(copy: Path) -> None:
    edit(
        copy,
        "guards.cedar",
        "unless { principal.jurisdiction in resource.country };",
        "unless { principal.jurisdiction in };",
    )
    line = line_of(copy, "guards.cedar", '@id("guard/receive-within-country")')
    found = problems(copy)
    assert len(found) == 1 and found[0].startswith(f"policies/guards.cedar:{line}: Cedar syntax:")


def test_cedar_policy_without_id_is_refused(copy: Path) -> None:
    edit(copy, "access.cedar", '@id("access/sender-reads-own-status")\n', "")
    line = line_of(copy, "access.cedar", "// A sending organisation sees") + 1
    assert problems(copy) == [
        f'policies/access.cedar:{line}: every policy needs an @id("...") annotation'
    ]


def test_cedar_schema_violation_names_the_line(copy: Path) -> None:
    edit(
        copy,
        "access.cedar",
        'principal.role_kinds.contains("auditor")',
        'principal.rolez.contains("auditor")',
    )
    line = line_of(copy, "access.cedar", '@id("access/auditors-read-audit-log")')
    found = problems(copy)
    assert len(found) == 1 and found[0].startswith(
        f"policies/access.cedar:{line}: Cedar validation:"
    )
    assert "rolez" in found[0]


def test_duplicate_policy_ids_are_refused(copy: Path) -> None:
    edit(
        copy,
        "access.cedar",
        '@id("access/auditors-read-audit-log")',
        '@id("guard/receive-within-country")',
    )
    assert any("policy id 'guard/receive-within-country' already used" in p for p in problems(copy))


def test_unterminated_policy_at_end_of_file(copy: Path) -> None:
    (copy / "extra.cedar").write_text('@id("x")\npermit (principal, action, resource)\n')
    assert problems(copy) == [
        "policies/extra.cedar:2: incomplete policy at end of file (missing ';'?)"
    ]


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="policy directory not found"):
        load_policies(tmp_path / "nowhere")


def test_file_limits_are_enforced(copy: Path) -> None:
    with pytest.raises(PolicyFileError, match="over the limit"):
        load_policies(copy, max_file_bytes=100)
    with pytest.raises(PolicyFileError, match="policy files, over the limit of 2"):
        load_policies(copy, max_files=2)


def test_statement_splitter_ignores_semicolons_in_strings_and_comments() -> None:
    text = '// a; comment\n@id("a;b")\npermit (principal, action, resource)\nwhen { "x;" == "x;" };\n\n@id("c") forbid (principal, action, resource);'
    statements, rest = split_statements(text)
    assert [(s.policy_id, s.line) for s in statements] == [("a;b", 2), ("c", 6)]
    assert rest is None


def test_an_older_access_cedar_that_still_permits_administer_loads(copy: Path) -> None:
    """Data directories keep their own copy of the policies: an upgrade must not refuse them."""
    access = copy / "access.cedar"
    access.write_text(
        access.read_text() + '\n@id("access/local-operator-administers")\n'
        "permit (principal is Liaison::Operator, "
        'action == Liaison::Action::"administer", resource);\n'
    )
    assert "access/local-operator-administers" in {
        s.policy_id for s in split_statements(access.read_text())[0]
    }
    load_policies(copy)
