"""Escrow custody: attacker = the broker's own host (a stolen disk, a copy of the data directory,
THREATS.md), who wants the escrow private key to open every notice's escrow wrap.

After `liaison init` no file of the data directory holds a loadable escrow private key: it is
sealed under a KEK kept outside (DIR.kek, or a reference the operator gives). The broker starts
only with the KEK, or with a threshold of custodians' SLIP-39 shares, and then escalation (which
unwraps the escrow wrap) works; with one share fewer, or the KEK of before a re-split, it refuses
with one line.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from broker.clock import FrozenClock
from broker.config import load_settings
from broker.crypto import escrow
from broker.http.keys import ESCALATION
from broker.service.custody import kek_file_for, load_escrow_key
from tests.integration.intake_support import example, running_broker
from tests.support import LIAISON, free_port, run_cli

MAYOR, PCVE = "mk-kumanovo-mayor", "mk-kumanovo-pcve"


def _private_keys_in(path: Path) -> list[bytes]:
    """Every X25519 public key that some file of ``path`` yields without a password."""
    found = []
    for file in (p for p in path.rglob("*") if p.is_file()):
        data = file.read_bytes()
        loaders = (
            lambda d: serialization.load_pem_private_key(d, password=None),
            lambda d: serialization.load_der_private_key(d, password=None),
            lambda d: x25519.X25519PrivateKey.from_private_bytes(d.strip()),
        )
        for load in loaders:
            try:
                key = load(data)
            except (ValueError, TypeError):
                continue
            if isinstance(key, x25519.X25519PrivateKey):
                found.append(key.public_key().public_bytes_raw())
    return found


def _serve_refuses(data: Path, env: dict[str, str]) -> str:
    """Run `liaison serve` expecting it to refuse to start; its one line of stderr."""
    result = subprocess.run(
        [*LIAISON, "serve", "--data", str(data), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={**os.environ, "LIAISON_LOGGING_FORMAT": "json", **env},
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liaison: "), result.stderr
    return lines[0]


def test_after_init_no_file_in_the_data_directory_yields_the_escrow_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_cli("init", data)
    assert result.returncode == 0, result.stderr
    kek_file = kek_file_for(data)
    assert kek_file.parent == tmp_path  # beside the data directory, not in it
    assert kek_file.stat().st_mode & 0o777 == 0o600
    assert f'escrow_kek = "file:{kek_file}"' in (data / "liaison.toml").read_text()
    sealed = (data / "keys" / "broker-escrow.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in sealed
    assert _private_keys_in(data) == []  # nothing loads as an X25519 private key without the KEK
    kek = escrow.parse_kek(kek_file.read_bytes(), source="test")
    opened = serialization.load_pem_private_key(sealed, password=kek)  # OpenSSL-standard format
    assert isinstance(opened, x25519.X25519PrivateKey)
    settings = load_settings(data, {})
    assert load_escrow_key(settings, {}).public_raw == opened.public_key().public_bytes_raw()


def test_the_broker_refuses_to_start_without_the_kek_or_with_a_wrong_one(demo_dir: Path) -> None:
    line = _serve_refuses(demo_dir, {"LIAISON_KEYS_ESCROW_KEK": ""})
    assert "keys.escrow_kek" in line and "not set" in line
    wrong = escrow.kek_text(escrow.new_kek()).strip()
    line = _serve_refuses(demo_dir, {"LIAISON_KEYS_ESCROW_KEK": "env:THE_KEK", "THE_KEK": wrong})
    assert "does not open the escrow key" in line
    (demo_dir / "inside.kek").write_text(wrong)
    line = _serve_refuses(demo_dir, {"LIAISON_KEYS_ESCROW_KEK": "file:inside.kek"})
    assert "inside the data directory" in line


async def _escalates_to_the_mayor(demo_dir: Path, env: dict[str, str]) -> None:
    """Post, let the acknowledgement deadline pass: the mayor's wrap is made from escrow."""
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    url = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
    async with running_broker(demo_dir, url, clock=clock, env=env) as broker:
        async with broker.sender("mk-mvr", clock) as sender:
            notice_id = str((await sender.post_notice(example("returnee-repatriation"))).body["id"])
        clock.advance(timedelta(hours=25))
        assert (await broker.app[ESCALATION].tick(clock.now())).escalated == 1
        async with broker.recipient(MAYOR, clock) as client:
            verified = await client.read(notice_id)
        assert verified.notice["subject"] == example("returnee-repatriation")["subject"]


async def test_with_the_kek_the_broker_starts_and_escalation_unwraps_escrow(
    demo_dir: Path,
) -> None:
    await _escalates_to_the_mayor(demo_dir, {})


