"""One invariant per guarantee, checked against the Redis snapshot after every step."""

from __future__ import annotations

import msgspec
from hypothesis.stateful import invariant

from agentfield_arq.core.keys import WEBHOOK_EVENTS_MAX
from agentfield_arq.kernel.models import Execution
from agentfield_arq.kernel.status import TERMINAL_STATUSES, Status
from tests.lifecycle.machine import MachineBase
from tests.lifecycle.model import NODE, OTHER_NODE

_doc_decoder = msgspec.json.Decoder(Execution[msgspec.Raw], strict=True)


class Invariants(MachineBase):
    """The guarantees the README makes, each one method."""

    def check(self) -> None:
        """Every invariant, as hypothesis runs them after each step (for `replay`)."""
        self.status_document_and_hash_agree_with_the_model()
        self.only_the_current_attempt_is_recorded()
        self.the_deadline_set_holds_exactly_the_unfinished()
        self.nothing_is_queued_without_its_record()
        self.the_stream_tells_each_change_once_in_order()
        self.ttls_are_set_on_everything_that_must_expire()
        self.the_delivery_is_the_models_and_delivered_stays_delivered()
        self.the_node_index_names_every_live_node()
        self.node_slots_and_waiting_lists_are_the_models()
        self.holders_are_the_workers_invoking_and_hand_backs_spend_no_attempt()

    @invariant()
    def status_document_and_hash_agree_with_the_model(self) -> None:
        """Exactly one status, the model's, in hash and document; a terminal document is
        frozen; each decodes strictly into the wire model, with its webhook view."""
        snap = self.snapshot()
        for r in self.runs:
            h, doc = snap.hashes[r.id], snap.docs[r.id]
            if r.expired:
                assert not h, r
                assert doc is None, r
                continue
            assert h["status"] == r.status, (h, r)
            assert doc is not None
            view = snap.views[r.id]
            parsed = _doc_decoder.decode(doc if not view else doc[:-1] + b"," + view[1:])
            assert parsed.status == r.status
            assert (parsed.execution_id, parsed.run_id) == (r.id, h["run_id"])
            assert "execution_id" not in h  # the hash's key names it
            assert parsed.webhook_registered is r.webhook
            assert parsed.type == r.kind
            assert (parsed.started_at is not None) == r.started, (parsed, r)
            if r.terminal:
                assert doc == r.doc, "a terminal document changed"
                assert parsed.error == (r.digest[1] if r.digest and r.digest[1] else None)
                assert (parsed.result is not msgspec.UNSET) == (r.status == "succeeded")

    @invariant()
    def only_the_current_attempt_is_recorded(self) -> None:
        """The attempt count and phase are the model's: only claims move them."""
        snap = self.snapshot()
        for r in self.runs:
            if r.expired:
                continue
            h = snap.hashes[r.id]
            assert h["attempt"] == str(r.attempt), (h, r)
            assert h.get("phase") == r.phase, (h, r)

    @invariant()
    def the_deadline_set_holds_exactly_the_unfinished(self) -> None:
        """Every non-terminal execution has its deadline entry, no terminal one has."""
        snap = self.snapshot()
        assert snap.deadlines == {r.id for r in self.runs if r.in_deadlines}
        for r in self.runs:
            if not r.expired:
                assert r.in_deadlines is not r.terminal, r

    @invariant()
    def nothing_is_queued_without_its_record(self) -> None:
        """The queue is the model's, each job due when the model says, and every job in it has
        its arq record (unless Redis expired the record with its execution; arq drops it)."""
        snap = self.snapshot()
        assert snap.queue == self.queued, (snap.queue, self.queued)
        for job in snap.queue:
            assert self.keys.arq_job(job) in snap.ttls_ms or job in self.dead_jobs, job

    @invariant()
    def the_stream_tells_each_change_once_in_order(self) -> None:
        """One lifecycle entry per status change, in order; a terminal entry that queued a
        delivery says so (it wakes the workers)."""
        snap = self.snapshot()
        for r in self.runs:
            mine = [e for e in snap.stream if e["execution_id"] == r.id]
            assert [e["status"] for e in mine] == r.events, (mine, r.events)
            for e in mine:
                assert ("job" in e) == (e["status"] in TERMINAL_STATUSES and r.webhook), e

    @invariant()
    def ttls_are_set_on_everything_that_must_expire(self) -> None:
        """Every key but the shared indexes, streams and the deployment's metric counters
        expires (records, documents, delivery keys, job records, locks, nodes, the list
        indexes of targets, runs, parents and owners; the sweep cuts the global and status
        ones); a terminal record within the retention."""
        snap = self.snapshot()
        k = self.keys
        shared = {k.queue, k.deadlines, k.events, k.nodes, k.dead_webhooks, k.workers, k.holders}
        shared |= {k.index_all, *(k.index_status(s) for s in Status)}
        # Prometheus counters and histograms: they must not reset (core/metrics.py).
        shared |= {k.stats_executions, k.stats_wait, k.stats_run, k.stats_agent_calls}
        shared.add(k.stats_webhook_attempts)
        for key, ttl in snap.ttls_ms.items():
            assert key in shared or ttl > 0, f"{key} never expires"
        for r in self.runs:
            if r.terminal and not r.expired:
                assert snap.ttls_ms[k.execution(r.id)] <= self.settings.retention_s * 1000, r

    @invariant()
    def the_delivery_is_the_models_and_delivered_stays_delivered(self) -> None:
        """A delivery exists exactly for terminal executions with a webhook; its state, counts,
        records, view and dead-index entry are the model's; attempts never go back and a
        delivered one keeps its `delivered_at` through redrives."""
        snap = self.snapshot()
        for r in self.runs:
            w, d = snap.webhooks[r.id], r.delivery
            if r.expired or d is None:
                assert not w, (w, r)
                continue
            assert w["state"] == d.state, (w, d)
            assert (int(w["attempts"]), int(w["round_attempts"])) == (d.attempts, d.round)
            assert ("delivered_at" in w) == d.delivered, (w, d)
            assert len(snap.webhook_events[r.id]) == min(d.records, WEBHOOK_EVENTS_MAX)
            view = msgspec.json.decode(snap.views[r.id] or b"{}")
            assert view["webhook_status"] == d.state
            member = w.get("dead_member")
            assert (member is not None) == (d.state == "failed"), w
            if member is not None:
                assert member in snap.dead

    @invariant()
    def the_node_index_names_every_live_node(self) -> None:
        """The registry's set holds every live node, and an expired one only until a listing
        forgets it."""
        snap = self.snapshot()
        assert snap.nodes == self.node_ids, (snap.nodes, self.node_ids)
        assert set(self.targets) <= snap.nodes

    @invariant()
    def node_slots_and_waiting_lists_are_the_models(self) -> None:
        """Each node's slots (lapse times) and waiting list (first deferrals) are the model's,
        and each execution counts its deferrals."""
        snap = self.snapshot()
        for node in (NODE, OTHER_NODE):
            held = snap.slot_sets[self.keys.node_slots(node)]
            assert held == self.held.get(node, {}), (node, held, self.held)
            waiting = snap.slot_sets[self.keys.node_waiting(node)]
            assert waiting == self.waiting.get(node, {}), (node, waiting, self.waiting)
        for r in self.runs:
            if not r.expired:
                assert snap.hashes[r.id].get("deferrals", "0") == str(r.deferrals), r

    @invariant()
    def holders_are_the_workers_invoking_and_hand_backs_spend_no_attempt(self) -> None:
        """The leases and holders are the model's; every live execution a worker holds is
        running and invoking; each execution's run job and count of unspent hand-backs are
        the model's (the attempt limit discounts `uncharged`)."""
        snap = self.snapshot()
        assert snap.workers == self.leases, (snap.workers, self.leases)
        assert snap.holders == self.holders, (snap.holders, self.holders)
        for r in self.runs:
            if r.expired:
                continue
            h = snap.hashes[r.id]
            if r.id in snap.holders:
                assert (h["status"], h.get("phase")) == ("running", "invoking"), (h, r)
            assert h.get("job", r.id) == r.job, (h, r)
            assert int(h.get("uncharged", "0")) == r.uncharged, (h, r)
