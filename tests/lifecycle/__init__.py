"""The execution and delivery lifecycle as a hypothesis state machine over the real Lua scripts.

Each rule is one thing that can happen in production: the API creates or cancels an execution,
one of two workers claims, parks (202) or settles an attempt, a worker crashes mid-attempt, a
worker renews its lease and its reaper hands back (unspent) what a lapsed worker held, a late
agent calls back, the sweep times out overdue executions, one of two delivery workers
begins or records a webhook attempt (or crashes), a caller redrives the webhook, arq finishes a
job or holds its in-progress lock, nodes register, heartbeat, go silent and are listed, Redis
expires a record, the clock moves. Each rule calls the same store/outbox/nodes/runner methods
that production calls, with the scripts' `now` arguments taken from a fake clock, predicts the
script's answer from a small pure-Python model, and asserts it. After every step each guarantee
is checked by one invariant against a snapshot of Redis read in two pipelines.

The same machine runs in two tiers (tests/unit/test_model.py over fakeredis,
tests/integration/test_model.py over the session's valkey); a `Backend` is the only difference.

    model.py        the model's state (`Run`, `Delivery`) and the machine's bounds
    machine.py      the base: production objects, clock, predictions shared by rules
    executions.py   rules: create, cancel, claim, 202, settle, crash, callbacks, time + sweep
    deliveries.py   rules: redrive, webhook begin/record, delivery crash, arq's finish and lock
    nodes.py        rules: register, heartbeat, expiry, listing (forget_nodes)
    slots.py        rules: a node's call slots, the waiting list, arq deferring a run job
    leases.py       rules: a worker's lease turn (beat, then reap: requeue.lua's hand-backs)
    invariants.py   one invariant per guarantee
    snapshot.py     what the invariants read
    examples.py     named sequences kept from failures, and what a CI run must reach

Adding a transition (a new script, or a new branch of one): give the model the state it changes
(`Run`, `Delivery`, or the machine's own), add one `@rule` to the mixin of the actor that calls
it, calling the production method and asserting the model's prediction (record the outcome with
`_stepped("name: outcome")`); for a new guarantee add one `@invariant` to invariants.py and
list it in `check`, reading what it needs from the `Snapshot` (add the keys to
`snapshot.read`). A new actor is a new mixin of `MachineBase`, composed in lifecycle.py.
"""

from tests.lifecycle.examples import EXPLORED, REGRESSIONS
from tests.lifecycle.lifecycle import LifecycleMachine, machine_for, replay
from tests.lifecycle.model import Backend

__all__ = ["EXPLORED", "REGRESSIONS", "Backend", "LifecycleMachine", "machine_for", "replay"]