async def test_split_among_custodians_m_shares_start_it_and_m_minus_1_do_not(
    demo_dir: Path, tmp_path: Path
) -> None:
    old_kek = load_settings(demo_dir, {}).keys.escrow_kek
    shares = tmp_path / "shares"
    result = run_cli(
        "escrow",
        "split",
        "--data",
        demo_dir,
        *("--custodian", "ana", "--custodian", "boris", "--custodian", "chiara"),
        *("--threshold", "2", "--out", shares),
    )
    assert result.returncode == 0, result.stderr
    files = {name: shares / f"{name}.share" for name in ("ana", "boris", "chiara")}
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files.values())
    escrow_public = load_escrow_key(load_settings(demo_dir, {}), {}).public_raw  # shares named
    assert escrow_public not in _private_keys_in(demo_dir)  # the demo contacts' keys are here
    one = {"LIAISON_KEYS_ESCROW_SHARES": f"file:{files['ana']}"}
    line = _serve_refuses(demo_dir, one)
    assert "do not recover the KEK" in line
    assert "ana" not in line and files["ana"].read_text().split()[0] not in line
    # The KEK from before the split no longer opens the re-sealed key (a custodian who left).
    line = _serve_refuses(
        demo_dir, {"LIAISON_KEYS_ESCROW_SHARES": "", "LIAISON_KEYS_ESCROW_KEK": old_kek}
    )
    assert "does not open the escrow key" in line
    two = {
        "LIAISON_KEYS_ESCROW_SHARES": "env:SHARE_B,file:/nonexistent/ana.share,env:SHARE_C",
        "SHARE_B": files["boris"].read_text(),
        "SHARE_C": files["chiara"].read_text(),
    }
    await _escalates_to_the_mayor(demo_dir, two)
    # As written by the split, liaison.toml names the three share files: any two suffice.
    await _escalates_to_the_mayor(demo_dir, {})


def test_a_split_refuses_shares_inside_the_data_directory(demo_dir: Path) -> None:
    result = run_cli(
        "escrow", "split", "--data", demo_dir, "--custodian", "ana", "--threshold", "1",
        "--out", demo_dir / "shares",
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "inside the data directory" in result.stderr


@pytest.mark.parametrize("threshold", ["0", "1", "4"])
def test_a_split_refuses_an_impossible_threshold(
    demo_dir: Path, tmp_path: Path, threshold: str
) -> None:
    result = run_cli(
        "escrow", "split", "--data", demo_dir, "--custodian", "a", "--custodian", "b",
        "--custodian", "c", "--threshold", threshold, "--out", tmp_path / "s",
    )  # fmt: skip
    assert result.returncode != 0 and result.stderr.startswith("liaison: ")
    assert not (tmp_path / "s").exists()


def test_a_plaintext_escrow_key_is_refused_until_sealed(tmp_path: Path) -> None:
    from broker.crypto.keys import generate, write_private_key
    from broker.service.custody import set_key_setting

    data = tmp_path / "old"
    assert run_cli("init", data).returncode == 0
    # As an older `liaison init` left it: a plaintext PEM beside the database, no KEK setting.
    (data / "keys" / "broker-escrow.pem").unlink()
    write_private_key(data / "keys" / "broker-escrow.pem", generate("x25519"))
    set_key_setting(data, "escrow_kek", None)
    kek_file_for(data).unlink()
    assert "stored unencrypted" in _serve_refuses(data, {})
    line = _serve_refuses(
        data, {"LIAISON_KEYS_ESCROW_KEK": "env:K", "K": escrow.kek_text(escrow.new_kek())}
    )
    assert "stored unencrypted" in line and "liaison escrow seal" in line
    result = run_cli("escrow", "seal", "--data", data)
    assert result.returncode == 0, result.stderr
    assert _private_keys_in(data) == []
    assert load_escrow_key(load_settings(data, {}), {}).type == "x25519"


def test_init_can_seal_under_a_kek_the_operator_gives_by_reference(tmp_path: Path) -> None:
    data = tmp_path / "prod"
    kek = escrow.kek_text(escrow.new_kek())
    result = run_cli("init", data, "--escrow-kek", "env:MY_KEK", env={"MY_KEK": kek})
    assert result.returncode == 0, result.stderr
    assert not kek_file_for(data).exists()
    assert 'escrow_kek = "env:MY_KEK"' in (data / "liaison.toml").read_text()
    assert _private_keys_in(data) == []
    assert "MY_KEK is not set" in _serve_refuses(data, {})
    assert load_escrow_key(load_settings(data, {}), {"MY_KEK": kek}).type == "x25519"
    inside = run_cli("init", tmp_path / "x", "--escrow-kek", f"file:{tmp_path / 'x' / 'k'}")
    assert inside.returncode != 0 and "inside the data directory" in inside.stderr
    assert not (tmp_path / "x" / "liaison.toml").exists()
