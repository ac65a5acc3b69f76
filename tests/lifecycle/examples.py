"""Examples kept: named sequences replayed in both tiers, and the outcomes a CI run must reach."""

from __future__ import annotations

from collections.abc import Callable

from agentfield_arq.core.outbox import Outcome as Delivered
from tests.lifecycle.lifecycle import LifecycleMachine
from tests.lifecycle.model import (
    MAX_QUEUED,
    NAME,
    NODE,
    PAUSE_STEP,
)

# Outcomes the unit tier's derandomized (`ci`) run reaches dozens of times each: asserted
# there, so that a change that stops the machine exploring (a precondition never true, a rule
# that always refuses) fails rather than passes unseen. Rarer ones are pinned by REGRESSIONS.
EXPLORED = frozenset({
    "create: ok", "create: TargetNotFound", "create: QueueFull",
    "claim: ok", "claim: terminal",
    "await_callback: True", "await_callback: False",
    "finish: ok", "finish: noop", "finish: conflict",
    "progress: ok", "progress: conflict",
    "begin: ok", "begin: missing",
    "redrive: pending", "redrive: delivering", "redrive: WebhookNotFound",
    "redrive: ExecutionNotTerminal",
    "heartbeat: True", "heartbeat: False",
})  # fmt: skip


# ---------------------------------------------------------------------------- examples kept
#
# Sequences hypothesis found (while the model was written, each exposed a wrong prediction of
# the model, not of the scripts) and the corners they pin, replayed in both tiers by name.


