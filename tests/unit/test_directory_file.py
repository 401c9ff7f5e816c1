"""The directory file: the demo loads; every kind of malformed file is refused at its line."""

from pathlib import Path

import pytest

from broker.directory.load import load_directory_file, parse_directory, parse_directory_text
from broker.directory.present import diff, to_document, to_yaml
from broker.domain.directory import Directory
from broker.errors import DirectoryFileError
from broker.sourcefile import parse_yaml
from tests.conftest import DEMO_DIRECTORY, NOW

KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
BASE = """version: 1
jurisdictions:
  - {id: mk, name: North Macedonia, level: country}
  - {id: mk-kumanovo, name: Kumanovo, level: municipality, parent: mk}
organisations:
  - {id: mk-kumanovo.municipality, name: Municipality of Kumanovo, kind: municipality, jurisdiction: mk-kumanovo}
roles:
  - {id: mk-kumanovo.mayor, organisation: mk-kumanovo.municipality, kind: mayor}
contacts:
  - {id: ana, name: Ana, organisation: mk-kumanovo.municipality, keys: [{id: ana-x, type: x25519, public: "%s"}]}
assignments:
  - {role: mk-kumanovo.mayor, contact: ana, from: 2026-01-01T00:00:00Z}
""".replace("%s", KEY)


def refused(text: str) -> list[str]:
    with pytest.raises(DirectoryFileError) as caught:
        parse_directory_text(text, "directory.yaml")
    return [str(p) for p in caught.value.problems]


def test_demo_directory_has_the_western_balkans() -> None:
    directory, _ = load_directory_file(DEMO_DIRECTORY, max_bytes=10_000_000)
    municipalities = [j for j in directory.jurisdictions.values() if j.level == "municipality"]
    assert len(municipalities) >= 20
    names = {j.name for j in municipalities}
    assert {"Sarajevo", "Kumanovo", "Danilovgrad", "Shkodër", "Brčko District"} <= names
    countries = {j.id for j in directory.jurisdictions.values() if j.level == "country"}
    assert countries == {"ba", "mk", "me", "al", "rs", "xk"}
    # Bosnia and Herzegovina: state -> entity -> canton -> municipality; Brčko directly under the state.
    sarajevo = "ba-fbih-ks-sarajevo"
    assert [j.level for j in directory.ancestors(sarajevo)] == ["canton", "entity", "country"]
    assert directory.jurisdictions["ba-brcko"].parent == "ba"


