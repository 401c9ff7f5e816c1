"""Names in eight languages (broker.titles): the file format, its refusals at file:line, the
fallback, the reader's language from Accept-Language, and what the key bindings sign."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from broker import locale
from broker.crypto.keys import generate
from broker.directory.load import parse_directory_text
from broker.directory.present import diff, to_document, to_yaml
from broker.domain.directory import Directory, Jurisdiction, KeyType, Organisation, PublicKey
from broker.errors import DirectoryFileError, PolicyFileError, TrustRefused
from broker.policy.load import load_policies
from broker.titles import CODES, from_accept_language, supported
from broker.trust import build, core
from tests.conftest import POLICIES
from tests.support import run_cli
from tests.unit.test_directory_file import BASE
from tests.unit.test_trust import LATER, NOW

RETURNEE = "channels/returnee-repatriation.yaml"


def test_the_codes_are_the_catalogs() -> None:
    assert tuple(locale.LANGUAGES) == CODES


def directory(text: str) -> list[str] | object:
    try:
        return parse_directory_text(text, "directory.yaml")
    except DirectoryFileError as e:
        return [str(p) for p in e.problems]


TRANSLATED = BASE.replace(
    "name: Kumanovo,", "name: {en: Kumanovo, mk: Куманово, sq: Kumanovë},"
).replace(
    "kind: mayor}",
    "kind: mayor, title: {mk: 'Градоначалник, Куманово', sq: 'Kryetari, Kumanovë'}}",
)


def test_a_name_in_several_languages_and_its_fallback() -> None:
    found = parse_directory_text(TRANSLATED, "directory.yaml")
    kumanovo = found.jurisdictions["mk-kumanovo"]
    assert (kumanovo.name_in("mk"), kumanovo.name_in("sq")) == ("Куманово", "Kumanovë")
    # A language the file lacks reads the default: English here, never another language's
    # text and never a transliteration (sr-Cyrl does not become the Macedonian Cyrillic).
    assert kumanovo.name_in("sr-Cyrl") == kumanovo.name_in("hr") == kumanovo.name == "Kumanovo"
    mayor = found.roles["mk-kumanovo.mayor"]
    # Without an English entry the file's first language is the default.
    assert mayor.title == "Градоначалник, Куманово"
    assert (mayor.title_in("sq"), mayor.title_in("en")) == ("Kryetari, Kumanovë", mayor.title)
    # Plain text is every language's; the document form writes back what the file said.
    assert (
        found.organisations["mk-kumanovo.municipality"].name_in("mk") == "Municipality of Kumanovo"
    )
    again = parse_directory_text(to_yaml(to_document(found)), "again.yaml")
    assert diff(found, again).empty and again.jurisdictions["mk-kumanovo"].names == kumanovo.names


def test_a_changed_translation_is_a_change_the_dry_run_shows() -> None:
    old = parse_directory_text(TRANSLATED, "directory.yaml")
    new = parse_directory_text(TRANSLATED.replace("mk: Куманово", "mk: Кумaново"), "d.yaml")
    changes = diff(old, new)
    assert changes.changed == {"jurisdictions": ["mk-kumanovo"]}
    assert changes.details[("jurisdictions", "mk-kumanovo")] == [
        "name.mk: 'Куманово' -> 'Кумaново'"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "name: Kumanovo,",
            "name: {en: Kumanovo,\n    mk-MK: Куманово},",
            "directory.yaml:5: unknown language tag 'mk-MK': use one of en, sq, bs, hr, "
            "sr-Latn, sr-Cyrl, cnr, mk",
        ),
        (
            "name: Municipality of Kumanovo,",
            "name: {en: Municipality of Kumanovo, sr: Opština Kumanovo},",
            "directory.yaml:6: unknown language tag 'sr' (write sr-Latn or sr-Cyrl)",
        ),
        ("name: Kumanovo,", "name: {},", "directory.yaml:4: jurisdictions/1/name: {}"),
    ],
)
def test_a_bad_language_tag_in_the_directory_is_refused_at_its_line(
    old: str, new: str, expected: str
) -> None:
    found = directory(BASE.replace(old, new, 1))
    assert isinstance(found, list) and any(p.startswith(expected) for p in found), found


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("demo"))
    return target


def refusals(root: Path) -> list[str]:
    with pytest.raises(PolicyFileError) as caught:
        load_policies(root)
    return [str(p) for p in caught.value.problems]


def replace(root: Path, old: str, new: str) -> int:
    path = root / RETURNEE
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return next(
        i for i, line in enumerate(path.read_text().splitlines(), 1) if new.split("\n")[-1] in line
    )


def test_the_shipped_channels_speak_eight_languages() -> None:
    channel = load_policies(POLICIES).channels["returnee-repatriation"]
    assert dict(channel.titles)["mk"] == "Репатријација на повратници"
    assert [c for c, _ in channel.titles] == list(CODES)
    labels = channel.labels.pick("sq")
    assert labels["fields"]["adults"] == "Të rritur"
    assert labels["values"]["psychosocial"] == "Psikosociale"
    assert channel.labels.pick("fr")["fields"]["adults"] == "Adults"  # the default
    # Labels are presentation: the body's JSON Schema never carries them.
    assert "labels" not in str(channel.payload_schema)


def test_a_bad_tag_or_an_unknown_field_label_is_refused_at_its_line(policies: Path) -> None:
    title = replace(policies, "sq: Riatdhesimi i të kthyerve", "al: Riatdhesimi i të kthyerve")
    field = replace(policies, "      adults: {en: Adults", "      adultz: {en: Adults")
    value = replace(policies, "      housing: {en: Housing", "      housin: {en: Housing")
    found = refusals(policies)
    file = f"policies/{RETURNEE}"
    assert f"{file}:{title}: unknown language tag 'al': use one of en, sq, bs" in " ".join(found)
    assert f"{file}:{field}: label for field 'adultz', not declared" in found
    assert f"{file}:{value}: label for enum value 'housin', not declared" in found


def test_policy_check_refuses_a_bad_language_tag_with_file_and_line(policies: Path) -> None:
    line = replace(
        policies, "      children: {en: Children,", "      children: {en: Children, xx: X,"
    )
    result = run_cli("policy", "check", policies)
    assert result.returncode == 1
    assert f"{RETURNEE}:{line}: unknown language tag 'xx'" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("mk", "mk"),
        ("sq-MK,mk;q=0.8", "sq"),
        ("de-DE, mk;q=0.5, sq;q=0.7", "sq"),
        ("sr", "sr-Latn"),
        ("sr-Cyrl-RS", "sr-Cyrl"),
        ("fr, *;q=0.1", None),
        ("mk;q=0", None),
        ("mk;q=x, sq", "sq"),
        ("", None),
        (None, None),
    ],
)
def test_the_readers_language_from_accept_language(
    header: str | None, expected: str | None
) -> None:
    assert from_accept_language(header) == expected
    assert supported("CNR") == "cnr"


def test_the_key_bindings_sign_the_senders_translated_name() -> None:
    """A name given in several languages is signed with the binding (``owner_names``); a plain
    one adds nothing, so bindings of a directory without translations are what they were."""
    names = (("en", "Ministry of Interior"), ("mk", "Министерство за внатрешни работи"))
    ministry, police = generate("ed25519"), generate("ed25519")
    found = Directory.build(
        [Jurisdiction("mk", "North Macedonia", "country")],
        [
            Organisation("mk-mvr", "Ministry of Interior", "ministry", "mk", names),
            Organisation("mk-bjb", "Public Security Bureau", "police", "mk"),
        ],
        [],
        [],
        [],
        [
            PublicKey("mvr-1", "mk-mvr", KeyType.ED25519, ministry.public_raw),
            PublicKey("bjb-1", "mk-bjb", KeyType.ED25519, police.public_raw),
        ],
    )
    admin = generate("ed25519")
    root = build.new_root([build.public_key(admin)], threshold=1, expires=LATER)
    build.sign(root, [build.signer(admin)])
    metadata = build.bindings_metadata(found, version=1, expires=LATER)
    entries = metadata.signed.unrecognized_fields[core.BINDINGS_FIELD]
    assert entries["mvr-1"]["owner_names"] == dict(names)
    assert "owner_names" not in entries["bjb-1"]
    build.sign(metadata, [build.signer(admin)])
    signed = build.to_bytes(metadata)
    bindings = core.verify_bindings(core.parse_root(build.to_bytes(root)), signed, now=NOW)
    assert bindings.keys["mvr-1"].owner_names == names and bindings.keys["bjb-1"].owner_names == ()
    # A translation changed after signing does not verify: it is inside what is signed.
    document = json.loads(signed)
    document["signed"][core.BINDINGS_FIELD]["mvr-1"]["owner_names"]["mk"] = (
        "Министерство за одбрана"
    )
    tampered = json.dumps(document).encode()
    with pytest.raises(TrustRefused):
        core.verify_bindings(core.parse_root(build.to_bytes(root)), tampered, now=NOW)


def test_a_translation_added_after_signing_is_noted_as_unsigned_names(tmp_path: Path) -> None:
    """`directory apply` notes stale bindings; a names-only change says so, not "refused"."""
    from broker.trust.files import TRUST_DIR, bindings_for, stale_bindings

    key = generate("ed25519").public_b64
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        BASE.replace(
            "jurisdiction: mk-kumanovo}",
            f"jurisdiction: mk-kumanovo, keys: [{{id: mun-1, type: ed25519, public: '{key}'}}]}}",
        )
    )
    translated = tmp_path / "translated.yaml"
    translated.write_text(
        plain.read_text().replace(
            "name: Municipality of Kumanovo,",
            "name: {en: Municipality of Kumanovo, mk: Општина Куманово},",
        )
    )
    (tmp_path / TRUST_DIR).mkdir()
    signed = bindings_for(plain, version=1, expires=LATER)
    (tmp_path / TRUST_DIR / "bindings.json").write_bytes(build.to_bytes(signed))
    assert stale_bindings(tmp_path, plain, max_bytes=1_000_000) is None
    note = stale_bindings(tmp_path, translated, max_bytes=1_000_000) or ""
    assert note.startswith("the names of 1 key owner(s) (e.g. mun-1) are not in "), note
