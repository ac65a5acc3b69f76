"""The error tree drawn at the top of kernel/errors.py is the tree the classes form."""

from __future__ import annotations

import re

from agentfield_arq.kernel import errors

_ROW = re.compile(r"^(?P<indent>(?:[│ ]   )*)(?:[├└]── )?(?P<name>[A-Z]\w+)")


def drawn() -> dict[str, str | None]:
    """Each class of the docstring's drawing, mapped to the class drawn as its parent."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        row = _ROW.match(line)
        if row is None or not hasattr(errors, row["name"]):
            continue
        depth = len(row["indent"]) // 4 + (1 if "── " in line else 0)
        del stack[depth:]
        parents[row["name"]] = stack[-1] if stack else None
        stack.append(row["name"])
    return parents


def defined() -> dict[str, str | None]:
    """Each error class of the module, mapped to the parent it inherits from in the module."""
    found: dict[str, str | None] = {}
    for name, value in vars(errors).items():
        if isinstance(value, type) and issubclass(value, errors.AgentFieldArqError):
            ours = [b.__name__ for b in value.__bases__ if issubclass(b, errors.AgentFieldArqError)]
            found[name] = ours[0] if ours else None
    return found


def test_the_drawing_shows_every_class_under_its_parent() -> None:
    assert drawn() == defined()


def test_every_api_error_has_its_own_code_but_a_status_may_be_shared() -> None:
    codes: dict[str, str] = {}
    for name, value in vars(errors).items():
        if isinstance(value, type) and issubclass(value, errors.ApiError):
            if value is errors.MalformedInput:  # a 400 flavour of invalid_input, by design
                continue
            assert value.code not in codes, (name, codes.get(value.code))
            codes[value.code] = name
