-- Give a running execution back to the queue under a fresh job id: a worker's hand-back (drain,
-- node down, connection refused), a retry after a backoff, the reaper taking the executions of a
-- worker whose lease lapsed, or a node that came back as a new instance without reporting.
-- Fenced: only while the execution is running in the expected phase, at the expected attempt,
-- job and holder, so that each attempt is handed back at most once and a stale worker cannot
-- move a newer attempt. The old job's arq keys go (arq would run it again otherwise); a worker
-- still finishing it only deletes them again. A hand-back that is not charged (nothing was
-- sent, or the worker went away) adds to `uncharged`, which the attempt limit discounts.
-- The reaper also asks that the holder's lease has lapsed (checked here, atomically with the
-- hand-back, so that a worker that started meanwhile is never robbed).
-- The execution's call slot of its node (slots.py) goes too: a reaped worker cannot give it back.
-- KEYS: exec hash, status doc, events, queue, holders, new job, old job, old in-progress,
--       old retry, node awaiting, workers, node slots, index status queued,
--       index status running, history
-- ARGV: now_ms, stream_maxlen, run_ms, new_job_id, job_payload, job_ttl_ms, old_job_id,
--       attempt, phase, holder ('' any), charge ('1'/'0'), reason, lapsed_only ('1'/'0')
local h = hmget(KEYS[1], DOC_FIELDS)
if h.status ~= 'running' or (h.phase or '') ~= ARGV[9] or h.attempt ~= ARGV[8] then
  return {'skipped', h.status or 'missing'}
end
local job = redis.call('HGET', KEYS[1], 'job') or h.execution_id
if job ~= ARGV[7] then return {'skipped', h.status} end
local holder = redis.call('HGET', KEYS[5], h.execution_id)
if ARGV[10] ~= '' and holder ~= ARGV[10] then return {'skipped', h.status} end
if ARGV[13] == '1' and holder then
  local lease = redis.call('ZSCORE', KEYS[11], holder)
  if lease and tonumber(lease) > tonumber(ARGV[1]) then return {'skipped', h.status} end
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'job', ARGV[4], 'requeued', ARGV[12])
if ARGV[11] ~= '1' then redis.call('HINCRBY', KEYS[1], 'uncharged', 1) end
redis.call('HDEL', KEYS[1], 'phase')
redis.call('HDEL', KEYS[5], h.execution_id)
redis.call('ZREM', KEYS[10], h.execution_id)
redis.call('ZREM', KEYS[12], h.execution_id)
redis.call('DEL', KEYS[7], KEYS[8], KEYS[9])
redis.call('ZREM', KEYS[4], ARGV[7])
enqueue_job(KEYS[4], KEYS[6], ARGV[4], ARGV[5], ARGV[6], ARGV[3], false)
h.status = 'queued'
redis.call('SET', KEYS[2], build_doc(h, nil), 'KEEPTTL')
append_event(KEYS[3], ARGV[2], h, 'queued', nil, {'reason', ARGV[12]}, KEYS[15])
index_move({KEYS[14]}, KEYS[13], h.execution_id)
return {'ok'}
