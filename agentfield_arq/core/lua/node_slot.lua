-- A worker takes one of a node's call slots for an execution, or learns that the node is at its
-- cap. Slots are members of a sorted set scored by when they lapse, so that a slot held by a
-- worker that died frees itself; a worker that holds one already keeps it (and renews it).
-- When the node is full, this run of the arq job is not counted as one of its tries (arq adds
-- one at each start and keeps it on a Retry), the execution's deferral count grows, and it
-- joins the node's waiting list (its run job id, scored by its first deferral), from which a
-- freed slot wakes the oldest (node_slot_free.lua).
-- An execution that is gone or has ended needs no slot: the claim that follows skips it. The
-- node's keys are named here from the hash's node id (as claim.lua names the node's hash), so
-- that the worker needs no round trip to read it first.
-- KEYS: exec hash, arq retry key of the run job
-- ARGV: execution_id, now_ms, lease_ms, fleet-wide cap, run job id, and the key prefixes of
--       node slots, node hashes and node waiting lists
-- Returns {taken (1: a slot is held, 0: wait, 2: none needed), deferrals, cap, node id}.
local found = redis.call('HMGET', KEYS[1], 'status', 'node_id')
local status, node_id = found[1], found[2]
if not node_id or not string.match(node_id, '^[%w_%-]+$') or #node_id > 128 then
  return {2, 0, 0, ''}
end
local slots, waiting = ARGV[6] .. node_id, ARGV[8] .. node_id
if not status or TERMINAL[status] then
  redis.call('ZREM', waiting, ARGV[5])
  return {2, 0, 0, node_id}
end
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
local cap = tonumber(ARGV[4])
local own = tonumber(redis.call('HGET', ARGV[7] .. node_id, 'max_in_flight') or '')
if own and own >= 1 and own < cap then cap = own end
if redis.call('ZSCORE', slots, ARGV[1]) or redis.call('ZCARD', slots) < cap then
  redis.call('ZADD', slots, now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', slots, ARGV[3])
  redis.call('ZREM', waiting, ARGV[5])
  return {1, 0, cap, node_id}
end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
redis.call('ZADD', waiting, 'NX', now, ARGV[5])
-- Waiters ask again well within this (NODE_WAIT_MAX_S < lease), so the list lives while used.
redis.call('PEXPIRE', waiting, ARGV[3])
return {0, redis.call('HINCRBY', KEYS[1], 'deferrals', 1), cap, node_id}
