-- The agent answered 202: release the worker, the execution stays running until the callback or
-- its deadline. Fenced by attempt so that a stale worker cannot change a newer attempt.
-- KEYS: exec hash
-- ARGV: attempt
local h = hmget(KEYS[1], {'status', 'attempt', 'phase'})
if h.status ~= 'running' or h.attempt ~= ARGV[1] or h.phase ~= 'invoking' then
  return {'skipped', h.status or 'missing'}
end
redis.call('HSET', KEYS[1], 'phase', 'awaiting_callback')
return {'ok'}
