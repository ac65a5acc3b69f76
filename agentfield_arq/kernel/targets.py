"""Targets (`node_id.name`): the one grammar the control plane routes by and agents declare in.

Standard library only: the SDK checks its node and target names with it without importing the
control plane.
"""

from __future__ import annotations

import re

from agentfield_arq.kernel.errors import InvalidTarget

# Also the `pattern`s of the OpenAPI document, so that it says exactly what is accepted.
NODE_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
NAME = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}"
_NODE_ID = re.compile(NODE_ID)
_NAME = re.compile(NAME)


def parse_target(target: str) -> tuple[str, str]:
    """Split `node_id.name`; anything else is InvalidTarget."""
    node_id, dot, name = target.partition(".")
    if not dot or not _NODE_ID.fullmatch(node_id) or not _NAME.fullmatch(name):
        raise InvalidTarget(
            f"target '{target[:200]}' is not of the form node_id.name "
            "(letters, digits, '_' and '-' on each side of one '.')"
        )
    return node_id, name
