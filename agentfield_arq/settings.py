"""Settings: one frozen Struct, read from `AGENTFIELD_ARQ_*` variables by entry points only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from agentfield_arq.errors import ConfigurationError

ENV_PREFIX = "AGENTFIELD_ARQ_"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every tunable of the control plane. Field `x` is read from `AGENTFIELD_ARQ_X`."""

    # Redis. Empty means: start the embedded valkey-server (run command) in `data_dir`.
    redis_url: str = ""
    key_prefix: str = "af"
    data_dir: str = ".agentfield-arq"

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    public_url: str = ""
    max_body_bytes: int = 1_048_576
    batch_max_ids: int = 1000
    sync_timeout_s: float = 90.0

    # Executions.
    retention_s: int = 86_400
    execution_deadline_s: float = 3600.0
    stream_maxlen: int = 10_000

    # Workers.
    workers: int = 2
    worker_concurrency: int = 32
    worker_poll_delay_s: float = 0.05
    agent_timeout_s: float = 30.0
    max_result_bytes: int = 10_485_760
    agent_max_attempts: int = 4
    agent_retry_base_s: float = 1.0
    agent_retry_max_s: float = 30.0
    sweep_interval_s: int = 5
    max_job_tries: int = 20

    # Nodes.
    node_lease_s: float = 30.0

    log_level: str = "INFO"

    @property
    def resolved_public_url(self) -> str:
        """The URL agents use to call back; defaults to the API's own address."""
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def job_timeout_s(self) -> float:
        """An arq job never outlives its agent call by more than a small margin."""
        return self.agent_timeout_s + 2.0

    @property
    def recovery_bound_s(self) -> float:
        """How long a job held by a SIGKILLed worker waits before another worker takes it.

        arq keeps its in-progress lock for the job timeout plus 10 s; the poll delay adds to it.
        """
        return self.job_timeout_s + 10.0 + self.worker_poll_delay_s


_FIELDS: dict[str, Any] = {f.name: f.type for f in msgspec.structs.fields(Settings)}


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from `AGENTFIELD_ARQ_*` variables; unknown or malformed ones fail loudly."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        field = name[len(ENV_PREFIX) :].lower()
        if field not in _FIELDS:
            raise ConfigurationError(f"unknown setting {name}")
        raw[field] = value
    raw.update(overrides)
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"invalid setting: {_name_in(str(exc))}") from exc
    _check(settings)
    return settings


def _name_in(message: str) -> str:
    """Rewrite msgspec's `$.field` path into the environment variable's name."""
    if "`$." in message:
        head, _, rest = message.partition("`$.")
        field, _, tail = rest.partition("`")
        return f"{head}{ENV_PREFIX}{field.upper()}{tail}"
    return message


def _check(settings: Settings) -> None:
    positive = (
        "max_body_bytes",
        "batch_max_ids",
        "sync_timeout_s",
        "retention_s",
        "execution_deadline_s",
        "stream_maxlen",
        "worker_concurrency",
        "agent_timeout_s",
        "max_result_bytes",
        "agent_max_attempts",
        "sweep_interval_s",
        "max_job_tries",
        "node_lease_s",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"invalid setting: {ENV_PREFIX}{name.upper()} must be > 0")
    if not 1 <= settings.sweep_interval_s <= 59:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}SWEEP_INTERVAL_S must be 1..59")
    if settings.max_job_tries < settings.agent_max_attempts:
        raise ConfigurationError(
            f"invalid setting: {ENV_PREFIX}MAX_JOB_TRIES must be >= {ENV_PREFIX}AGENT_MAX_ATTEMPTS"
        )
