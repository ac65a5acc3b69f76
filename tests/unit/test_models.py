"""Status words, targets and ids."""

from __future__ import annotations

import msgspec
import pytest

from agentfield_arq.kernel.codec import canonical_json, new_id, rfc3339
from agentfield_arq.kernel.errors import InvalidTarget
from agentfield_arq.kernel.models import NodeRegistration
from agentfield_arq.kernel.status import TERMINAL_STATUSES, Status, normalise_status
from agentfield_arq.kernel.targets import parse_target


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("success", Status.SUCCEEDED),
        ("Completed", Status.SUCCEEDED),
        ("done", Status.SUCCEEDED),
        ("ok", Status.SUCCEEDED),
        ("errored", Status.FAILED),
        ("failure", Status.FAILED),
        ("canceled", Status.CANCELLED),
        ("timed_out", Status.TIMEOUT),
        ("in_progress", Status.RUNNING),
        ("processing", Status.RUNNING),
        ("waiting", Status.QUEUED),
        ("succeeded", Status.SUCCEEDED),
    ],
)
def test_status_words_are_normalised_as_agentfield_does(word: str, status: Status) -> None:
    assert normalise_status(word) is status


def test_an_unknown_status_word_normalises_to_none() -> None:
    assert normalise_status("exploded") is None


def test_only_the_last_four_statuses_are_terminal() -> None:
    assert {Status.QUEUED, Status.RUNNING}.isdisjoint(TERMINAL_STATUSES)
    assert len(TERMINAL_STATUSES) == 4


def test_a_target_splits_into_node_and_name() -> None:
    assert parse_target("finance.deep_analysis") == ("finance", "deep_analysis")


@pytest.mark.parametrize("target", ["finance", ".x", "x.", "a.b.c", "a b.c", "a.b/c", "é.x"])
def test_a_malformed_target_is_invalid(target: str) -> None:
    with pytest.raises(InvalidTarget):
        parse_target(target)


def test_ids_are_prefixed_url_safe_short_and_sort_by_creation_time() -> None:
    early, late = new_id("exec", 1_700_000_000_000), new_id("exec", 1_700_000_000_001)
    assert early.startswith("exec_")
    assert len(early) <= 64
    assert early.replace("_", "").isalnum()
    assert early < late
    assert new_id("run") != new_id("run")


def test_timestamps_are_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_canonical_json_makes_equal_values_equal_bytes() -> None:
    assert canonical_json(b'{ "a" : [1, 2] }') == canonical_json(b'{"a":[1,2]}')


def test_a_node_cap_may_be_spelled_as_a_whole_float_as_json_schema_allows() -> None:
    def cap(raw: bytes) -> object:
        body = b'{"id": "n", "base_url": "http://n:1", "max_in_flight": ' + raw + b"}"
        return msgspec.json.decode(body, type=NodeRegistration).max_in_flight

    assert cap(b"5.0") == 5
    assert isinstance(cap(b"5.0"), int)
    for refused in (b"5.5", b'"5"', b"true"):
        with pytest.raises(msgspec.ValidationError):
            cap(refused)
