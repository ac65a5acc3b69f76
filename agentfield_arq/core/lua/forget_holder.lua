-- Drop an execution's holder entry if it still names this (dead) worker.
-- KEYS: holders
-- ARGV: execution_id, worker_id
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