def test_a_valid_file_round_trips_through_its_document_form() -> None:
    directory = parse_directory(parse_yaml(BASE, "d.yaml"))
    again = parse_directory(parse_yaml(to_yaml(to_document(directory)), "again.yaml"))
    assert diff(directory, again).empty
    assert diff(Directory(), directory).summary() == "6 added, 0 removed, 0 changed"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("parent: mk}", "parent: mx}"), "directory.yaml:4: unknown parent jurisdiction 'mx'"),
        (
            ("level: municipality, parent: mk}", "level: municipality}"),
            "directory.yaml:4: jurisdiction 'mk-kumanovo' needs a parent",
        ),
        (
            ("level: country}", "level: country, parent: mk-kumanovo}"),
            "directory.yaml:3: country 'mk' cannot have a parent",
        ),
        (
            ("jurisdiction: mk-kumanovo}", "jurisdiction: nowhere}"),
            "directory.yaml:6: unknown jurisdiction 'nowhere'",
        ),
        (
            ("kind: mayor}", "kind: Mayor!}"),
            "directory.yaml:8: roles/0/kind: 'Mayor!' does not match",
        ),
        (
            ("{role: mk-kumanovo.mayor, contact: ana,", "{role: mk-kumanovo.mayr, contact: ana,"),
            "directory.yaml:12: unknown role 'mk-kumanovo.mayr'",
        ),
        (
            (
                "from: 2026-01-01T00:00:00Z}",
                "from: 2026-01-01T00:00:00Z, until: 2025-01-01T00:00:00Z}",
            ),
            "directory.yaml:12: 'until' must be after 'from'",
        ),
        (
            ("from: 2026-01-01T00:00:00Z}", "from: 2026-01-01T00:00:00}"),
            "directory.yaml:12: time '2026-01-01T00:00:00' needs a timezone",
        ),
        (
            (f'public: "{KEY}"', 'public: "AAAA"'),
            "directory.yaml:10: contacts/0/keys/0/public: 'AAAA' does not match",
        ),
        (
            (f'public: "{KEY}"', f'public: "{KEY}", private: "{KEY}"'),
            "directory.yaml:10: contacts/0/keys/0: unknown key ('private' was unexpected)",
        ),
        (("version: 1", "version: 2"), "directory.yaml:1: version: 1 was expected"),
        (
            ("  - {id: mk-kumanovo, name: Kumanovo", "  - {id: mk, name: Kumanovo"),
            "directory.yaml:4: duplicate jurisdiction id 'mk'",
        ),
        (("contacts:", "contacts: [\n"), "directory.yaml:11: not valid YAML"),
    ],
)
def test_malformed_files_are_refused_at_their_line(change: tuple[str, str], expected: str) -> None:
    problems = refused(BASE.replace(*change, 1))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_cycle_in_the_tree_is_refused() -> None:
    text = BASE.replace(
        "  - {id: mk-kumanovo, name: Kumanovo, level: municipality, parent: mk}",
        "  - {id: a, name: A, level: region, parent: b}\n  - {id: b, name: B, level: region, parent: a}\n"
        "  - {id: mk-kumanovo, name: Kumanovo, level: municipality, parent: mk}",
    )
    assert any("is its own ancestor" in p for p in refused(text))


def test_duplicate_yaml_keys_are_refused_not_overwritten() -> None:
    assert refused(BASE.replace("version: 1", "version: 1\nversion: 1")) == [
        "directory.yaml:2: duplicate key 'version'"
    ]


def test_a_reused_key_id_is_refused() -> None:
    text = BASE + "  \ncontacts_extra: 1\n"
    assert refused(text)  # unknown top-level section
    text = BASE.replace(
        f'keys: [{{id: ana-x, type: x25519, public: "{KEY}"}}]',
        f'keys: [{{id: ana-x, type: x25519, public: "{KEY}"}}, {{id: ana-x, type: ed25519, public: "{KEY}"}}]',
    )
    assert any("key id 'ana-x' is used 2 times" in p for p in refused(text))


def test_the_file_size_limit_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(BASE)
    with pytest.raises(DirectoryFileError, match="over the limit"):
        load_directory_file(path, max_bytes=100)


def test_deputy_stands_in_only_while_the_holder_is_absent() -> None:
    text = BASE.replace(
        "  - {role: mk-kumanovo.mayor, contact: ana, from: 2026-01-01T00:00:00Z}",
        "  - {role: mk-kumanovo.mayor, contact: ana, from: 2026-01-01T00:00:00Z,"
        " absences: [{from: 2026-11-20T00:00:00Z, until: 2026-12-01T00:00:00Z}]}\n"
        "  - {role: mk-kumanovo.mayor, contact: bo, as: deputy, from: 2026-01-01T00:00:00Z}",
    ).replace(
        "assignments:",
        "  - {id: bo, name: Bo, organisation: mk-kumanovo.municipality}\nassignments:",
    )
    directory = parse_directory(parse_yaml(text, "d.yaml"))
    acting, deputies = directory.acting_for("mk-kumanovo.mayor", NOW)
    assert [a.contact for a in acting] == ["bo"] and deputies
    acting, deputies = directory.acting_for("mk-kumanovo.mayor", NOW.replace(month=12, day=2))
    assert [a.contact for a in acting] == ["ana"] and not deputies
