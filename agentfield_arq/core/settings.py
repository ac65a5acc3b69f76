"""Settings: one frozen Struct, read from `AGENTFIELD_ARQ_*` variables by entry points only."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from typing import Any

import msgspec

from agentfield_arq.core.routing import HOME, Routes, parse
from agentfield_arq.core.sentinel import sentinel_address
from agentfield_arq.kernel.errors import ConfigurationError

ENV_PREFIX = "AGENTFIELD_ARQ_"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every tunable of the control plane. Field `x` is read from `AGENTFIELD_ARQ_X`."""

    # Redis. Empty means: start the embedded valkey-server (run command) in `data_dir`.
    redis_url: str = ""
    key_prefix: str = "af"
    # Durability: an acknowledgement (execute's 202, a callback's or cancel's answer, a
    # worker's recorded outcome) waits until this many replicas hold the write (WAIT), up to
    # the timeout, else the API answers 503 not_replicated. 0: answer once the primary has it.
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    data_dir: str = ".agentfield-arq"
    # Every Redis client gives up on a connect, and on a command's answer, after these; a
    # stalled Redis then costs a request this long (a 503), not forever. Blocking reads
    # (XREAD BLOCK) wait their block time on top of the command timeout.
    redis_connect_timeout_s: float = 2.0
    redis_command_timeout_s: float = 3.0
    # More Redis deployments than one (core/routing.py): `code=url` separated by spaces, each
    # code one character of the ids' alphabet other than 0 (home, `redis_url`); the node ids
    # each takes (`node_id=code`, comma-separated; any other node goes home); the one a worker
    # process serves.
    redis_shards: str = ""
    redis_routes: str = ""
    worker_shard: str = HOME

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    public_url: str = ""
    max_body_bytes: int = 1_048_576
    batch_max_ids: int = 1000
    # batch-status answers a result over `batch_result_max_bytes` (or any result once the answer
    # holds `batch_max_bytes`) as `result_truncated` with its `result_size`; GET reads it whole.
    batch_result_max_bytes: int = 65_536
    batch_max_bytes: int = 4_194_304
    sync_timeout_s: float = 90.0
    # Hostile input: JSON nesting, the request line and headers (bytes, count), how long a
    # connection may take to send its headers and its body, how long an idle keep-alive
    # connection is kept, and how many connections are served at once.
    max_json_depth: int = 64
    max_header_bytes: int = 16_384
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_timeout_s: int = 5
    # 5,000 sync waiters on one API, each on its connection, beside the agents' callbacks.
    max_connections: int = 10_000
    # Host names (or IPs) the API answers besides its own loopback names; "*" for any. An API
    # on a loopback address answers only localhost, 127.0.0.1 and [::1] by default (DNS
    # rebinding); one on another address answers any Host unless this lists some.
    allowed_hosts: str = ""
    # The Retry-After (seconds) of a 503 queue_full.
    queue_retry_after_s: int = 5
    # Server-sent events: a comment line after this long without an event; lifecycle entries a
    # client may fall behind by before it is cut off.
    sse_heartbeat_s: float = 15.0
    sse_buffer: int = 1000

    # Auth. Off only by this explicit setting, and only on a loopback api_host. `admin_key`
    # (a key of `keys create` shape) is stored as an admin key when the API starts: how a
    # deployment provisions its first key from its secrets.
    auth: bool = True
    admin_key: str = ""
    # Per key, admin keys excepted: requests per second, and executions not yet ended (0: none).
    key_rate_limit: int = 1000
    key_max_active: int = 10_000
    # How long an API process trusts a stored key it has looked up (0: every request asks
    # Redis): a revoked key is refused on every replica at most this long after `keys revoke`.
    key_cache_s: float = 1.0
    # Node ids (comma-separated) whose callbacks are taken without proof when they come from
    # the node's own base_url address: the weaker guarantee, for agents that send no key.
    unproven_callback_nodes: str = ""

    # Executions.
    retention_s: int = 86_400
    # An Idempotency-Key names its first execution this long (at most the retention).
    idempotency_ttl_s: int = 86_400
    execution_deadline_s: float = 3600.0
    stream_maxlen: int = 10_000
    max_queued: int = 100_000

    # Workers.
    workers: int = 2
    worker_concurrency: int = 2000
    worker_poll_delay_s: float = 0.05
    # Redis connections one worker process opens at most; a command beyond them waits for one
    # in turn (connection.py says why a cap, and why the wait has no limit of its own).
    worker_redis_connections: int = 256
    # The inline call's limit when neither the request nor the node sets one, and the most
    # either may set.
    agent_timeout_s: float = 30.0
    agent_max_timeout_s: float = 900.0
    max_result_bytes: int = 10_485_760
    agent_max_attempts: int = 4
    agent_retry_base_s: float = 1.0
    agent_retry_max_s: float = 30.0
    # While nothing can be sent (node down, connection refused), the wait between tries is
    # capped by this, so that an execution flows this soon after its node is back.
    agent_wait_max_s: float = 2.0
    sweep_interval_s: int = 5
    max_job_tries: int = 20
    # Where agent calls may connect (core/guard.py): public addresses, plus loopback and
    # private ones only when allowed here (the run command allows loopback); link-local and
    # cloud metadata addresses never. Networks: CIDRs, comma-separated.
    agent_allow_loopback: bool = False
    agent_allow_private: bool = False
    agent_allowed_networks: str = ""
    # A cancelled or timed-out execution's agent is told at its cancel route; one try, this long.
    agent_cancel_timeout_s: float = 5.0
    # A worker's liveness lease: refreshed three times per lease; executions held by a worker
    # whose lease lapsed are handed to another (recovery in about 1.3 leases).
    worker_lease_s: float = 3.0
    # The lease is renewed from a thread of its own, but only while the worker's event loop has
    # run within this long: a loop wedged (not merely busy) for longer gives its work up.
    worker_stall_s: float = 30.0
    # On SIGTERM a worker takes no new work and lets its calls finish this long, then hands
    # back what is left.
    worker_drain_s: float = 30.0

    # Nodes.
    node_lease_s: float = 30.0
    # Agent calls in flight to one node across the fleet; 0: half of workers x concurrency.
    node_max_in_flight: int = 0
    # Longest wait of an execution whose node is at its cap before it asks for a slot again.
    node_wait_max_s: float = 5.0

    # Webhooks. The schedule lists the waits (seconds, comma-separated) before each retry.
    webhook_timeout_s: float = 10.0
    webhook_retry_schedule_s: str = "5,30,120,600,1800,3600,10800"
    webhook_jitter: float = 0.2
    webhook_retry_after_max_s: float = 3600.0
    webhook_max_response_bytes: int = 16_384
    # `progress` notices (for callers whose webhook.events asks for them): at most one per
    # execution per this many seconds.
    webhook_progress_interval_s: float = 5.0
    # Refuse loopback, link-local, private and other non-public destinations (SSRF), except
    # the hosts, IPs or CIDR networks listed (comma-separated) as trusted.
    webhook_block_private: bool = True
    webhook_allowed_hosts: str = ""

    # Memory. A scope other than global expires this long after its last write.
    memory_max_value_bytes: int = 262_144
    memory_max_keys_per_scope: int = 10_000
    memory_max_vectors_per_scope: int = 1_000
    memory_max_vector_dims: int = 4_096
    memory_scope_ttl_s: int = 30 * 86_400

    log_level: str = "INFO"

    @property
    def resolved_public_url(self) -> str:
        """The URL agents use to call back; defaults to the API's own address."""
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def routes(self) -> Routes:
        """The routing table of nodes over Redis deployments (parsed at each use: read it once)."""
        return parse(self.redis_url, self.redis_shards, self.redis_routes)

    def served(self) -> Settings:
        """The settings of a worker process: `redis_url` names the Redis of its shard
        (`worker_shard`), and no other; unchanged for a worker of home."""
        if self.worker_shard == HOME:
            return self
        return msgspec.structs.replace(
            self,
            redis_url=self.routes.urls[self.worker_shard],
            redis_shards="",
            redis_routes="",
            worker_shard=HOME,
        )

    @property
    def loopback_only(self) -> bool:
        """Whether the API listens on a loopback address only."""
        return self.api_host in ("127.0.0.1", "::1", "localhost") or self.api_host.startswith(
            "127."
        )

    @property
    def node_in_flight_cap(self) -> int:
        """The per-node cap: the setting, else half of the fleet's slots (at least 1), so that
        one node that hangs leaves the other half to every other node."""
        return self.node_max_in_flight or max(1, self.workers * self.worker_concurrency // 2)

    @property
    def allowed_host_names(self) -> frozenset[str] | None:
        """The Host names the API answers (lower case, no port), or None for any."""
        listed = {h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()}
        if "*" in listed:
            return None
        if self.loopback_only:
            return frozenset(LOOPBACK_HOSTS | listed)
        return frozenset(listed) if listed else None

    @property
    def job_timeout_s(self) -> float:
        """An arq run job never outlives the longest agent call by more than a small margin."""
        return self.agent_max_timeout_s + 2.0

    @property
    def lock_timeout_s(self) -> float:
        """arq's in-progress lock of every job: what delivery and sweep jobs rely on after a
        crash. Run jobs do not: claims are fenced by the worker leases (claim.lua)."""
        return self.webhook_job_timeout_s + 10.0

    @property
    def lease_recovery_bound_s(self) -> float:
        """How long an execution held by a SIGKILLed worker waits before it is queued again:
        its lease lapses, then the next reaper tick (a third of a lease) takes it."""
        return self.worker_lease_s * (1 + 1 / 3) + self.worker_poll_delay_s

    @property
    def webhook_job_timeout_s(self) -> float:
        """A delivery job: one attempt (its own timeout) plus the Redis steps around it."""
        return self.webhook_timeout_s + 2.0

    @property
    def webhook_retry_delays_s(self) -> tuple[float, ...]:
        """The retry schedule as numbers: one wait per retry after the first attempt."""
        return tuple(
            float(part) for part in self.webhook_retry_schedule_s.split(",") if part.strip()
        )

    @property
    def webhook_max_attempts(self) -> int:
        """Attempts of one delivery round: the first, then one per wait of the schedule."""
        return len(self.webhook_retry_delays_s) + 1

    @property
    def recovery_bound_s(self) -> float:
        """How long a delivery job held by a SIGKILLed worker waits before another worker takes
        it: arq's in-progress lock (`lock_timeout_s`), then a poll."""
        return self.lock_timeout_s + self.worker_poll_delay_s


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
        "redis_connect_timeout_s",
        "redis_command_timeout_s",
        "max_body_bytes",
        "batch_max_ids",
        "batch_result_max_bytes",
        "batch_max_bytes",
        "sync_timeout_s",
        "max_json_depth",
        "max_header_bytes",
        "max_headers",
        "header_timeout_s",
        "body_timeout_s",
        "keep_alive_timeout_s",
        "max_connections",
        "queue_retry_after_s",
        "sse_heartbeat_s",
        "sse_buffer",
        "retention_s",
        "idempotency_ttl_s",
        "execution_deadline_s",
        "stream_maxlen",
        "max_queued",
        "worker_concurrency",
        "worker_redis_connections",
        "agent_timeout_s",
        "agent_max_timeout_s",
        "agent_wait_max_s",
        "worker_lease_s",
        "worker_stall_s",
        "max_result_bytes",
        "agent_max_attempts",
        "sweep_interval_s",
        "max_job_tries",
        "agent_cancel_timeout_s",
        "node_lease_s",
        "node_wait_max_s",
        "webhook_timeout_s",
        "webhook_retry_after_max_s",
        "webhook_max_response_bytes",
        "memory_max_value_bytes",
        "memory_max_keys_per_scope",
        "memory_max_vectors_per_scope",
        "memory_max_vector_dims",
        "memory_scope_ttl_s",
        "webhook_progress_interval_s",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"invalid setting: {ENV_PREFIX}{name.upper()} must be > 0")
    if settings.node_max_in_flight < 0:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}NODE_MAX_IN_FLIGHT must be >= 0")
    if not 1 <= settings.sweep_interval_s <= 59:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}SWEEP_INTERVAL_S must be 1..59")
    _check_webhooks(settings)
    _check_redis(settings)
    for name in ("key_rate_limit", "key_max_active", "key_cache_s"):
        if getattr(settings, name) < 0:
            raise ConfigurationError(f"invalid setting: {ENV_PREFIX}{name.upper()} must be >= 0")
    _check_networks(settings)
    if settings.idempotency_ttl_s > settings.retention_s:
        raise ConfigurationError(
            f"invalid setting: {ENV_PREFIX}IDEMPOTENCY_TTL_S must be <= {ENV_PREFIX}RETENTION_S"
        )
    if settings.agent_timeout_s > settings.agent_max_timeout_s:
        raise ConfigurationError(
            f"invalid setting: {ENV_PREFIX}AGENT_TIMEOUT_S must be <= "
            f"{ENV_PREFIX}AGENT_MAX_TIMEOUT_S"
        )
    if settings.worker_stall_s < settings.worker_lease_s:
        raise ConfigurationError(
            f"invalid setting: {ENV_PREFIX}WORKER_STALL_S must be >= {ENV_PREFIX}WORKER_LEASE_S"
        )
    if settings.worker_drain_s < 0:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}WORKER_DRAIN_S must be >= 0")
    if settings.max_job_tries < settings.agent_max_attempts:
        raise ConfigurationError(
            f"invalid setting: {ENV_PREFIX}MAX_JOB_TRIES must be >= {ENV_PREFIX}AGENT_MAX_ATTEMPTS"
        )


