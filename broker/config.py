"""Settings: a frozen object built from ``DIR/liaison.toml`` and an environment mapping.

The caller passes the environment in (``os.environ`` in production, a dict in tests), so nothing
here reads global state. Secrets are never literal: a setting that holds one takes a reference,
``file:PATH`` (relative to the data directory) or ``env:NAME``, resolved by ``resolve_secret``.

The limits on what one client's requests can make the broker spend are named fields with their
defaults documented beside them. A few fixed bounds remain module constants beside the code
they guard:
``crypto/tokens.py`` ``MAX_TOKEN_BYTES`` (4,096: a bearer token or client assertion) and
``crypto/httpsig.py`` ``MAX_COMPONENTS`` (32: components one signature may cover); and two read
sizes that bound no total, ``service/audit.py`` ``SCAN_BATCH`` (1,000 events a read, within
``audit.scan_max_events``) and ``http/recipients.py`` ``STREAM_BACKLOG`` (500 deliveries a read
when a stream opens or resumes; it reads on until caught up). The default page sizes (inbox 50,
audit events 200) are constants too; their maxima are ``limits.inbox_page_max`` and
``audit.events_page_max``.

Environment overrides are ``LIAISON_<SECTION>_<KEY>``, e.g. ``LIAISON_SERVER_PORT=9000`` or
``LIAISON_LIMITS_MAX_BODY_BYTES=131072``.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker.errors import ConfigError

CONFIG_FILE = "liaison.toml"
MAX_WORKERS = 64  # processes; more than cores only adds contention on one database


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8750
    # The URL clients use to reach this broker; token audiences and links are built from it.
    public_url: str = ""
    # TLS: certificate chain and key (PEM files, relative to the data directory). Empty: plain HTTP.
    tls_cert: str = ""
    tls_key: str = ""
    # Mutual TLS for agency systems: with a client CA, agency endpoints require a client
    # certificate issued by it (recipients and browsers may connect without one).
    client_ca: str = ""
    # Worker processes serving the one port (`liaison serve --workers N`); 0: one per core.
    # Worker 0 runs the broker-wide jobs (escalation, retention, checkpoints, outbox).
    workers: int = 0


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    # Empty: SQLite file DIR/liaison.db (WAL, synchronous=FULL). Or postgresql://... ; a URL
    # with a password must be given by reference (env:NAME or file:PATH).
    url: str = ""
    pool_size: int = 5
    # SQLite: /readyz is false while less than this many bytes are free beside the database file
    # (a full disk refuses every post; the probe says so before the first refusal). 0: no check.
    min_free_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PolicySettings:
    # Empty: DIR/policies.
    dir: str = ""


@dataclass(frozen=True, slots=True)
class KeySettings:
    # The broker key, Ed25519 PKCS#8 PEM: signs for every purpose (access tokens, checkpoints,
    # v1a webhooks) that has no key ring of its own in purpose_keys (a directory made before
    # keys per purpose); see crypto/purpose_keys.py and `liaison keys`.
    signing_key: str = "file:keys/broker.pem"
    # The manifest of the per-purpose key rings (a path, not a secret: it lists public keys and
    # names the private key files beside it). Written by `liaison init` and `liaison keys rotate`.
    purpose_keys: str = "keys/purposes.json"
    # The broker's X25519 escrow key, used only to re-wrap for escalation and succession; an
    # encrypted PKCS#8 PEM, opened at start with the KEK below (never kept readable on disk).
    escrow_key: str = "file:keys/broker-escrow.pem"
    # The key-encryption key, by reference: env:NAME or file:/path outside the data directory
    # (32 random bytes, base64). `liaison init` writes one to DIR.kek beside the directory.
    escrow_kek: str = ""
    # Or the KEK split among custodians: SLIP-39 shares by reference, comma-separated
    # ("file:/media/a/share,env:SHARE_B"); the threshold travels in the shares.
    escrow_shares: str = ""


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 262_144  # bytes of one request body (413 beyond)
    max_header_bytes: int = 16_384  # bytes of one request header field
    clock_skew_seconds: int = 300  # accepted |now - created| of a signed request
    token_lifetime_seconds: int = 900  # access tokens, at most 15 minutes
    assertion_max_seconds: int = 300  # how far ahead a client assertion's exp may be
    max_recipients: int = 5_000  # recipients one notice may fan out to
    max_directory_bytes: int = 8_388_608  # size of a directory file
    max_policy_file_bytes: int = 1_048_576  # size of one policy or channel file
    max_policy_files: int = 500  # files in a policy directory
    inbox_page_max: int = 200  # items in one inbox page
    max_json_depth: int = 32  # nesting levels of a JSON body or token, checked before parsing


@dataclass(frozen=True, slots=True)
class OidcSettings:
    # Optional: trust tokens from an external OpenID Connect issuer at /v1/token. Empty: off.
    issuer: str = ""
    audience: str = ""
    jwks_file: str = ""  # the issuer's JWKS (JSON), relative to the data directory
    jwks_url: str = ""  # or fetched from here (https in production) at start and every hour
    contact_claim: str = "liaison_contact"  # the claim that names the Liaison contact id
    algorithms: str = "RS256,ES256,EdDSA"  # accepted algorithms, comma-separated
    jwks_max_bytes: int = 262_144  # bytes of the issuer's JWKS answer; a larger one is refused
    jwks_timeout_seconds: int = 10  # one JWKS fetch, body included; a slower issuer is refused


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    escalation_interval_seconds: int = 30  # how often deadlines and successions are checked
    stream_queue_events: int = (
        256  # events buffered per live connection; a slower reader is dropped
    )
    stream_heartbeat_seconds: int = 15
    # An open stream re-checks its token (expiry, key, assignments) this often, and at once
    # when the directory changes: a revoked key or an ended assignment closes it within seconds.
    stream_recheck_seconds: int = 5
    max_streams_per_contact: int = 8  # live streams one contact may hold open at once


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    timeout_seconds: int = 10  # one call; a receiver that hangs longer is retried later
    max_attempts: int = 8  # then the message is dead-lettered and an alert recorded
    backoff_seconds: int = 5  # first retry delay; doubles each attempt, with jitter
    max_backoff_seconds: int = 3600  # cap on any delay, Retry-After included
    concurrency: int = 16  # calls in flight at once: one slow receiver holds up no one else


@dataclass(frozen=True, slots=True)
class FederationSettings:
    # Mutual TLS towards peer brokers: the client certificate chain and key (PEM, relative to
    # the data directory) presented on every outgoing federation request (forwards, status
    # reports, add-checkpoint), and the CA a peer's https server certificate must chain to.
    # Empty CA: the system's trust store. Empty certificate: none is presented.
    tls_cert: str = ""
    tls_key: str = ""
    server_ca: str = ""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    # Empty host: no e-mail alerts.
    host: str = ""
    port: int = 25
    security: str = "starttls"  # starttls | tls | none
    username: str = ""
    password: str = ""  # by reference: env:NAME or file:PATH
    from_address: str = "liaison@localhost"
    timeout_seconds: int = 10


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    # How often due notices are shredded (and the store's history purged). A read after
    # expires_at answers 410 at once whatever this is; it bounds how long the bytes stay on disk.
    shred_interval_seconds: int = 10


@dataclass(frozen=True, slots=True)
class AuditSettings:
    checkpoint_interval_seconds: int = 60  # sign a checkpoint this often when the log has grown
    events_page_max: int = 1000  # events in one page of /v1/audit/events
    # Events examined for one page: past that (an auditor whose jurisdiction is a sparse part
    # of the log) the page ends early, with a cursor, so one request costs a bounded scan.
    scan_max_events: int = 20_000
    # Unauthenticated refusals are counted in memory and written as one auth.refused_summary
    # event per interval; only the first refusal of each source in an interval is written alone.
    refusal_summary_seconds: int = 60
    refusal_sources_max: int = 100  # distinct sources counted per interval; the rest as "other"
    # The log's name (C2SP tlog-checkpoint origin: a schema-less URL such as
    # "broker.example.org/liaison/audit"), in every signed checkpoint and the key name of its
    # signature. Empty: "liaison.invalid/audit/<checkpoint key fingerprint>", unique per key and
    # the name of every log written before this setting. Once checkpoints are signed under one
    # name a change is carried in exports (their "origins"), so set it before the log grows.
    origin: str = ""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    # /metrics is never on the public listener. Port 0: no metrics listener at all.
    host: str = "127.0.0.1"
    port: int = 0
    # Optional bearer token the scraper must send, by reference (file:PATH or env:NAME).
    token: str = ""


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "info"
    # auto: readable console on a terminal, JSON lines otherwise; or "json" / "console".
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    policies: PolicySettings = field(default_factory=PolicySettings)
    keys: KeySettings = field(default_factory=KeySettings)
    limits: Limits = field(default_factory=Limits)
    oidc: OidcSettings = field(default_factory=OidcSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @property
    def policies_dir(self) -> Path:
        return self._in_data_dir(self.policies.dir or "policies")

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'liaison.db'}"

    @property
    def public_url(self) -> str:
        scheme = "https" if self.server.tls_cert else "http"
        derived = f"{scheme}://{self.server.host}:{self.server.port}"
        return (self.server.public_url or derived).rstrip("/")

    def path(self, value: str) -> Path:
        """A path setting: absolute as given, else relative to the data directory."""
        return self._in_data_dir(value)

    def _in_data_dir(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.data_dir / path


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "policies": PolicySettings,
    "keys": KeySettings,
    "limits": Limits,
    "oidc": OidcSettings,
    "delivery": DeliverySettings,
    "audit": AuditSettings,
    "retention": RetentionSettings,
    "webhooks": WebhookSettings,
    "smtp": SmtpSettings,
    "federation": FederationSettings,
    "logging": LoggingSettings,
    "metrics": MetricsSettings,
}


def load_settings(data_dir: Path, environ: Mapping[str, str]) -> Settings:
    """Read ``data_dir/liaison.toml`` (optional) and apply ``LIAISON_*`` overrides."""
    data_dir = data_dir.resolve()
    raw: dict[str, Any] = {}
    path = data_dir / CONFIG_FILE
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from e
    sections = {
        name: _build_section(name, cls, raw.pop(name, {}), environ, path)
        for name, cls in _SECTIONS.items()
    }
    if raw:
        raise ConfigError(f"{path}: unknown section(s): {', '.join(sorted(raw))}")
    settings = Settings(data_dir=data_dir, **sections)
    _check(settings, environ)
    return settings


def _build_section(
    name: str, cls: type[Any], table: Any, environ: Mapping[str, str], path: Path
) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        env_key = f"LIAISON_{name}_{f.name}".upper()
        in_file = table.pop(f.name, None)
        if env_key in environ:
            values[f.name] = _coerce(hints[f.name], environ[env_key], env_key)
        elif in_file is not None:
            values[f.name] = _coerce(hints[f.name], in_file, f"[{name}] {f.name}")
    if table:
        raise ConfigError(f"{path}: [{name}] has unknown key(s): {', '.join(sorted(table))}")
    return cls(**values)


def _coerce(kind: Any, value: Any, where: str) -> Any:
    if isinstance(kind, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer")
        try:
            number = int(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from e
        if number < 0:
            raise ConfigError(f"{where}: must not be negative")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string")
    return value


def _check(settings: Settings, environ: Mapping[str, str]) -> None:
    url = settings.database.url
    if url and not url.startswith(("env:", "file:")) and urlsplit(url).password:
        raise ConfigError(
            "[database] url holds a password; give it by reference instead "
            '(url = "env:LIAISON_DB_URL" or url = "file:secrets/db-url")'
        )
    if settings.server.public_url and not settings.server.public_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigError("[server] public_url must be an http:// or https:// URL")
    if bool(settings.server.tls_cert) != bool(settings.server.tls_key):
        raise ConfigError("[server] tls_cert and tls_key go together")
    if bool(settings.federation.tls_cert) != bool(settings.federation.tls_key):
        raise ConfigError("[federation] tls_cert and tls_key go together")
    if settings.server.client_ca and not settings.server.tls_cert:
        raise ConfigError("[server] client_ca needs tls_cert and tls_key: mutual TLS is TLS first")
    if not 0 <= settings.server.workers <= MAX_WORKERS:
        raise ConfigError(f"[server] workers must be 0 (one per core) to {MAX_WORKERS}")
    if settings.smtp.security not in ("starttls", "tls", "none"):
        raise ConfigError("[smtp] security must be starttls, tls or none")
    if settings.smtp.password and not settings.smtp.password.startswith(("env:", "file:")):
        raise ConfigError("[smtp] password must be given by reference (env:NAME or file:PATH)")
    oidc = settings.oidc
    if oidc.issuer and not (oidc.audience and (oidc.jwks_file or oidc.jwks_url)):
        raise ConfigError("[oidc] issuer needs audience and jwks_file or jwks_url")
    if settings.logging.format not in ("auto", "json", "console"):
        raise ConfigError("[logging] format must be auto, json or console")
    if settings.limits.token_lifetime_seconds > 900:
        raise ConfigError("[limits] token_lifetime_seconds may not exceed 900 (15 minutes)")
    if settings.retention.shred_interval_seconds < 1:
        raise ConfigError("[retention] shred_interval_seconds must be at least 1")
    if settings.metrics.port and settings.metrics.port == settings.server.port:
        raise ConfigError("[metrics] port must differ from [server] port: never the public one")
    if settings.metrics.token and not settings.metrics.token.startswith(("env:", "file:")):
        raise ConfigError("[metrics] token must be given by reference (env:NAME or file:PATH)")
    if settings.audit.scan_max_events < 1:
        raise ConfigError("[audit] scan_max_events must be at least 1")
    if not _origin_ok(settings.audit.origin):
        raise ConfigError(
            "[audit] origin must be printable ASCII without spaces or '+', at most 200 characters "
            '(a schema-less URL such as "broker.example.org/liaison/audit")'
        )
    if settings.audit.refusal_summary_seconds < 1:
        raise ConfigError("[audit] refusal_summary_seconds must be at least 1")
    if settings.limits.assertion_max_seconds > 300:
        raise ConfigError("[limits] assertion_max_seconds may not exceed 300 (5 minutes)")


def _origin_ok(origin: str) -> bool:
    """A C2SP checkpoint origin that is also a signed-note key name (no space or '+')."""
    return origin == "" or (
        len(origin) <= 200 and all("!" <= c <= "~" for c in origin) and "+" not in origin
    )


def resolve_secret(reference: str, settings: Settings, environ: Mapping[str, str]) -> bytes:
    """Turn ``file:PATH`` or ``env:NAME`` into the secret's bytes; refuse anything literal."""
    if reference.startswith("file:"):
        path = settings._in_data_dir(reference.removeprefix("file:"))
        try:
            return path.read_bytes()
        except OSError as e:
            raise ConfigError(f"secret file {path} cannot be read: {e.strerror}") from e
    if reference.startswith("env:"):
        name = reference.removeprefix("env:")
        if name not in environ:
            raise ConfigError(f"secret environment variable {name} is not set")
        return environ[name].encode()
    raise ConfigError("a secret must be given by reference: file:PATH or env:NAME")


