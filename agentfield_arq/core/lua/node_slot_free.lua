-- A call to a node has ended: free its slot, and wake the oldest execution waiting for one by
-- making its deferred run job due now. Only a job whose queue score is in the future is moved
-- (LT: never later), so that a job a worker is running, whose score is in the past, is left to
-- arq; an execution whose job is gone leaves the list. A waiter not woken still asks again at
-- the end of its own wait.
-- KEYS: node slots, node waiting list, arq queue
-- ARGV: execution_id, now_ms, most waiters looked at
redis.call('ZREM', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
for _, waiter in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)) do
  local score = redis.call('ZSCORE', KEYS[3], waiter)
  if not score then
    redis.call('ZREM', KEYS[2], waiter)
  elseif tonumber(score) > now then
    redis.call('ZADD', KEYS[3], 'XX', 'LT', now, waiter)
    redis.call('ZREM', KEYS[2], waiter)
    return waiter
  end
end
return false
