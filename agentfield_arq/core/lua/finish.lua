-- Make an execution terminal, once. A repeated identical update is a no-op; any other update of
-- a terminal execution is a conflict. The worker fences on its attempt (and on still invoking:
-- an attempt handed back is no longer its to settle), the sweep on the deadline.
-- With a webhook registered, the delivery and its arq job are created in this same step, so a
-- terminal execution always has its delivery queued (and a non-terminal one never does).
-- A cancel or a timeout of an execution that was started (or has children) queues the job that
-- tells its agent and cancels its descendants, in the same step. An execution already cancelled
-- or timed out takes a `cancelled` report (its agent saying that it stopped) as a no-op.
-- KEYS: exec hash, status doc, deadlines, events,
--       webhook hash, webhook events, webhook view, queue, delivery arq job,
--       children set, tell-agent arq job, holders,
--       index status queued, index status running, index of the new status (unused for
--       UNINDEXED_STATUS), start-to-end histogram, execution counters, index status waiting,
--       history, agent-call counters, large documents, then for a worker settling its own run
--       (store.py, RunEnd): the queue, the run job's arq record, lock and try count, and, when it
--       holds a call slot, the node's slots and waiting list
-- ARGV: status, now_iso, now_ms, retention_s, stream_maxlen, expected_attempt ('' any),
--       require_overdue ('1'/'0'), error ('' none), result_json ('' none), duration_ms ('' derive),
--       webhook_id, delivery job id, delivery job payload, delivery job ttl_ms,
--       prefix of the submitting keys' sets of unfinished executions,
--       tell-agent job id, tell-agent job payload, '1' to have the document sent back (up to
--       10 MiB with its result: only for a caller that answers with it), the outcome of the agent
--       call that brought this report, counted whatever this step does ('' none: counted apart,
--       or no call), per-document cap of batch reads (bytes), the run job's id ('' none), most
--       waiters of the node looked at
if ARGV[19] ~= '' then redis.call('HINCRBY', KEYS[20], ARGV[19], 1) end
if ARGV[21] ~= '' then
  end_run(KEYS[22], KEYS[23], KEYS[24], KEYS[25], KEYS[26], KEYS[27], ARGV[21],
    string.match(KEYS[1], ':exec:([^:]+)$'), ARGV[3], ARGV[22])
end
local h = hmget(KEYS[1], DOC_FIELDS)
if not h.status then return {'missing'} end
-- 64 bits of SHA-1 tell a repeat from another report; a digest stored whole before compares
-- by its first 16 digits.
local digest = string.sub(redis.sha1hex(ARGV[1] .. '\n' .. ARGV[8] .. '\n' .. ARGV[9]), 1, 16)
if TERMINAL[h.status] then
  local stopped = ARGV[1] == 'cancelled' and (h.status == 'cancelled' or h.status == 'timeout')
  if (h.digest and string.sub(h.digest, 1, 16) == digest) or stopped then
    if ARGV[18] == '1' then return {'noop', redis.call('GET', KEYS[2])} end
    return {'noop'}
  end
  return {'conflict', h.status}
end
if ARGV[6] ~= '' and (h.attempt ~= ARGV[6] or h.status ~= 'running' or h.phase ~= 'invoking') then
  return {'stale', h.status}
end
if ARGV[7] == '1' and tonumber(h.deadline_ms) > tonumber(ARGV[3]) then return {'not_due', h.status} end
local outcome = {completed_at = ARGV[2]}
if ARGV[10] ~= '' then
  outcome.duration_ms = tonumber(ARGV[10])
elseif h.started_ms then
  outcome.duration_ms = tonumber(ARGV[3]) - tonumber(h.started_ms)
end
if ARGV[8] ~= '' then outcome.error = ARGV[8] end
if ARGV[9] ~= '' then outcome.result = ARGV[9] end
local leaving = ({queued = KEYS[13], running = KEYS[14], waiting = KEYS[18]})[h.status]
h.status = ARGV[1]
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'digest', digest)
redis.call('HDEL', KEYS[1], 'phase')
redis.call('HDEL', KEYS[12], h.execution_id)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[19], ARGV[4])
local doc = build_doc(h, outcome)
redis.call('SET', KEYS[2], doc, 'EX', ARGV[4])
-- Batch reads send a document over their cap without its result, and look here first (views.py).
if #doc > tonumber(ARGV[20]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[21], '-inf', ARGV[3])
  redis.call('ZADD', KEYS[21], tonumber(ARGV[3]) + tonumber(ARGV[4]) * 1000, h.execution_id)
  redis.call('EXPIRE', KEYS[21], ARGV[4])
end
if h.started_ms then observe(KEYS[16], math.max(tonumber(ARGV[3]) - tonumber(h.started_ms), 0)) end
redis.call('HINCRBY', KEYS[17], 'ended|' .. (h.target or '') .. '|' .. ARGV[1], 1)
redis.call('ZREM', KEYS[3], h.execution_id)
-- The submitting key's set, named from the owner field (not known before this step).
if h.owner and h.owner ~= '' then redis.call('ZREM', ARGV[15] .. h.owner, h.execution_id) end
local indexed = (not UNINDEXED_STATUS[ARGV[1]]) and KEYS[15] or nil
index_move({leaving}, indexed, h.execution_id)
local delivers = h.webhook_url and h.webhook_url ~= ''
-- `job`: this step queues a delivery, so the entry wakes idle workers for it.
append_event(KEYS[4], ARGV[5], h, ARGV[1], delivers and 'webhook' or nil, nil, KEYS[19])
if (ARGV[1] == 'cancelled' or ARGV[1] == 'timeout')
    and (h.started_ms or h.started_at or redis.call('EXISTS', KEYS[10]) == 1) then
  enqueue_job(KEYS[8], KEYS[11], ARGV[16], ARGV[17], ARGV[14], ARGV[3], false)
end
if delivers then
  local event_type = 'execution.failed'
  if ARGV[1] == 'succeeded' then event_type = 'execution.completed' end
  redis.call('HSET', KEYS[5], 'state', 'pending', 'webhook_id', ARGV[11],
    'event_type', event_type, 'attempts', '0', 'round_attempts', '0', 'created_at', ARGV[2])
  redis.call('EXPIRE', KEYS[5], ARGV[4])
  webhook_view(KEYS[5], KEYS[6], KEYS[7])
  enqueue_job(KEYS[8], KEYS[9], ARGV[12], ARGV[13], ARGV[14], ARGV[3], false)
end
if ARGV[18] == '1' then return {'ok', doc} end
return {'ok'}