def resolved_database_url(settings: Settings, environ: Mapping[str, str]) -> str:
    """The database URL with references resolved and the async driver chosen."""
    url = settings.database_url
    if url.startswith(("env:", "file:")):
        url = resolve_secret(url, settings, environ).decode().strip()
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url.removeprefix(plain)
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError("[database] url must be a sqlite:// or postgresql:// URL")


def render_default_config(*, port: int = 8750, escrow_kek: str = "", public_url: str = "") -> str:
    """The liaison.toml that ``liaison init`` writes: every setting, commented with its default
    (the port and the escrow KEK's reference, which init chose, set), and ``server.public_url``
    set: the broker never takes its own URL from a request's Host."""
    public_url = public_url or f"http://127.0.0.1:{port}"
    lines = ["# Liaison configuration. Environment overrides: LIAISON_<SECTION>_<KEY>.", ""]
    for name, cls in _SECTIONS.items():
        lines.append(f"[{name}]")
        for f in dataclasses.fields(cls):
            default = f.default
            if name == "server" and f.name == "port":
                lines.append(f"port = {port}")
                continue
            if name == "keys" and f.name == "escrow_kek" and escrow_kek:
                lines.append(f"escrow_kek = {json.dumps(escrow_kek)}")  # a valid TOML string
                continue
            if name == "server" and f.name == "public_url":
                lines.append(f'public_url = "{public_url}"')
                continue
            value = f'"{default}"' if isinstance(default, str) else str(default)
            lines.append(f"# {f.name} = {value}")
        lines.append("")
    return "\n".join(lines)
