"""`liaison trust`: administrators make a root, sign bindings in turn, rotate, as processes."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_cli


def keygen(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pem"
    assert run_cli("keygen", "--type", "ed25519", "--out", path).returncode == 0
    return path


def test_two_administrators_sign_in_turn_and_rotate_the_root(
    demo_dir: Path, tmp_path: Path
) -> None:
    a, b, c = (keygen(tmp_path, n) for n in "abc")
    b_public = tmp_path / "b.json"
    shown = run_cli("trust", "pubkey", "--key", b)
    assert shown.returncode == 0, shown.stderr
    b_public.write_text(shown.stdout)
    root = tmp_path / "root.json"
    made = run_cli(
        "trust",
        "init-root",
        "--key",
        a,
        "--public-key",
        b_public,
        "--threshold",
        "2",
        "--out",
        root,
    )
    assert made.returncode == 0, made.stderr
    # B signs the root on their own machine; then A and B sign the bindings, one after the other.
    assert run_cli("trust", "sign", root, "--key", b).returncode == 0
    bindings = tmp_path / "bindings.json"
    directory = demo_dir / "directory.yaml"
    signed = run_cli(
        "trust", "sign-bindings", directory, "--root", root, "--key", a, "--out", bindings
    )
    assert signed.returncode == 0, signed.stderr
    half = run_cli("trust", "verify", bindings, "--root", root)
    assert half.returncode == 1
    assert half.stderr.strip() == "liaison: the key bindings are not signed by the root's threshold"
    assert run_cli("trust", "sign", bindings, "--key", b).returncode == 0
    ok = run_cli("trust", "verify", bindings, "--root", root)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: key bindings version 1 (")

    # Rotation: C replaces A; the new root needs A and B (old threshold) and B and C (its own).
    c_public = tmp_path / "c.json"
    c_public.write_text(run_cli("trust", "pubkey", "--key", c).stdout)
    rotated = tmp_path / "2.root.json"
    args = (
        "trust",
        "rotate-root",
        "--root",
        root,
        "--key",
        b,
        "--key",
        c,
        "--threshold",
        "2",
        "--out",
        rotated,
    )
    assert run_cli(*args).returncode == 0
    refused = run_cli("trust", "verify", bindings, "--root", root, "--rotation", rotated)
    assert refused.returncode == 1 and "not signed by the current root" in refused.stderr
    assert run_cli("trust", "sign", rotated, "--key", a).returncode == 0
    again = run_cli(
        "trust",
        "sign-bindings",
        directory,
        "--root",
        rotated,
        "--key",
        b,
        "--key",
        c,
        "--out",
        bindings,
    )
    assert again.returncode == 0 and "version 2" in again.stdout
    ok = run_cli("trust", "verify", bindings, "--root", root, "--rotation", rotated)
    assert ok.returncode == 0, ok.stderr
    assert "version 2" in ok.stdout and "under root version 2" in ok.stdout


def test_a_bad_expiry_is_one_line_and_exit_1(tmp_path: Path) -> None:
    a = keygen(tmp_path, "a")
    result = run_cli(
        "trust",
        "init-root",
        "--key",
        a,
        "--threshold",
        "1",
        "--expires",
        "soon",
        "--out",
        tmp_path / "r.json",
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "liaison: --expires: give a number of days, e.g. 365d (not 'soon')"
    )
