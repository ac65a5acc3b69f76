-- Create an execution and enqueue its arq job in one atomic step, if the target exists. With an
-- Idempotency-Key, its record is checked first and written in the same step: the same request
-- again is answered with the first execution, another request with the key is refused.
-- KEYS: node_targets, exec hash, status doc, deadlines, queue, arq job, events,
--       idempotency record, execution counters, then the indexes it joins: all, status queued,
--       target, run[, parent]
-- ARGV: name, execution_id, enqueue_ms, deadline_ms, ttl_s, job_payload, job_ttl_ms,
--       stream_maxlen, max_queued, index cutoff, index ttl_s, request digest ('' no key),
--       idempotency ttl_s, then field/value pairs of the hash
if ARGV[12] ~= '' then
  local first = redis.call('GET', KEYS[8])
  if first then
    local digest, execution_id = string.match(first, '^(%S+) (%S+)$')
    if digest == ARGV[12] then return {'replayed', execution_id} end
    return {'idempotency_key_reused'}
  end
end
local kind = redis.call('HGET', KEYS[1], ARGV[1])
if not kind then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_node'} end
  return {'no_name'}
end
-- Refuse new work while the workers are this far behind (or down), rather than fill Redis.
if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[9]) then return {'queue_full'} end
local fields = {'type', kind, 'status', 'queued', 'attempt', '0', 'deadline_ms', ARGV[4]}
local h = {type = kind, status = 'queued'}
for i = 14, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  h[ARGV[i]] = ARGV[i + 1]
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[3], build_doc(h, nil), 'EX', ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
enqueue_job(KEYS[5], KEYS[6], ARGV[2], ARGV[6], ARGV[7], ARGV[3], false)
append_event(KEYS[7], ARGV[8], h, 'queued')
if ARGV[12] ~= '' then
  redis.call('SET', KEYS[8], ARGV[12] .. ' ' .. ARGV[2], 'EX', ARGV[13])
end
redis.call('HINCRBY', KEYS[9], 'created|' .. h.target, 1)
for i = 10, #KEYS do index_add(KEYS[i], ARGV[2], ARGV[10], ARGV[11]) end
return {'ok', kind}
