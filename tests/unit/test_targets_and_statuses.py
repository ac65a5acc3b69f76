"""The target grammar and the status words agents may use: the exact answers, messages included
(these cases were added where mutation testing showed the suite would not notice a change)."""

from __future__ import annotations

import pytest

from agentfield_arq.kernel.errors import InvalidTarget
from agentfield_arq.kernel.status import Status, normalise_status
from agentfield_arq.kernel.targets import parse_target


def test_an_invalid_target_is_named_in_its_message_with_the_grammar() -> None:
    with pytest.raises(InvalidTarget) as caught:
        parse_target("no-dot")
    assert str(caught.value) == (
        "target 'no-dot' is not of the form node_id.name "
        "(letters, digits, '_' and '-' on each side of one '.')"
    )


def test_a_long_invalid_target_is_quoted_to_200_characters() -> None:
    target = "x" * 300
    with pytest.raises(InvalidTarget) as caught:
        parse_target(target)
    assert f"'{'x' * 200}'" in str(caught.value)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("in-progress", Status.RUNNING),
        ("timed out", Status.TIMEOUT),
        ("timed-out", Status.TIMEOUT),
        (" Completed ", Status.SUCCEEDED),
        ("CANCELED", Status.CANCELLED),
        ("running", Status.RUNNING),
        ("queued", Status.QUEUED),
    ],
)
def test_status_words_are_normalised_as_agentfield_does(word: str, status: Status) -> None:
    assert normalise_status(word) is status


def test_an_unknown_status_word_is_none() -> None:
    assert normalise_status("in progress now") is None
