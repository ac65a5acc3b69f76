"""The status documents a bounded read sends without their result (core/views.py)."""

from __future__ import annotations

import json

from agentfield_arq.core.keys import safe_ids
from agentfield_arq.core.views import splice, without_result


def test_a_document_goes_without_its_result_its_other_members_in_order() -> None:
    doc = b'{"execution_id":"exec_1","progress":{"result":1},"result":{"a":[1,2]}}'
    cut = without_result(doc)
    assert list(json.loads(cut)) == ["execution_id", "progress", "result_truncated", "result_size"]
    assert json.loads(cut)["progress"] == {"result": 1}
    assert json.loads(cut)["result_size"] == len(b'{"a":[1,2]}')


def test_a_document_without_a_result_goes_as_it_is() -> None:
    doc = b'{"execution_id":"exec_1","status":"running"}'
    assert without_result(doc) is doc


def test_a_view_is_spliced_in_and_none_leaves_the_document_as_it_is() -> None:
    doc = b'{"execution_id":"exec_1"}'
    assert json.loads(splice(doc, b'{"notes":[]}')) == {"execution_id": "exec_1", "notes": []}
    assert splice(doc, None) is doc


def test_a_batch_keeps_its_safe_ids_only_and_a_newline_does_not_pass_one_as_two() -> None:
    assert safe_ids(["exec_1", "exec-2"]) == ["exec_1", "exec-2"]
    assert safe_ids(["exec_1", "fin:targets", "exec_2\nexec_3", ""]) == ["exec_1"]
    assert safe_ids([]) == []
