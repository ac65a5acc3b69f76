"""Signatures become decoders and JSON Schemas: what a reasoner accepts and announces."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest

from agentfield_arq.kernel.errors import InvalidInput
from agentfield_arq.kernel.status import TargetKind
from agentfield_arq.sdk.parameters import describe


class Line(msgspec.Struct):
    sku: str
    qty: int = 1


async def analyze(ticker: str, days: int = 5, lines: list[Line] = []) -> dict[str, Any]:  # noqa: B006
    """Analyze a ticker.

    Details that are not part of the summary."""
    return {"ticker": ticker, "days": days, "lines": lines}


def target(func: Any = analyze, kind: TargetKind = TargetKind.REASONER) -> Any:
    return describe(func, name=func.__name__, kind=kind)


def test_the_input_schema_lists_parameters_with_types_defaults_and_required_ones() -> None:
    schema = target().input_schema
    assert schema["type"] == "object"
    assert schema["required"] == ["ticker"]
    assert schema["properties"]["ticker"] == {"type": "string"}
    assert schema["properties"]["days"] == {"type": "integer", "default": 5}
    assert schema["$defs"]["Line"]["required"] == ["sku"]


def test_the_registration_entry_carries_schemas_tags_and_the_docstring_summary() -> None:
    spec = describe(analyze, name="analyze", kind=TargetKind.REASONER, tags=("fin",)).spec()
    assert spec.id == "analyze"
    assert spec.output_schema == {"type": "object"}
    assert spec.tags == ["fin"]
    assert spec.description == "Analyze a ticker."


def test_a_body_binds_to_keyword_arguments_with_defaults_and_nested_structs() -> None:
    kwargs = target().bind(b'{"ticker": "ACME", "lines": [{"sku": "x"}]}')
    assert kwargs == {"ticker": "ACME", "days": 5, "lines": [Line(sku="x", qty=1)]}


def test_unknown_fields_are_ignored_as_agentfield_does() -> None:
    assert target().bind(b'{"ticker": "ACME", "extra": 1}')["ticker"] == "ACME"


def test_a_missing_field_is_a_422_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        target().bind(b'{"days": 3}')
    assert (caught.value.status, caught.value.field) == (422, "ticker")


def test_a_wrongly_typed_nested_field_is_a_422_naming_its_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        target().bind(b'{"ticker": "A", "lines": [{"sku": "x", "qty": "many"}]}')
    assert caught.value.field == "lines[0].qty"
    assert "Expected `int`, got `str`" in caught.value.message


def test_a_missing_nested_field_is_named_with_its_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        target().bind(b'{"ticker": "A", "lines": [{"qty": 2}]}')
    assert caught.value.field == "lines[0].sku"


def test_a_body_that_is_not_an_object_is_a_422() -> None:
    with pytest.raises(InvalidInput) as caught:
        target().bind(b"[1, 2]")
    assert (caught.value.status, caught.value.field) == (422, None)


def test_a_body_that_is_not_json_is_a_400() -> None:
    with pytest.raises(InvalidInput) as caught:
        target().bind(b"{nope")
    assert caught.value.status == 400


def test_an_empty_body_means_no_arguments() -> None:
    def ping() -> str:
        return "pong"

    assert target(ping).bind(b"") == {}


def test_mutable_defaults_are_fresh_for_each_call() -> None:
    def tagger(tags: list[str] = ["a"]) -> list[str]:  # noqa: B006
        return tags

    t = target(tagger)
    first = t.bind(b"{}")
    first["tags"].append("b")
    assert t.bind(b"{}") == {"tags": ["a"]}


def test_star_arguments_are_refused_when_declared() -> None:
    def anything(*args: Any) -> None:
        return None

    with pytest.raises(TypeError, match="passable by name"):
        target(anything)


def test_a_parameter_type_msgspec_cannot_decode_is_refused_when_declared() -> None:
    def opaque(lock: threading.Lock) -> None:
        return None

    with pytest.raises(TypeError, match="cannot decode"):
        target(opaque)


def test_an_unannotated_parameter_accepts_any_json() -> None:
    def loose(value):  # type: ignore[no-untyped-def]
        return value

    assert target(loose).bind(b'{"value": [1, "x"]}') == {"value": [1, "x"]}
    assert target(loose).output_schema == {}


def test_a_none_return_annotation_announces_a_null_output() -> None:
    def nothing() -> None:
        return None

    assert target(nothing).output_schema == {"type": "null"}


async def test_a_plain_function_runs_off_the_event_loop_thread() -> None:
    def where() -> int:
        return threading.get_ident()

    assert await target(where).invoke({}) != threading.get_ident()


async def test_a_coroutine_function_is_awaited() -> None:
    result = await target().invoke({"ticker": "A", "days": 1, "lines": []})
    assert result == {"ticker": "A", "days": 1, "lines": []}
