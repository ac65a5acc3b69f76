-- Record a heartbeat for a registered node only (an unknown node must re-register).
-- KEYS: node hash, node targets
-- ARGV: now_ms, now_iso, ttl_s, status ('' keeps the current one)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_heartbeat_ms', ARGV[1], 'last_heartbeat_at', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'agent_status', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
