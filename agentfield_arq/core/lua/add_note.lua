-- An agent's note on an execution (AgentField's `app.note`): appended to its list (the newest
-- `max_notes` kept), the view that reads splice into the status document rebuilt, and a
-- `note` entry on the lifecycle stream. Notes expire with the execution.
-- KEYS: exec hash, notes list, notes view, events, executions with notes
-- ARGV: note_json, max_notes, stream_maxlen, execution_id, now_ms, the record's latest expiry
--       (unix ms)
if redis.call('HEXISTS', KEYS[1], 'status') == 0 then return {'missing'} end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
expire_like(KEYS[1], KEYS[2])
redis.call('SET', KEYS[3],
  '{"notes":[' .. table.concat(redis.call('LRANGE', KEYS[2], 0, -1), ',') .. ']}')
expire_like(KEYS[1], KEYS[3])
-- Batch reads read the notes of the executions named here only (core/views.py).
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[4])
redis.call('PEXPIREAT', KEYS[5], ARGV[6])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'execution_id', ARGV[4],
  'event', 'note', 'note', ARGV[1])
return {'ok'}
