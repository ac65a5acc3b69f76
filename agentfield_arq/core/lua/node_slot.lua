-- A worker takes one of a node's call slots for an execution, or learns that the node is at its
-- cap. Slots are members of a sorted set scored by when they lapse, so that a slot held by a
-- worker that died frees itself; a worker that holds one already keeps it (and renews it).
-- When the node is full, this run of the arq job is not counted as one of its tries (arq adds
-- one at each start and keeps it on a Retry), the execution's deferral count grows, and it
-- joins the node's waiting list (its run job id, scored by its first deferral), from which a
-- freed slot wakes the oldest (node_slot_free.lua).
-- An execution that is gone or has ended needs no slot: the claim that follows skips it.
-- KEYS: node slots, node hash, arq retry key of the run job, exec hash, node waiting list
-- ARGV: execution_id, now_ms, lease_ms, fleet-wide cap, run job id
-- Returns {taken (1: a slot is held, 0: wait, 2: none needed), deferrals, cap}.
local status = redis.call('HGET', KEYS[4], 'status')
if not status or TERMINAL[status] then
  redis.call('ZREM', KEYS[5], ARGV[5])
  return {2, 0, 0}
end
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap = tonumber(ARGV[4])
local own = tonumber(redis.call('HGET', KEYS[2], 'max_in_flight') or '')
if own and own >= 1 and own < cap then cap = own end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < cap then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('ZREM', KEYS[5], ARGV[5])
  return {1, 0, cap}
end
if tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then redis.call('DECR', KEYS[3]) end
redis.call('ZADD', KEYS[5], 'NX', now, ARGV[5])
-- Waiters ask again well within this (NODE_WAIT_MAX_S < lease), so the list lives while used.
redis.call('PEXPIRE', KEYS[5], ARGV[3])
return {0, redis.call('HINCRBY', KEYS[4], 'deferrals', 1), cap}
