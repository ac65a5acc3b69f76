"""A reasoner's or skill's Python signature, as the agent's HTTP surface needs it.

From the function's parameters we build a msgspec Struct type: it decodes a request body into
keyword arguments in one pass (its errors name the offending field) and yields the JSON Schema
that registration announces. Unknown fields are ignored, as AgentField's SDK ignores them.
`Signatures` and `bind` give `app.call`'s positional arguments their parameter names.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from agentfield_arq.client.answers import raise_for, unreachable
from agentfield_arq.kernel.errors import InvalidInput, MalformedInput, TargetNotFound
from agentfield_arq.kernel.models import NodeRegistration, TargetSpec
from agentfield_arq.kernel.status import TargetKind
from agentfield_arq.kernel.targets import parse_target

_FIELD_IN_PATH = re.compile(r"at `\$\.([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


@dataclass(frozen=True, slots=True)
class Target:
    """One reasoner or skill: the function, how to decode its input, and how to announce it."""

    name: str
    kind: TargetKind
    func: Callable[..., Any]
    tags: tuple[str, ...]
    path: str | None
    description: str | None
    decoder: msgspec.json.Decoder[Any]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]

    def spec(self) -> TargetSpec:
        """This target's entry in the node registration (`reasoners` or `skills`)."""
        return TargetSpec(
            id=self.name,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            tags=list(self.tags),
            description=self.description or msgspec.UNSET,
        )

    def bind(self, body: bytes) -> dict[str, Any]:
        """Decode a JSON object body into keyword arguments; raises InvalidInput."""
        try:
            value = self.decoder.decode(body.strip() or b"{}")
        except msgspec.ValidationError as exc:
            raise InvalidInput(str(exc), field=_field_of(str(exc))) from exc
        except msgspec.DecodeError as exc:
            raise MalformedInput(f"body is not valid JSON: {exc}") from exc
        return msgspec.structs.asdict(value)

    async def invoke(self, kwargs: dict[str, Any]) -> Any:
        """Call the function: coroutines on the loop, plain functions in a worker thread."""
        if inspect.iscoroutinefunction(self.func):
            return await self.func(**kwargs)
        result = await asyncio.to_thread(self.func, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


def describe(
    func: Callable[..., Any],
    *,
    name: str,
    kind: TargetKind,
    tags: tuple[str, ...] = (),
    path: str | None = None,
) -> Target:
    """Build the Target for `func`; raises TypeError when a parameter cannot be decoded."""
    hints = typing.get_type_hints(func, include_extras=True)
    fields: list[tuple[str, Any, Any]] = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"{kind} '{name}': parameter '{param.name}' must be passable by name")
        annotation = hints.get(param.name, Any)
        if param.default is param.empty:
            fields.append((param.name, annotation, msgspec.NODEFAULT))
        else:
            fields.append((param.name, annotation, _default(param.default)))
    input_type = msgspec.defstruct(f"{name}_input", fields, kw_only=True)
    try:
        decoder = msgspec.json.Decoder(input_type)
        input_schema = _inline_schema(input_type)
    except TypeError as exc:
        raise TypeError(f"{kind} '{name}': a parameter type msgspec cannot decode: {exc}") from exc
    return Target(
        name=name,
        kind=kind,
        func=func,
        tags=tags,
        path=path,
        description=_summary(func),
        decoder=decoder,
        input_schema=input_schema,
        output_schema=_output_schema(hints),
    )


def _default(value: Any) -> Any:
    """Mutable defaults are copied per call, as msgspec requires."""
    if isinstance(value, list | dict | set | bytearray):
        return msgspec.field(default_factory=functools.partial(copy.deepcopy, value))
    return value


def _inline_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of `kind`, with a top-level `$ref` resolved in place."""
    (schema,), components = msgspec.json.schema_components([kind], ref_template="#/$defs/{name}")
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        schema = dict(components.pop(ref.removeprefix("#/$defs/")))
        schema.pop("title", None)
    if components:
        schema["$defs"] = components
    return schema


def _output_schema(hints: dict[str, Any]) -> dict[str, Any]:
    if "return" not in hints:
        return {}
    try:
        return _inline_schema(hints["return"])
    except TypeError:  # a return type msgspec cannot describe: announce no schema
        return {}


def _summary(func: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(func)
    if not doc:
        return None
    return " ".join(doc.split("\n\n", 1)[0].split())


def _field_of(message: str) -> str | None:
    """The field a msgspec validation message is about (`$.days` -> `days`)."""
    at = _FIELD_IN_PATH.search(message)
    missing = _MISSING_FIELD.search(message)
    if missing:
        return f"{at.group(1)}.{missing.group(1)}" if at else missing.group(1)
    return at.group(1) if at else None


def bind(
    target: str, args: tuple[Any, ...], kwargs: dict[str, Any], names: list[str]
) -> dict[str, Any]:
    """Positional `args` given the parameter `names` in order, merged with `kwargs`; as Python
    does, too many, or one given both ways, is a TypeError."""
    if len(args) > len(names):
        raise TypeError(
            f"{target} takes {len(names)} positional arguments but {len(args)} were given"
        )
    bound = dict(zip(names, args, strict=False))
    twice = sorted(set(bound) & set(kwargs))
    if twice:
        raise TypeError(f"{target} got multiple values for argument '{twice[0]}'")
    return {**bound, **kwargs}


class Signatures:
    """The parameter names of targets, in order, for positional arguments of `app.call`: this
    agent's own from their declaration, other nodes' from their registration (the input
    schema's properties, which both SDKs list in signature order). Cached per target."""

    def __init__(
        self, node_id: str, local: Mapping[str, Target], http: Callable[[], httpx.AsyncClient]
    ) -> None:
        self.node_id = node_id
        self.local = local
        self.http = http
        self._names: dict[str, list[str]] = {}

    async def names(self, target: str) -> list[str]:
        """The parameter names of `target`."""
        if target not in self._names:
            node_id, name = parse_target(target)
            if node_id == self.node_id and name in self.local:
                schema = self.local[name].input_schema
            else:
                schema = await self._remote(node_id, name)
            self._names[target] = list((schema.get("properties") or {}).keys())
        return self._names[target]

    async def _remote(self, node_id: str, name: str) -> dict[str, Any]:
        try:
            answer = await self.http().get(f"/api/v1/nodes/{node_id}")
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        raise_for(answer)
        record = msgspec.json.decode(answer.content, type=NodeRegistration)
        for spec in (*record.reasoners, *record.skills):
            if spec.id == name and isinstance(spec.input_schema, dict):
                return spec.input_schema
        raise TargetNotFound(f"node '{node_id}' declares no parameters for '{name}'")
