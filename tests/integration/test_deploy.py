"""The deployment files parse, agree with the code, and pass the checks a tool exists for here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
POLICIES = ROOT / "policies"


def test_compose_runs_two_brokers_behind_a_proxy_over_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "broker-a", "broker-b", "proxy"} <= set(services)
    for name in ("broker-a", "broker-b"):
        broker = services[name]
        assert broker["environment"]["LIAISON_DATABASE_URL"].startswith(
            "file:"
        )  # a secret by reference
        assert broker["read_only"] is True
    assert "broker-a:8750 broker-b:8750" in (DEPLOY / "Caddyfile").read_text()


def test_kubernetes_manifests_have_probes_and_secret_references() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "deployment.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["LIAISON_DB_URL"]["valueFrom"]
    assert env["LIAISON_DATABASE_URL"]["value"] == "env:LIAISON_DB_URL"
    assert any(d["kind"] == "Service" for d in documents)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "USER liaison" in text and "python:3.11-slim" in text
    assert text.rstrip().endswith('CMD ["serve", "--data", "/var/lib/liaison"]')


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    liaison = shutil.which("liaison") or str(
        Path(__file__).resolve().parents[2] / ".venv" / "bin" / "liaison"
    )
    unit = tmp_path / "liaison.service"
    unit.write_text(
        (DEPLOY / "liaison.service").read_text().replace("/opt/liaison/bin/liaison", liaison)
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return compose


def test_compose_restarts_every_service_and_checks_the_brokers_health() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
    for name in ("broker-a", "broker-b"):
        check = services[name]["healthcheck"]
        assert "/readyz" in " ".join(check["test"]) and check["start_period"]


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    return found.returncode == 0


@pytest.mark.skipif(
    not _docker_compose_works(), reason="`docker compose` (the Compose v2 plugin) is not installed"
)
def test_docker_compose_config_accepts_the_compose_file(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    (deploy / "secrets").mkdir(exist_ok=True)
    for name in ("db-password", "db-url", "escrow-kek"):
        (deploy / "secrets" / name).write_text("placeholder\n")
    result = subprocess.run(
        ["docker", "compose", "-f", str(deploy / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_caddy_retries_and_takes_a_dead_broker_out_passively() -> None:
    text = (DEPLOY / "Caddyfile").read_text()
    for directive in ("lb_try_duration", "fail_duration", "max_fails", "health_uri /readyz"):
        assert directive in text, directive
    assert "unhealthy_status" not in text  # a store outage's 503s must not bench every broker


def _validate(manifest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_kubernetes_manifests_validate_against_the_api_schemas(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    for manifest in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        result = _validate(manifest)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"  # the check can fail: a misspelt field is refused
    broken.write_text(
        (DEPLOY / "kubernetes" / "deployment.yaml").read_text().replace("mountPath:", "mountPth:")
    )
    assert _validate(broken).returncode != 0


def _policy_volume() -> dict[str, Any]:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "deployment.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    volume: dict[str, Any] = next(v for v in volumes if v["name"] == "policies")
    return volume


def _configmap_keys(policies: Path) -> dict[str, str]:
    """The ConfigMap that OPERATIONS.md's command makes: one flat key per file (kubectl's
    ``create configmap --from-file=DIR``, reproduced with kubectl when it is here)."""
    if shutil.which("kubectl") is not None:
        made = subprocess.run(
            [
                "kubectl",
                "create",
                "configmap",
                "liaison-policies",
                "--dry-run=client",
                "-o",
                "yaml",
                f"--from-file={policies}/",
                f"--from-file={policies}/channels/",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        data: dict[str, str] = yaml.safe_load(made.stdout)["data"]
        return data
    files = [*policies.glob("*.*"), *(policies / "channels").glob("*.yaml")]
    return {f.name: f.read_text() for f in files if f.is_file()}


def test_the_kubernetes_policy_mount_keeps_the_channels_folder(tmp_path: Path) -> None:
    """Mount the ConfigMap as the manifest's items say, then load it the way the broker does."""
    from broker.policy.load import load_policies

    keys = _configmap_keys(POLICIES)
    items = _policy_volume()["configMap"]["items"]
    mounted = tmp_path / "policies"
    for item in items:
        target = mounted / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(keys[item["key"]])  # a key the ConfigMap lacks fails here, as in a pod
    shipped = {"channels/" + p.name for p in (POLICIES / "channels").glob("*.yaml")}
    shipped |= {p.name for p in POLICIES.glob("*.cedar")}
    assert {item["path"] for item in items} == shipped  # every file of the folder, no other
    assert load_policies(mounted).hash == load_policies(POLICIES).hash


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_kubernetes_preparation_in_operations_md_runs(tmp_path: Path) -> None:
    """OPERATIONS.md's steps: a KEK made first, `init --escrow-kek file:`, then the Secret."""
    import base64
    import os

    from tests.support import run_cli

    kek = tmp_path / "escrow.kek"
    kek.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    data = tmp_path / "liaison-data"
    made = run_cli("init", data, "--public-url", "https://liaison.example.org",
                   "--escrow-kek", f"file:{kek}")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert not (tmp_path / "liaison-data.kek").exists()  # no KEK of its own beside the data
    secret = subprocess.run(
        ["kubectl", "create", "secret", "generic", "liaison-data", "--dry-run=client", "-o",
         "yaml", f"--from-file={data}/liaison.toml", f"--from-file={data}/keys/"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    keys = set(yaml.safe_load(secret.stdout)["data"])
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "deployment.yaml").read_text()))
    container = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]
    env = {e["name"]: e.get("value") for e in container["spec"]["containers"][0]["env"]}
    named = {env["LIAISON_KEYS_SIGNING_KEY"], env["LIAISON_KEYS_ESCROW_KEY"]}
    # The purpose key rings: the manifest, and the private key files it names beside it.
    manifest = env["LIAISON_KEYS_PURPOSE_KEYS"]
    rings = json.loads((data / "keys" / manifest).read_text())["keys"]
    ring_files = {entry["file"] for entries in rings.values() for entry in entries}
    assert manifest in keys and ring_files <= keys and len(ring_files) == 3
    flat = keys - {"liaison.toml", manifest} - ring_files
    assert {f"file:{k}" for k in flat} == named  # the flat names it reads