def _a_reclaimed_attempt_cannot_be_settled_by_its_first_worker(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.claim(worker=0, index=0)
    m.claim(worker=1, index=0)  # worker 0 looked dead: arq handed the job on, attempt 2
    m.worker_settles(worker=0, succeeded=True, answer=1)  # stale
    m.worker_settles(worker=1, succeeded=False, answer=0)  # ok
    assert m.runs[0].status == "failed"


def _the_sweep_freezes_the_document_of_a_never_started_execution(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.time_passes(step=PAUSE_STEP - 1, sweep=False)
    m.time_passes(step=PAUSE_STEP - 1, sweep=True)
    assert m.runs[0].status == "timeout"
    m.agent_calls_back(index=0, status="succeeded", answer=1, duration_ms=None)  # conflict


def _a_redriven_delivered_webhook_starts_a_new_round(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.agent_calls_back(index=0, status="succeeded", answer=1, duration_ms=7)
    m.delivery_begins(courier=0, index=0)
    m.delivery_records(courier=0, outcome=Delivered.RETRY)
    m.delivery_begins(courier=0, index=0)
    m.delivery_records(courier=0, outcome=Delivered.DELIVERED)
    m.redrive(index=0)  # pending again, delivered_at kept
    m.delivery_begins(courier=1, index=0)  # attempt 2, round 1
    assert m.couriers[1].attempt == 3
    assert m.couriers[1].round_attempt == 1


def _a_redrive_while_arq_holds_the_lock_is_refused(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.cancel(index=0)
    m.delivery_begins(courier=0, index=0)
    m.delivery_records(courier=0, outcome=Delivered.DEAD)
    m.arq_holds_the_delivery_lock(index=0)
    m.redrive(index=0)  # busy
    m.arq_holds_the_delivery_lock(index=0)  # released
    m.redrive(index=0)  # a new round
    assert m.runs[0].delivery is not None
    assert m.runs[0].delivery.state == "pending"


def _a_lost_last_attempt_kills_the_delivery(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.agent_calls_back(index=0, status="failed", answer=0, duration_ms=None)
    for _ in range(m.settings.webhook_max_attempts):
        m.delivery_begins(courier=0, index=0)
        m.delivery_worker_crashes(courier=0)
    m.delivery_begins(courier=1, index=0)  # records the lost last attempt: dead
    assert m.runs[0].delivery is not None
    assert m.runs[0].delivery.state == "failed"
    # Rare in the derandomized run since runs end their own jobs (`ci` reaches it no more).
    assert m.backend.outcomes["begin: done failed"] == 1


def _an_expired_record_leaves_the_deadline_set_at_the_next_sweep(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.time_passes(step=PAUSE_STEP, sweep=False)  # the record expired before any sweep
    m.time_passes(step=0, sweep=True)
    m.claim(worker=0, index=0)  # missing


def _a_repeated_callback_is_a_noop_whatever_its_duration(m: LifecycleMachine) -> None:
    m.create(webhook=True, node=NODE, name=NAME)
    m.claim(worker=0, index=0)
    m.agent_accepts(worker=0)
    m.claim(worker=1, index=0)  # awaiting: not claimed again
    m.agent_calls_back(index=0, status="succeeded", answer=2, duration_ms=None)
    m.agent_calls_back(index=0, status="succeeded", answer=2, duration_ms=7)  # noop
    m.agent_calls_back(index=0, status="succeeded", answer=1, duration_ms=None)  # conflict


def _a_full_queue_refuses_without_writing(m: LifecycleMachine) -> None:
    for _ in range(MAX_QUEUED):
        m.create(webhook=False, node=NODE, name=NAME)
    m.create(webhook=False, node=NODE, name=NAME)  # queue_full
    assert len(m.runs) == MAX_QUEUED
    m.node_goes_silent(node=NODE)
    m.nodes_are_listed()  # forgets it
    m.create(webhook=False, node=NODE, name=NAME)  # no node: refused before the queue check


def _a_freed_slot_wakes_the_oldest_deferred_waiter(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.create(webhook=False, node=NODE, name=NAME)
    m.worker_takes_a_slot(worker=0, index=0)  # the node's one slot
    m.worker_takes_a_slot(worker=1, index=1)  # at the cap: deferred, waiting
    m.worker_takes_a_slot(worker=1, index=1)  # still: a second deferral
    m.arq_defers_a_run_job(index=1, step=4)  # arq puts its job back for later
    m.worker_gives_a_slot_back(worker=0)  # wakes it: due now
    assert m.queued[m.runs[1].id] == m.now
    m.worker_takes_a_slot(worker=1, index=1)  # taken, off the waiting list
    assert m.held[NODE] == {m.runs[1].id: m.now + m.slots.lease_ms}


def _a_workers_settle_ends_its_run_job_and_wakes_its_slots_waiter(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.create(webhook=False, node=NODE, name=NAME)
    m.worker_takes_a_slot(worker=0, index=0)  # the node's one slot
    m.worker_takes_a_slot(worker=1, index=1)  # at the cap: deferred, waiting
    m.arq_defers_a_run_job(index=1, step=4)
    m.claim(worker=0, index=0)
    m.worker_settles(worker=0, succeeded=True, answer=1, ends_run=True)
    assert m.runs[0].id not in m.queued  # arq's finish_job has nothing left to do
    assert m.queued[m.runs[1].id] == m.now
    assert not m.held[NODE]


def _an_agents_202_ends_the_run_job_and_frees_its_slot(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.worker_takes_a_slot(worker=0, index=0)
    m.claim(worker=0, index=0)
    m.agent_accepts(worker=0, ends_run=True)
    assert m.runs[0].id not in m.queued
    assert not m.held[NODE]


def _an_ended_execution_leaves_the_waiting_list(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.create(webhook=False, node=NODE, name=NAME)
    m.worker_takes_a_slot(worker=0, index=1)  # the second takes the node's slot
    m.worker_takes_a_slot(worker=1, index=0)  # the first waits
    m.cancel(index=0)
    m.worker_takes_a_slot(worker=1, index=0)  # none needed: it leaves the list
    assert not m.waiting[NODE]
    m.time_passes(step=PAUSE_STEP, sweep=True)  # the slot set expires with its lease


def _a_lapsed_workers_execution_is_handed_back_unspent(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.claim(worker=0, index=0)  # attempt 1, held by a worker that never beat
    m.worker_crashes(worker=0)
    m.worker_lease_ticks(worker=1)  # its holder has no live lease: queued, unspent
    r = m.runs[0]
    assert (r.status, r.attempt, r.uncharged) == ("queued", 1, 1)
    assert r.job != r.id
    m.claim(worker=1, index=0, first_job=True)  # the first job is superseded
    m.claim(worker=1, index=0)  # attempt 2, from the fresh job
    m.worker_settles(worker=1, succeeded=True, answer=1)
    assert m.backend.outcomes["claim: superseded"] == 1
    assert r.status == "succeeded"


def _a_live_holder_keeps_its_execution_until_its_lease_lapses(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.worker_lease_ticks(worker=0)  # worker 0's lease is live
    m.claim(worker=0, index=0)
    m.claim(worker=1, index=0)  # held by a live worker
    m.claim(worker=0, index=0)  # held, even by itself: arq starting a job it still runs
    m.worker_lease_ticks(worker=1)  # nothing to hand back
    m.time_passes(step=8, sweep=False)  # worker 0 stalls past its lease
    m.worker_lease_ticks(worker=1)  # handed back
    m.worker_settles(worker=0, succeeded=True, answer=0)  # stale: no longer its attempt
    assert m.backend.outcomes["claim: held"] == 2
    assert m.backend.outcomes["finish: stale"] == 1
    assert m.runs[0].status == "queued"


def _an_overdue_or_parked_execution_is_not_the_workers(m: LifecycleMachine) -> None:
    m.create(webhook=False, node=NODE, name=NAME)
    m.create(webhook=False, node=NODE, name=NAME)
    m.claim(worker=0, index=1)
    m.agent_accepts(worker=0)
    m.worker_settles(worker=0, succeeded=True, answer=0)  # stale: parked for its callback
    m.time_passes(step=PAUSE_STEP - 1, sweep=False)
    m.time_passes(step=5, sweep=False)  # at the deadline, not yet swept
    m.claim(worker=1, index=0)  # overdue: ended `timeout` without a call
    assert m.backend.outcomes["claim: overdue"] == 1
    assert m.runs[0].status == "timeout"


REGRESSIONS: dict[str, Callable[[LifecycleMachine], None]] = {
    f.__name__.lstrip("_"): f
    for f in (
        _a_reclaimed_attempt_cannot_be_settled_by_its_first_worker,
        _the_sweep_freezes_the_document_of_a_never_started_execution,
        _a_redriven_delivered_webhook_starts_a_new_round,
        _a_redrive_while_arq_holds_the_lock_is_refused,
        _a_lost_last_attempt_kills_the_delivery,
        _an_expired_record_leaves_the_deadline_set_at_the_next_sweep,
        _a_repeated_callback_is_a_noop_whatever_its_duration,
        _a_full_queue_refuses_without_writing,
        _a_freed_slot_wakes_the_oldest_deferred_waiter,
        _an_ended_execution_leaves_the_waiting_list,
        _a_workers_settle_ends_its_run_job_and_wakes_its_slots_waiter,
        _an_agents_202_ends_the_run_job_and_frees_its_slot,
        _a_lapsed_workers_execution_is_handed_back_unspent,
        _a_live_holder_keeps_its_execution_until_its_lease_lapses,
        _an_overdue_or_parked_execution_is_not_the_workers,
    )
}