def _check_redis(settings: Settings) -> None:
    try:
        sentinel_address(settings.redis_url)
    except ValueError as exc:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}REDIS_URL: {exc}") from exc
    urls = settings.routes.urls
    if settings.worker_shard not in urls:
        raise ConfigurationError(
            f"invalid setting: {ENV_PREFIX}WORKER_SHARD: '{settings.worker_shard[:8]}' is not "
            f"{ENV_PREFIX}REDIS_SHARDS' code nor {HOME} (home)"
        )
    if settings.redis_wait_replicas < 0:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}REDIS_WAIT_REPLICAS must be >= 0")
    if settings.redis_wait_timeout_ms <= 0:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}REDIS_WAIT_TIMEOUT_MS must be > 0")


def _check_webhooks(settings: Settings) -> None:
    name = f"{ENV_PREFIX}WEBHOOK_RETRY_SCHEDULE_S"
    try:
        delays = settings.webhook_retry_delays_s
    except ValueError as exc:
        raise ConfigurationError(
            f"invalid setting: {name} must be numbers separated by commas"
        ) from exc
    if any(not 0 <= delay < math.inf for delay in delays):
        raise ConfigurationError(f"invalid setting: {name} must hold finite waits >= 0")
    # A delivery cannot outlive the execution record it is built from.
    if sum(delays) >= settings.retention_s:
        raise ConfigurationError(
            f"invalid setting: {name} adds up to more than {ENV_PREFIX}RETENTION_S"
        )
    if not 0 <= settings.webhook_jitter < 1:
        raise ConfigurationError(f"invalid setting: {ENV_PREFIX}WEBHOOK_JITTER must be 0..1")


def _check_networks(settings: Settings) -> None:
    for entry in settings.agent_allowed_networks.split(","):
        try:
            if entry.strip():
                ipaddress.ip_network(entry.strip().strip("[]"), strict=False)
        except ValueError as exc:
            raise ConfigurationError(
                f"invalid setting: {ENV_PREFIX}AGENT_ALLOWED_NETWORKS: '{entry.strip()}' is not "
                "a CIDR network"
            ) from exc
