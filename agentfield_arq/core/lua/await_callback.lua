-- The agent answered 202: release the worker, the execution stays running until the callback or
-- its deadline. Fenced by attempt so that a stale worker cannot change a newer attempt. The
-- node's index of accepted executions (pruned of those past their deadline) lets a new instance
-- of the node have them dispatched again. The execution's history records the step
-- (`accepted`; the lifecycle stream does not: its status is unchanged).
-- The worker's run job and call slot end in this same step, whatever its outcome (end_run).
-- KEYS: exec hash, holders, node awaiting, history, then for a worker's run (store.py, RunEnd):
--       the queue, the run job's arq record, lock and try count, and, when it holds a call slot,
--       the node's slots and waiting list
-- ARGV: attempt, now_ms, index_ttl_s, the run job's id ('' none), most waiters looked at
if ARGV[4] ~= '' then
  end_run(KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[4],
    string.match(KEYS[1], ':exec:([^:]+)$'), ARGV[2], ARGV[5])
end
local h = hmget(KEYS[1], {'execution_id', 'status', 'attempt', 'phase', 'deadline_ms'})
if h.status ~= 'running' or h.attempt ~= ARGV[1] or h.phase ~= 'invoking' then
  return {'skipped', h.status or 'missing'}
end
redis.call('HSET', KEYS[1], 'phase', 'awaiting_callback')
redis.call('HDEL', KEYS[2], h.execution_id)
redis.call('ZADD', KEYS[3], h.deadline_ms, h.execution_id)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
record_history(KEYS[4], ARGV[2], nil, h, 'accepted', {})
return {'ok'}
