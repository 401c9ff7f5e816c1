from pathlib import Path

import pytest

from broker.config import (
    load_settings,
    render_default_config,
    resolve_secret,
    resolved_database_url,
)
from broker.errors import ConfigError


def test_defaults_put_sqlite_and_policies_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'liaison.db'}"
    assert settings.policies_dir == tmp_path.resolve() / "policies"
    assert settings.limits.max_body_bytes == 262_144
    assert settings.limits.clock_skew_seconds == 300


def test_file_then_environment_override(tmp_path: Path) -> None:
    (tmp_path / "liaison.toml").write_text(
        "[server]\nport = 9001\n[limits]\nmax_body_bytes = 1000\n"
    )
    settings = load_settings(tmp_path, {"LIAISON_SERVER_PORT": "9100"})
    assert settings.server.port == 9100
    assert settings.limits.max_body_bytes == 1000


def test_the_written_default_config_loads(tmp_path: Path) -> None:
    (tmp_path / "liaison.toml").write_text(render_default_config(port=8123))
    settings = load_settings(tmp_path, {})
    assert settings.server.port == 8123
    assert settings.server.public_url == "http://127.0.0.1:8123"  # written, never from Host


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nprot = 1\n", "unknown key(s): prot"),
        ("[sever]\n", "unknown section(s): sever"),
        ("[server]\nport = 'x'\n", "expected an integer"),
        ("[limits]\nmax_body_bytes = -1\n", "must not be negative"),
        ("[limits]\ntoken_lifetime_seconds = 3600\n", "may not exceed 900"),
        ("[database]\nurl = 'postgresql://u:hunter2@db/liaison'\n", "give it by reference"),
        ("[server\n", "liaison.toml"),
        ("[metrics]\ntoken = 'hunter2'\n", "token must be given by reference"),
        ("[metrics]\nport = 8750\n", "port must differ from"),
        ("[server]\npublic_url = 'liaison.example.org'\n", "http:// or https:// URL"),
        ("[audit]\nrefusal_summary_seconds = 0\n", "at least 1"),
        ("[audit]\nscan_max_events = 0\n", "scan_max_events must be at least 1"),
    ],
)
def test_bad_config_is_refused_with_a_reason(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "liaison.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(tmp_path, {})


def test_password_never_appears_in_the_refusal(tmp_path: Path) -> None:
    (tmp_path / "liaison.toml").write_text("[database]\nurl = 'postgresql://u:hunter2@db/x'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {})
    assert "hunter2" not in str(caught.value)


def test_secrets_resolve_by_reference_only(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {})
    (tmp_path / "db-url").write_text("postgresql://u:pw@127.0.0.1/x\n")
    assert resolve_secret("file:db-url", settings, {}) == b"postgresql://u:pw@127.0.0.1/x\n"
    assert resolve_secret("env:DB", settings, {"DB": "s3cret"}) == b"s3cret"
    with pytest.raises(ConfigError, match="by reference"):
        resolve_secret("s3cret", settings, {})
    with pytest.raises(ConfigError, match="not set"):
        resolve_secret("env:MISSING", settings, {})


def test_database_url_by_reference_picks_the_async_driver(tmp_path: Path) -> None:
    (tmp_path / "liaison.toml").write_text("[database]\nurl = 'env:DB'\n")
    settings = load_settings(tmp_path, {})
    url = resolved_database_url(settings, {"DB": "postgresql://u:pw@127.0.0.1/x"})
    assert url == "postgresql+asyncpg://u:pw@127.0.0.1/x"


def test_the_example_production_config_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "liaison.example.toml"
    (tmp_path / "liaison.toml").write_text(example.read_text())
    settings = load_settings(tmp_path, {})
    url = resolved_database_url(
        settings, {"LIAISON_DB_URL": "postgresql://liaison:pw@db:5432/liaison"}
    )
    assert url == "postgresql+asyncpg://liaison:pw@db:5432/liaison"
    assert settings.logging.format == "json" and settings.database.pool_size == 10


def test_the_federation_client_certificate_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[federation\] tls_cert and tls_key go together"):
        load_settings(tmp_path, {"LIAISON_FEDERATION_TLS_CERT": "xk.pem"})
    settings = load_settings(
        tmp_path, {"LIAISON_FEDERATION_TLS_CERT": "xk.pem", "LIAISON_FEDERATION_TLS_KEY": "k.pem"}
    )
    assert (settings.federation.tls_cert, settings.federation.server_ca) == ("xk.pem", "")
