-- The agent answered 202: release the worker, the execution stays running until the callback or
-- its deadline. Fenced by attempt so that a stale worker cannot change a newer attempt. The
-- node's index of accepted executions (pruned of those past their deadline) lets a new instance
-- of the node have them dispatched again. The execution's history records the step
-- (`accepted`; the lifecycle stream does not: its status is unchanged).
-- KEYS: exec hash, holders, node awaiting, history
-- ARGV: attempt, now_ms, index_ttl_s
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
