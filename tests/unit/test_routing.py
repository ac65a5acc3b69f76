"""The routing table of nodes over several Redis deployments (core/routing.py), as the
settings read it."""

from __future__ import annotations

import msgspec
import pytest

from agentfield_arq.core.catalog import Page, merge, merged_run
from agentfield_arq.core.routing import CODES, HOME, parse, stamp, within_budget
from agentfield_arq.core.settings import from_env
from agentfield_arq.core.streams import composite, positions
from agentfield_arq.kernel.codec import id_ms, new_id
from agentfield_arq.kernel.errors import ConfigurationError
from agentfield_arq.kernel.models import RunNode
from agentfield_arq.ops.cli import main, workers

HOME_URL = "redis://10.0.0.1:6379/0"
TWO = "1=redis://10.0.0.2:6379/0 2=redis+sentinel://s1:26379,s2:26379/east/0"


def test_without_shards_every_node_and_every_id_is_home_and_ids_are_not_stamped() -> None:
    routes = parse(HOME_URL, "", "")
    execution_id = new_id("exec")
    assert not routes.routed
    assert routes.of_node("finance") == HOME
    assert routes.of_id(stamp(execution_id, "1")) == HOME
    assert from_env({}, redis_url=HOME_URL).routes == routes


def test_a_node_named_by_the_routes_goes_to_its_shard_and_any_other_goes_home() -> None:
    routes = parse(HOME_URL, TWO, "finance=1, research=1,analytics=2")
    assert routes.urls == {
        HOME: HOME_URL,
        "1": "redis://10.0.0.2:6379/0",
        "2": "redis+sentinel://s1:26379,s2:26379/east/0",
    }
    assert [routes.of_node(n) for n in ("finance", "research", "analytics", "other")] == [
        "1",
        "1",
        "2",
        HOME,
    ]


def test_a_stamped_id_keeps_its_format_and_time_and_names_its_shard() -> None:
    routes = parse(HOME_URL, TWO, "")
    made = new_id("exec", 1_764_592_639_869)
    for code in (HOME, "1", "2"):
        stamped = stamp(made, code)
        assert len(stamped) == len(made)
        assert stamped[:-1] == made[:-1]
        assert id_ms(stamped, "exec") == 1_764_592_639_869
        assert routes.of_id(stamped) == code


def test_an_id_naming_no_configured_shard_or_of_another_form_is_looked_up_home() -> None:
    routes = parse(HOME_URL, TWO, "")
    made = new_id("exec")
    assert routes.of_id(stamp(made, "z")) == HOME
    assert routes.of_id("exec_nope1") == HOME
    assert routes.of_id(stamp(new_id("run"), "1")) == HOME
    assert routes.of_id(stamp(made, "1") + ":x") == HOME


@pytest.mark.parametrize(
    ("shards", "routes", "named"),
    [
        ("0=redis://a:1", "", "'0=redis://a:1' is not code=url"),
        ("i=redis://a:1", "", "'i=redis://a:1' is not code=url"),
        ("12=redis://a:1", "", "'12=redis://a:1' is not code=url"),
        ("1redis://a:1", "", "'1redis://a:1' is not code=url"),
        ("1=redis://a:1 1=redis://b:1", "", "shard '1' twice"),
        ("1=http://a:1", "", "shard 1: 'http://a:1' is not a Redis URL"),
        ("1=redis+sentinel://a:1", "", "shard 1:"),
        ("1=redis://a:1", "finance", "'finance' is not node_id=shard"),
        ("1=redis://a:1", "fin:x=1", "'fin:x=1' is not node_id=shard"),
        ("1=redis://a:1", "finance=2", "node 'finance' goes to shard '2'"),
        ("1=redis://a:1", "finance=1,finance=0", "node 'finance' goes to two shards"),
    ],
)
def test_a_malformed_table_fails_at_start_up_naming_the_variable_and_the_entry(
    shards: str, routes: str, named: str
) -> None:
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_REDIS_") as raised:
        from_env(
            {"AGENTFIELD_ARQ_REDIS_SHARDS": shards, "AGENTFIELD_ARQ_REDIS_ROUTES": routes},
            redis_url=HOME_URL,
        )
    assert named in str(raised.value)


def test_shards_without_a_home_redis_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs AGENTFIELD_ARQ_REDIS_URL"):
        from_env({"AGENTFIELD_ARQ_REDIS_SHARDS": "1=redis://a:1"})


def test_a_worker_serves_the_redis_of_its_shard_and_a_home_worker_is_unchanged() -> None:
    settings = from_env({}, redis_url=HOME_URL, redis_shards=TWO, redis_routes="finance=1")
    assert settings.served() is settings
    worker = from_env({}, redis_url=HOME_URL, redis_shards=TWO, worker_shard="1").served()
    assert worker.redis_url == "redis://10.0.0.2:6379/0"
    assert not worker.routes.routed
    assert worker.served() is worker


def test_a_worker_of_a_shard_the_table_does_not_name_fails_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_WORKER_SHARD: '3'"):
        from_env({}, redis_url=HOME_URL, redis_shards=TWO, worker_shard="3")


