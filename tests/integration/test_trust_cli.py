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


def test_sign_bindings_with_policies_signs_the_peers_roots_and_a_stale_file_is_noted(
    demo_dir: Path, tmp_path: Path
) -> None:
    import shutil
    from datetime import UTC, datetime

    import yaml

    from broker.trust import core
    from broker.trust.files import stale_bindings

    example = Path(__file__).resolve().parents[2] / "deploy" / "federation" / "peer-agreement.yaml"
    peer = yaml.safe_load(example.read_text())
    (demo_dir / "policies" / "peers").mkdir()
    shutil.copy(example, demo_dir / "policies" / "peers" / f"{peer['id']}.yaml")
    directory = demo_dir / "directory.yaml"
    # The demo's bindings were signed before the agreement: the operator is told, once.
    note = stale_bindings(demo_dir, directory, max_bytes=50_000_000)
    assert note is not None and "peers' directory roots signed in" in note
    out = tmp_path / "bindings.json"
    keys = demo_dir / "keys"
    signed = run_cli(
        "trust", "sign-bindings", directory, "--root", demo_dir / "trust" / "root.json",
        "--key", keys / "trust-admin-1.pem", "--key", keys / "trust-admin-2.pem",
        "--policies", demo_dir / "policies", "--out", out,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    root = core.parse_root((demo_dir / "trust" / "root.json").read_bytes())
    bindings = core.verify_bindings(root, out.read_bytes(), now=datetime.now(UTC))
    assert bindings.peer_roots == {peer["id"]: peer["directory_root"]}
    shutil.copy(out, demo_dir / "trust" / "bindings.json")
    assert stale_bindings(demo_dir, directory, max_bytes=50_000_000) is None
    # A policy directory that does not load is said as `policy check` says it; nothing written.
    broken = run_cli(
        "trust", "sign-bindings", directory, "--root", demo_dir / "trust" / "root.json",
        "--key", keys / "trust-admin-1.pem", "--policies", tmp_path / "nowhere",
        "--out", tmp_path / "not-written.json",
    )  # fmt: skip
    assert broken.returncode == 1 and "policy directory not found" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert not (tmp_path / "not-written.json").exists()
