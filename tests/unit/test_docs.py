"""docs/architecture.md keeps up with the house: every module has its row in its room's table,
and every module a row names exists."""

from __future__ import annotations

import re
from pathlib import Path

from agentfield_arq.kernel import errors

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
ROOMS = ("kernel", "sdk", "client", "core", "api", "workers", "ops")


def _section(room: str) -> str:
    return ARCHITECTURE.split(f"\n### {room}:", 1)[1].split("\n#", 1)[0]


def _modules(room: str) -> set[str]:
    folder = ROOT / "agentfield_arq" / room
    return {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}


def test_every_module_has_a_row_in_its_rooms_table() -> None:
    missing = {
        room: sorted(m for m in _modules(room) if f"`{m}`" not in _section(room)) for room in ROOMS
    }
    assert {room: names for room, names in missing.items() if names} == {}


def test_every_module_a_row_names_exists() -> None:
    stale = {
        room: sorted(set(re.findall(r"^\| `([a-z_]+\.py)`", _section(room), re.M)) - _modules(room))
        for room in ROOMS
    }
    assert {room: names for room, names in stale.items() if names} == {}


def test_the_contract_lists_every_error_code_with_its_status() -> None:
    contract = (ROOT / "docs" / "contract.md").read_text()
    stack: list[type[errors.ApiError]] = [errors.ApiError]
    missing = []
    while stack:
        kind = stack.pop()
        stack.extend(kind.__subclasses__())
        cell = rf"^\| [^|]*`{kind.code}`[^|]*\| {errors.http_status(kind)} \|"
        row = re.search(cell, contract, re.M)
        if row is None:
            missing.append(f"{kind.code} {errors.http_status(kind)}")
    assert missing == []
