"""Typed settings, read once at the entry point and passed down.

Every field can be set by an environment variable ``LEDGER_<FIELD>`` (upper case) or a command-line
flag; a flag wins. An unknown ``LEDGER_*`` variable or a value that does not parse stops start-up
with a message naming it, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, get_type_hints

from ledger import logs, secrets

PREFIX: Final = "LEDGER_"
# Variables that belong to the test suite or tooling, not to the service.
_FOREIGN: Final = frozenset({"LEDGER_TEST_DATABASE_URL", "LEDGER_PG_BIN", "LEDGER_URL", "LEDGER_TOKEN"})


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    database_url: str | None = field(
        default=None, metadata={"help": "external PostgreSQL; unset: embedded server under data_dir"})
    data_dir: Path = field(default=Path(".ledger"), metadata={"help": "where the embedded PostgreSQL lives"})
    http_host: str = field(default="127.0.0.1", metadata={"help": "address the HTTP API binds"})
    http_port: int = field(default=8080, metadata={"help": "port the HTTP API binds"})
    max_body_bytes: int = field(default=1 << 20, metadata={"help": "largest accepted request body"})
    db_pool_size: int = field(default=10, metadata={"help": "PostgreSQL connections per process"})
    db_timeout: float = field(default=5.0, metadata={"help": "seconds before a database call counts as unavailable"})
    retry_after: int = field(default=2, metadata={"help": "Retry-After seconds sent with 503"})
    max_batch_events: int = field(default=5000, metadata={"help": "events per append transaction"})
    read_wait_timeout: float = field(default=10.0, metadata={"help": "seconds a read waits for the read models to reach the head before 504"})
    processes: str = field(default="multi", metadata={
        "help": "ledger serve: 'multi' runs the API, the projector and the applier as supervised processes "
                "(docs/architecture.md); 'single' runs them on one event loop (debugging)"})
    wait_timeout_max: float = field(default=300.0, metadata={"help": "longest timeout a GET /v1/deployments/{name}?wait=healthy may ask for, seconds"})
    projector: bool = field(default=True, metadata={"help": "run the projector in this process"})
    applier: bool = field(default=True, metadata={"help": "run the applier in this process"})
    applier_concurrency: int = field(default=32, metadata={"help": "targets applied at once"})
    apply_timeout: float = field(default=30.0, metadata={"help": "seconds per Kubernetes request"})
    backoff_cap: float = field(default=300.0, metadata={"help": "longest retry delay, seconds"})
    resync_interval: float = field(default=180.0, metadata={"help": "seconds between drift checks (resyncs)"})
    backoff_base: float = field(default=1.0, metadata={"help": "first retry delay, seconds; doubles per attempt up to backoff_cap"})
    claim_interval: float = field(default=2.0, metadata={"help": "seconds between applier claim rounds (takeover delay)"})
    sse_heartbeat: float = field(default=15.0, metadata={"help": "seconds between SSE heartbeats"})
    source_uri: str = field(default="urn:deployment-ledger", metadata={"help": "CloudEvents source"})
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    log_format: str = field(default="auto", metadata={
        "help": "json, text, or auto: text on a terminal, JSON otherwise (docs/operations.md, Logs)"})
    admin_token: str | None = field(
        default=None, repr=False,
        metadata={"help": "the admin token (at least 32 characters; for containers); unset: one is issued "
                          "on first start and written to <data dir>/admin.token"})
    metrics_public: bool = field(default=False, metadata={"help": "serve /metrics without a token"})
    credentials: Path | None = field(default=None, metadata={
        "help": "the operator's cluster credentials file (YAML; reloaded when it changes); "
                "unset: credentials.yaml in the data directory, if present"})
    tls_cert: Path | None = field(default=None, metadata={"help": "PEM certificate (chain): serve HTTPS (with tls_key)"})
    tls_key: Path | None = field(default=None, metadata={"help": "PEM private key of tls_cert"})

    expensive_concurrency: int = field(default=4, metadata={
        "help": "expensive requests (replay /v1/state, /v1/verify, /v1/feed pages, live catch-up reads) "
                "served at once per process; they get a PostgreSQL pool of this size of their own"})
    expensive_wait: float = field(default=1.0, metadata={
        "help": "seconds an expensive request waits for a turn before 503 + Retry-After"})
    expensive_idle_exit: float = field(default=5.0, metadata={
        "help": "seconds a lane worker process (replays and verifies run in them, at idle CPU priority) "
                "stays idle before it exits and its memory goes back to the system"})
    client_expensive_limit: int = field(default=2, metadata={
        "help": "expensive requests one token (or client address) may run at once; 429 past it"})
    client_stream_limit: int = field(default=8, metadata={
        "help": "SSE streams (/v1/feed/live) one token (or client address) may hold open; 429 past it"})
    sse_send_buffer: int = field(default=16 * 1024, metadata={
        "help": "SO_SNDBUF of an SSE connection, bytes (the kernel doubles it)"})
    sse_queue_bytes: int = field(default=64 * 1024, metadata={
        "help": "bytes of frames one SSE subscriber may have queued in the service"})
    sse_write_timeout: float = field(default=10.0, metadata={
        "help": "seconds a write to an SSE subscriber may wait for the client before it is cut off (overflow)"})
    max_connections: int = field(default=0, metadata={
        "help": "open client connections at most; more are answered 503 and closed; "
                "0: the open-file limit minus fd_reserve"})
    fd_reserve: int = field(default=256, metadata={
        "help": "file descriptors kept free of client connections (database pools and dedicated "
                "connections, the embedded PostgreSQL's clients, log and data files)"})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_HINTS: Final = get_type_hints(Settings)


def _parse(name: str, raw: str) -> Any:
    hint = _HINTS[name]
    target = str(hint)
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(raw)
        if "Path" in target:
            return Path(raw) if raw else None
        if "None" in target:
            return raw or None
        return raw
    except ValueError as exc:
        raise SettingsError(f"setting {name} ({PREFIX}{name.upper()}): {raw!r} is not valid: {exc}") from exc


def load(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    env = os.environ if env is None else env
    names = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(PREFIX) or key in _FOREIGN:
            continue
        name = key[len(PREFIX):].lower()
        if name not in names:
            raise SettingsError(f"unknown setting {key}; known: " + ", ".join(
                PREFIX + n.upper() for n in sorted(names)))
        values[name] = _parse(name, raw)
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in names:
            raise SettingsError(f"unknown setting {name}")
        values[name] = _parse(name, value) if isinstance(value, str) else value
    settings = Settings(**values)
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"setting log_level: {settings.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    if settings.processes not in ("multi", "single"):
        raise SettingsError(f"setting processes ({PREFIX}PROCESSES): {settings.processes!r} is not multi or single")
    if settings.log_format not in logs.FORMATS:
        raise SettingsError(f"setting log_format ({PREFIX}LOG_FORMAT): {settings.log_format!r} is not one of "
                            + ", ".join(logs.FORMATS))
    if settings.admin_token is not None and len(settings.admin_token) < secrets.MIN_OPERATOR_LENGTH:
        raise SettingsError(f"setting admin_token ({PREFIX}ADMIN_TOKEN) must be at least "
                            f"{secrets.MIN_OPERATOR_LENGTH} characters of random text (e.g. `openssl rand -base64 32`)")
    if not 0 < settings.http_port < 65536 and settings.http_port != 0:
        raise SettingsError(f"setting http_port: {settings.http_port} is out of range")
    for name in ("expensive_concurrency", "client_expensive_limit", "client_stream_limit", "sse_send_buffer",
                 "sse_queue_bytes"):
        if getattr(settings, name) < 1:
            raise SettingsError(f"setting {name} ({PREFIX}{name.upper()}) must be at least 1")
    for name in ("max_connections", "fd_reserve", "expensive_wait", "expensive_idle_exit"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"setting {name} ({PREFIX}{name.upper()}) must not be negative")
    if settings.sse_write_timeout <= 0:
        raise SettingsError(f"setting sse_write_timeout ({PREFIX}SSE_WRITE_TIMEOUT) must be more than 0")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingsError("settings tls_cert and tls_key (LEDGER_TLS_CERT, LEDGER_TLS_KEY) go together: "
                            "give both to serve HTTPS, or neither")
    return settings
