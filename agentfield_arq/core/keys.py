"""Every Redis key the project uses, spelled once, and the TTLs and limits that go with them.

Operators can read any of these with `redis-cli` (see the README); the prefix is configurable so
that several deployments can share one Redis. arq's own keys take arq's prefixes, which
arq_bridge.py names.
"""

from __future__ import annotations

import re

from agentfield_arq.core.arq_bridge import IN_PROGRESS_KEY_PREFIX, JOB_KEY_PREFIX, RETRY_KEY_PREFIX

# A non-terminal record outlives its deadline by this much, so that the sweep always sees it.
NON_TERMINAL_GRACE_S = 3600
# Node records are kept this long after their last heartbeat, then forgotten.
NODE_TTL_S = 7 * 86_400
# Telemetry and execution logs are informational: a bounded tail of them, each entry capped.
TELEMETRY_MAXLEN = 2_000
TELEMETRY_BODY_BYTES = 4096
# Webhook attempt records kept per execution (the newest ones).
WEBHOOK_EVENTS_MAX = 50
# Memory: a key's name is at most this long; the change stream keeps about this many entries.
MEMORY_KEY_MAX_BYTES = 512
MEMORY_EVENTS_MAXLEN = 10_000
# Entries of an execution's history kept (its first and the newest; lua/common.lua's
# HISTORY_MAX is the same number).
HISTORY_MAX = 200
# Notes kept per execution (the newest ones), and the caps of one note.
NOTES_MAX = 100
NOTE_MESSAGE_MAX_CHARS = 4096
NOTE_TAGS_MAX = 20
NOTE_TAG_MAX_CHARS = 64
# An approval may wait at most this long (AgentField's SDK asks for 72 hours by default).
APPROVAL_MAX_WAIT_S = 30 * 86_400
# An expired execution's id answers `410 execution_expired` this long after its record is gone
# (store.py: known from the creation time in the id, no key is kept).
EXPIRED_FOR_S = 7 * 86_400


_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def safe_id(value: str) -> bool:
    """Whether an id from a request may be part of a key: no ':' or other separator, so that
    no id can name another record's key (`fin:targets` is not node `fin`'s target list)."""
    return _SAFE_ID.fullmatch(value) is not None


def own_run_id(execution_id: str) -> str:
    """The run an execution starts when it names none: its own id's time and randomness under
    `run_`, so that the run's first execution is known from the run's id (`run_root`) and a run
    of one execution needs no index of its own (core/catalog.py reads the root beside it)."""
    return "run_" + execution_id.removeprefix("exec_")


def run_root(run_id: str) -> str | None:
    """The execution that may have started `run_id` (see `own_run_id`), or None for an id that
    no execution's could be."""
    root = "exec_" + run_id.removeprefix("run_")
    return root if run_id.startswith("run_") and safe_id(root) else None


_SAFE_IDS = re.compile(r"(?:[A-Za-z0-9_-]{1,128}\n)*")


def safe_ids(values: list[str]) -> list[str]:
    """Those of `values` that are `safe_id`s, in order (all of them in one match when all are,
    as a batch's ids nearly always are)."""
    joined = "\n".join(values) + "\n"
    # An id with a newline of its own would pass as two: there must be no more than ours.
    if joined.count("\n") == len(values) and _SAFE_IDS.fullmatch(joined):
        return values
    return [v for v in values if safe_id(v)]


