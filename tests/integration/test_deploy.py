"""The deployment files parse, agree with the code, and pass the checks a tool exists for here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


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