def test_every_code_is_an_id_character_other_than_home() -> None:
    assert HOME not in CODES
    assert len(set(CODES)) == 31
    assert all(stamp(new_id("exec"), code)[-1] == code for code in CODES)


def _doc(execution_id: str) -> bytes:
    return b'{"execution_id":"%s","status":"succeeded"}' % execution_id.encode()


def _page(ids: list[str], cursor: str | None) -> Page:
    return Page([_doc(i) for i in ids], cursor)


def test_merged_pages_are_newest_first_and_stop_where_a_shard_stopped_looking() -> None:
    # Shard a looked down to exec_5 (its budget ran out there), shard b down to exec_2.
    merged = merge(
        [_page(["exec_9", "exec_6"], "exec_5"), _page(["exec_8", "exec_3"], "exec_2")], 10
    )
    assert merged == Page([_doc("exec_9"), _doc("exec_8"), _doc("exec_6")], "exec_5")


def test_merged_pages_cut_at_the_limit_go_on_from_their_last_execution() -> None:
    merged = merge([_page(["exec_9", "exec_6"], None), _page(["exec_8", "exec_7"], "exec_7")], 2)
    assert merged == Page([_doc("exec_9"), _doc("exec_8")], "exec_8")


def test_merged_pages_of_shards_that_all_reached_the_end_have_no_cursor() -> None:
    merged = merge([_page(["exec_4"], None), _page([], None)], 10)
    assert merged == Page([_doc("exec_4")], None)


def test_a_composite_event_id_names_each_streams_position_and_reads_back() -> None:
    reached = {"1": "1764592639871-0", "0": "1764592639869-3"}
    value = composite(reached)
    assert value == "0:1764592639869-3,1:1764592639871-0"
    assert positions(value, frozenset({"0", "1"})) == reached


@pytest.mark.parametrize(
    "value", ["0:1-0,0:2-0", "2:1-0", "0:1-0,", "0-1-0", "0:1", "0:1-0;1:2-0", "00:1-0"]
)
def test_a_composite_event_id_of_another_form_or_redis_is_not_read(value: str) -> None:
    assert positions(value, frozenset({"0", "1"})) is None


def test_a_run_over_several_redis_is_drawn_as_one_tree_oldest_first() -> None:
    home = [RunNode(execution_id="exec_1", status="succeeded")]
    shard = [
        RunNode(execution_id="exec_2", status="running", parent_execution_id="exec_1"),
        RunNode(execution_id="exec_0", status="succeeded"),
    ]
    run = merged_run("run_x", [(home, False), (shard, True)])
    assert run is not None
    assert (run.count, run.status, run.truncated) == (3, "running", True)
    assert [r.execution_id for r in run.roots] == ["exec_0", "exec_1"]
    assert [c.execution_id for c in run.roots[1].children] == ["exec_2"]
    assert merged_run("run_x", [([], False), ([], False)]) is None


def _status_doc(n: int, result: str | None, notes: bool = False) -> bytes:
    doc: dict[str, object] = {"execution_id": f"exec_{n}", "status": "succeeded"}
    if result is not None:
        doc["result"] = result
    if notes:
        doc["notes"] = [{"message": "m"}]
    return msgspec.json.encode(doc)


def test_an_answer_of_several_redis_sends_results_in_the_order_asked_until_the_budget() -> None:
    docs = [
        _status_doc(0, "a" * 100),
        None,
        _status_doc(1, "b" * 100, notes=True),
        _status_doc(2, "c" * 100),
    ]
    bounded = within_budget(docs, len(docs[0] or b"") + 50)
    assert bounded[:2] == docs[:2]
    second, third = (msgspec.json.decode(d or b"") for d in bounded[2:])
    assert second == {
        "execution_id": "exec_1",
        "status": "succeeded",
        "result_truncated": True,
        "result_size": 102,
    }
    assert (third["result_truncated"], third["result_size"]) == (True, 102)


def test_an_answer_of_several_redis_over_its_budget_still_sends_documents_without_results() -> None:
    queued = msgspec.json.encode({"execution_id": "exec_0", "status": "queued"})
    assert within_budget([_status_doc(1, "x" * 100), queued], 10)[1] == queued


def test_the_run_command_starts_workers_for_every_redis_of_the_routes() -> None:
    routed = from_env({}, redis_url=HOME_URL, redis_shards=TWO, workers=2)
    assert [(c.name, c.env) for c in workers(routed)] == [
        (f"worker-{code}-{n}", {"AGENTFIELD_ARQ_WORKER_SHARD": code})
        for code in ("0", "1", "2")
        for n in (1, 2)
    ]
    alone = workers(from_env({}, redis_url=HOME_URL, workers=2))
    assert [(c.name, c.env) for c in alone] == [("worker-1", {}), ("worker-2", {})]


def test_the_run_command_starts_its_shards_itself_or_not_at_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENTFIELD_ARQ_REDIS_URL", HOME_URL)
    assert main(["run", "--shards", "1"]) == 2
    assert "unset AGENTFIELD_ARQ_REDIS_URL" in capsys.readouterr().err