class Keys:
    """Builds every key from one configurable prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def execution(self, execution_id: str) -> str:
        """Hash: the execution's request and scheduling facts (HGETALL-readable)."""
        return f"{self.prefix}:exec:{execution_id}"

    def status_doc(self, execution_id: str) -> str:
        """String: the JSON status document the API returns as is (GET / MGET)."""
        return f"{self.prefix}:exec:{execution_id}:status"

    def children(self, execution_id: str) -> str:
        """Set: ids of the executions started by this one in its run (through `app.call`), which
        its cancel reaches; expires with the execution while it runs."""
        return f"{self.prefix}:exec:{execution_id}:children"

    def webhook(self, execution_id: str) -> str:
        """Hash: the webhook delivery of an execution (state, webhook-id, attempts, last error)."""
        return f"{self.prefix}:exec:{execution_id}:webhook"

    def webhook_secret(self, execution_id: str) -> str:
        """String: the webhook's signing secret, kept out of the hash so that HGETALL (what
        operators read) does not show it."""
        return f"{self.prefix}:exec:{execution_id}:webhook:secret"

    def webhook_events(self, execution_id: str) -> str:
        """List: one JSON record per delivery attempt, oldest first, capped."""
        return f"{self.prefix}:exec:{execution_id}:webhook:events"

    def webhook_view(self, execution_id: str) -> str:
        """String: the JSON object of delivery fields spliced into the status document on read."""
        return f"{self.prefix}:exec:{execution_id}:webhook:view"

    def idempotency(self, digest: str) -> str:
        """String `{request digest} {execution id}`: an Idempotency-Key's first execution, kept
        `AGENTFIELD_ARQ_IDEMPOTENCY_TTL_S`; named by a digest of the key, never the key."""
        return f"{self.prefix}:idem:{digest}"

    @property
    def index_all(self) -> str:
        """Sorted set, every score 0, members execution ids: ordered by id, so by creation time
        (the list route reads it newest first with ZREVRANGEBYLEX)."""
        return f"{self.prefix}:idx:all"

    def index_status(self, status: str) -> str:
        """Sorted set like `index_all`: the executions now in `status`, moved by transitions
        (`waiting` by the approval and awaiter scripts; none for `succeeded`: the global index
        serves that filter, see lua/common.lua)."""
        return f"{self.prefix}:idx:status:{status}"

    def index_target(self, target: str) -> str:
        """Sorted set like `index_all`: the executions of one target."""
        return f"{self.prefix}:idx:target:{target}"

    def index_run(self, run_id: str) -> str:
        """Sorted set like `index_all`: the executions of one run (the run tree's members)."""
        return f"{self.prefix}:idx:run:{run_id}"

    def index_parent(self, execution_id: str) -> str:
        """Sorted set like `index_all`: the children of one execution."""
        return f"{self.prefix}:idx:parent:{execution_id}"

    def index_owner(self, key_id: str) -> str:
        """Sorted set like `index_all`: the executions one key submitted, for keys other than
        an admin's (what such a key may list; an admin lists from `index_all`)."""
        return f"{self.prefix}:idx:owner:{key_id}"

    @property
    def large_docs(self) -> str:
        """Sorted set: the executions whose terminal document is over `batch_result_max_bytes`,
        scored by when that document expires (unix ms); finish.lua adds them (cutting the
        expired), batch reads look here before they read (core/views.py)."""
        return f"{self.prefix}:large-docs"

    @property
    def noted(self) -> str:
        """Sorted set: the executions with notes, scored by when their record expires at the
        latest (unix ms); add_note.lua adds them (cutting the expired), batch reads read the
        notes of these only (core/views.py)."""
        return f"{self.prefix}:noted"

    @property
    def stats_executions(self) -> str:
        """Hash of counters (core/metrics.py): `created|{target}` and `ended|{target}|{status}`."""
        return f"{self.prefix}:stats:executions"

    @property
    def stats_wait(self) -> str:
        """Hash: histogram of enqueue-to-start times (ms): a count per bucket, `count`, `sum`."""
        return f"{self.prefix}:stats:wait-ms"

    @property
    def stats_run(self) -> str:
        """Hash: histogram of start-to-end times (ms), as `stats_wait`."""
        return f"{self.prefix}:stats:run-ms"

    @property
    def stats_agent_calls(self) -> str:
        """Hash of counters: workers' agent calls by outcome."""
        return f"{self.prefix}:stats:agent-calls"

    @property
    def stats_webhook_attempts(self) -> str:
        """Hash of counters: webhook delivery attempts by outcome."""
        return f"{self.prefix}:stats:webhook-attempts"

    @property
    def dead_webhooks(self) -> str:
        """Sorted set (by member): `{failed_at_ms:013d}:{execution_id}` of dead deliveries."""
        return f"{self.prefix}:webhooks:dead"

    @property
    def deadlines(self) -> str:
        """Sorted set: non-terminal execution ids scored by deadline (unix ms)."""
        return f"{self.prefix}:deadlines"

    @property
    def events(self) -> str:
        """Stream (capped): one entry per lifecycle change of any execution."""
        return f"{self.prefix}:events"

    @property
    def telemetry(self) -> str:
        """Stream (capped): SDK telemetry, recorded but never authoritative."""
        return f"{self.prefix}:telemetry"

    @property
    def execution_logs(self) -> str:
        """Stream (capped): agents' structured execution logs (AgentField SDK), recorded only."""
        return f"{self.prefix}:execution-logs"

    @property
    def queue(self) -> str:
        """arq's queue (sorted set of job ids scored by run time)."""
        return f"{self.prefix}:queue"

    @property
    def workers(self) -> str:
        """Sorted set: live worker ids scored by when their lease lapses (unix ms)."""
        return f"{self.prefix}:workers"

    @property
    def holders(self) -> str:
        """Hash: execution id -> id of the worker calling its agent now (claimed, not yet
        settled, handed back or awaiting a callback)."""
        return f"{self.prefix}:holders"

    @property
    def nodes(self) -> str:
        """Set: ids of registered nodes."""
        return f"{self.prefix}:nodes"

    @property
    def all_keys(self) -> str:
        """A glob matching every key of this prefix (SCAN MATCH, keyspace notifications); arq's
        own job keys are not under it."""
        return f"{self.prefix}:*"

    def memory(self, scope: str, scope_id: str) -> str:
        """Hash: memory key -> its JSON record (`MemoryRecord`), one hash per scope. The scope
        id is the key's tail, so any text there cannot name another record's key."""
        return f"{self.prefix}:mem:{scope}:{scope_id}"

    def vectors(self, scope: str, scope_id: str) -> str:
        """Hash: vector key -> its JSON record (`VectorRecord`: metadata, norm, times)."""
        return f"{self.prefix}:vec:{scope}:{scope_id}"

    def vector_numbers(self, scope: str, scope_id: str) -> str:
        """Hash: vector key -> its numbers, packed little-endian float32 (as AgentField's Go
        server keeps `[]float32`): a fifth of their JSON, and read without parsing."""
        return f"{self.prefix}:vec-numbers:{scope}:{scope_id}"

    @property
    def memory_events(self) -> str:
        """Stream (capped): one entry per memory set or delete, read by the change routes."""
        return f"{self.prefix}:memory-events"

    def history(self, execution_id: str) -> str:
        """List: the execution's lifecycle entries, one JSON object each (core/history.py's
        `Stored`), oldest first, capped at HISTORY_MAX (the first kept); made with the hash's
        TTL by create.lua, and given it again by each step that changes the hash's."""
        return f"{self.prefix}:exec:{execution_id}:history"

    def notes(self, execution_id: str) -> str:
        """List: the execution's notes, one JSON object each, oldest first, capped."""
        return f"{self.prefix}:exec:{execution_id}:notes"

    def notes_view(self, execution_id: str) -> str:
        """String: `{"notes": [...]}`, spliced into the status document on read."""
        return f"{self.prefix}:exec:{execution_id}:notes:view"

    def node(self, node_id: str) -> str:
        """Hash: one node's registration, base URL and last heartbeat."""
        return f"{self.prefix}:node:{node_id}"

    def node_slots(self, node_id: str) -> str:
        """Sorted set: ids of executions whose agent call to this node is in flight, scored by
        when the slot lapses (unix ms); expires with its newest slot."""
        return f"{self.prefix}:node-slots:{node_id}"

    def node_waiting(self, node_id: str) -> str:
        """Sorted set: the run job ids of executions waiting for a slot of this node, scored by
        their first deferral (unix ms); a freed slot wakes the oldest."""
        return f"{self.prefix}:node-waiting:{node_id}"

    def node_targets(self, node_id: str) -> str:
        """Hash: name -> "reasoner" | "skill" for one node; what makes a target valid."""
        return f"{self.prefix}:node-targets:{node_id}"

    def api_key(self, digest: str) -> str:
        """Hash: one API key's id, role and owned node ids, under the SHA-256 of the key."""
        return f"{self.prefix}:api-key:{digest}"

    def api_key_rate(self, digest: str, window: int) -> str:
        """String (counter): requests of one API key in one rate window (a unix second)."""
        return f"{self.prefix}:api-key:{digest}:rate:{window}"

    @property
    def api_keys(self) -> str:
        """Hash: API key id -> the key's digest (what `keys list` and `keys revoke` read)."""
        return f"{self.prefix}:api-keys"

    def key_active(self, key_id: str) -> str:
        """Sorted set: unfinished executions submitted with one API key, scored by deadline."""
        return f"{self.prefix}:key-active:{key_id}"

    def node_owner(self, node_id: str) -> str:
        """String: the id of the agent key that owns a node id (no TTL: kept until revoked)."""
        return f"{self.prefix}:node-owner:{node_id}"

    @property
    def dispatch_secret(self) -> str:
        """String: the secret of per-dispatch callback tokens, made once, shared by all."""
        return f"{self.prefix}:dispatch-secret"

    def node_awaiting(self, node_id: str) -> str:
        """Sorted set: ids of executions a node accepted with 202, scored by their deadline;
        what is dispatched again when the node comes back as a new instance."""
        return f"{self.prefix}:node-awaiting:{node_id}"

    @staticmethod
    def arq_job(job_id: str) -> str:
        """arq's job payload key (arq does not prefix it per queue)."""
        return JOB_KEY_PREFIX + job_id

    @staticmethod
    def arq_retry(job_id: str) -> str:
        """arq's count of the runs of a job so far (its `job_try`)."""
        return RETRY_KEY_PREFIX + job_id

    @staticmethod
    def arq_in_progress(job_id: str) -> str:
        """arq's lock that says a worker holds the job."""
        return IN_PROGRESS_KEY_PREFIX + job_id
