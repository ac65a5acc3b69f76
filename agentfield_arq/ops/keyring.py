"""The keys a deployment starts with: an admin key kept in a file (mode 0600) and, derived from
it, one agent key per example node, each owning its node id. Made on the first start, found
again on the next ones; their digests are (re)stored in Redis each time, so that a Redis
emptied since then still knows them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import KeyStore, Role, derived_key, new_key, well_formed
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.errors import ApiError

API_KEY_FILE = "api-key"
ADMIN_KEY_ID = "run-admin"


def admin_key(folder: Path) -> str:
    """The admin key in `folder/api-key`, written there (readable by its owner only) when the
    file does not exist yet."""
    path = folder / API_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if not well_formed(key):
            raise ValueError(f"{path} does not hold an API key; delete it to make a new one")
        return key
    folder.mkdir(parents=True, exist_ok=True)
    key = new_key()
    # O_EXCL: two starts at once cannot both write it; 0600 from the first byte.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def agent_keys(admin: str, nodes: Iterable[str]) -> dict[str, str]:
    """The agent key of each node id, derived from the admin key."""
    return {node_id: derived_key(admin, f"agent:{node_id}") for node_id in nodes}


def provision(
    settings: Settings, redis_url: str, folder: Path, nodes: Iterable[str]
) -> tuple[str, dict[str, str]]:
    """Store the admin key of `folder` and the agent keys of `nodes` in Redis; returns them."""
    admin = admin_key(folder)
    agents = agent_keys(admin, nodes)
    asyncio.run(_store(settings, redis_url, admin, agents))
    return admin, agents


def write_agent_keys(folder: Path, agents: dict[str, str]) -> None:
    """One file per node id holding its agent key, readable by its owner only."""
    folder.mkdir(parents=True, exist_ok=True)
    for node_id, key in agents.items():
        path = folder / node_id
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(key + "\n")


async def _store(settings: Settings, redis_url: str, admin: str, agents: dict[str, str]) -> None:
    redis = connect(redis_url)
    try:
        store = KeyStore(redis, settings)
        await store.store(admin, Role.ADMIN, ADMIN_KEY_ID, name="run command")
        for node_id, key in agents.items():
            await store.store(key, Role.AGENT, f"run-{node_id}", [node_id], name=node_id)
    finally:
        await redis.aclose()


async def manage(settings: Settings, redis_url: str, args: argparse.Namespace) -> int:
    """`agentfield-arq keys create|list|revoke`, on the system's Redis."""
    redis = connect(redis_url)
    try:
        store = KeyStore(redis, settings)
        if args.action == "create":
            try:
                record, plain = await store.create(Role(args.role), args.node, args.name)
            except ApiError as exc:
                print(f"agentfield-arq: {exc.message}", file=sys.stderr)
                return 1
            owns = f" owning {', '.join(record.nodes)}" if record.nodes else ""
            print(f"created {record.id} ({record.role}{owns}); the key, shown only now:")
            print(plain)
        elif args.action == "provision":
            admin = admin_key(Path(args.dir))
            agents = agent_keys(admin, args.node)
            await _store(settings, redis_url, admin, agents)
            folder = Path(args.dir)
            write_agent_keys(folder / "agents", agents)
            print(f"admin key in {folder / API_KEY_FILE}; agent keys in {folder / 'agents'}")
        elif args.action == "list":
            for record in await store.list():
                nodes = ",".join(record.nodes) or "-"
                print(f"{record.id}\t{record.role}\t{nodes}\t{record.created_at}\t{record.name}")
        elif not await store.revoke(args.id):
            print(f"agentfield-arq: no key {args.id!r}", file=sys.stderr)
            return 1
        else:
            print(f"revoked {args.id}")
        return 0
    finally:
        await redis.aclose()
