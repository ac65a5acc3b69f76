-- Create an execution and enqueue its arq job in one atomic step, if the target exists. A child
-- (its parent named) of a parent in the same run is indexed under the parent, so that a cancel
-- reaches it; a cancelled parent takes no new children. With an Idempotency-Key, its record is
-- checked first and written in the same step: the same request again is answered with the first
-- execution, another request with the key is refused.
-- A node silent for longer than its lease (no heartbeat, no registration) is refused unless the
-- caller asked to queue anyway (lease_ms ''): its executions would only wait.
-- KEYS: node_targets, exec hash, status doc, deadlines, queue, arq job, events,
--       the submitting key's set of unfinished executions, webhook secret, node hash,
--       idempotency record, execution counters, the execution's history, the indexes it joins
--       (one per letter of ARGV[18]: all, status queued, target, the run's unless the run is
--       this execution's own (core/keys.py, run_root), the submitting key's unless it is an
--       admin's, a child's parent index), and for a child: the parent's hash, the parent's
--       children set (last)
-- ARGV: name, execution_id, enqueue_ms, deadline_ms, ttl_s, job_payload, job_ttl_ms,
--       stream_maxlen, max_queued, max_active (0: not counted), webhook secret ('' none),
--       its ttl_s, lease_ms ('' no check), index cutoff, index ttl_s, request digest ('' no key),
--       idempotency ttl_s, how each index is written (a letter per index: 'a' added, 'k' added
--       and kept `index ttl_s`, 'c' also cut at the index cutoff; see index_add in common.lua),
--       then field/value pairs of the hash
if ARGV[16] ~= '' then
  local first = redis.call('GET', KEYS[11])
  if first then
    local digest, execution_id = string.match(first, '^(%S+) (%S+)$')
    if digest == ARGV[16] then return {'replayed', execution_id} end
    return {'idempotency_key_reused'}
  end
end
local kind = redis.call('HGET', KEYS[1], ARGV[1])
if not kind then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_node'} end
  return {'no_name'}
end
if ARGV[13] ~= '' then
  local heard = redis.call('HGET', KEYS[10], 'last_heartbeat_ms')
  if heard and tonumber(ARGV[3]) - tonumber(heard) > tonumber(ARGV[13]) then
    return {'node_unavailable'}
  end
end
-- Refuse new work while the workers are this far behind (or down), rather than fill Redis.
-- Only jobs due now count: webhook retries waiting for their time (scored later) do not.
if redis.call('ZCOUNT', KEYS[5], '-inf', ARGV[3]) >= tonumber(ARGV[9]) then
  return {'queue_full'}
end
-- One key's unfinished executions, scored by deadline (finish.lua removes each; those past
-- their deadline are the sweep's and no longer count).
local max_active = tonumber(ARGV[10])
if max_active > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', ARGV[3])
  if redis.call('ZCARD', KEYS[8]) >= max_active then return {'key_queue_full'} end
end
local last_index = 13 + #ARGV[18]
local parent_hash, parent_children = KEYS[last_index + 1], KEYS[last_index + 2]
local parent = nil
if parent_children then
  parent = hmget(parent_hash, {'run_id', 'status'})
  if parent.status == 'cancelled' then return {'parent_cancelled'} end
end
local fields = {'type', kind, 'status', 'queued', 'attempt', '0', 'deadline_ms', ARGV[4]}
local h = {type = kind, status = 'queued', execution_id = ARGV[2]}
for i = 19, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  h[ARGV[i]] = ARGV[i + 1]
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[3], build_doc(h, nil), 'EX', ARGV[5])
if ARGV[11] ~= '' then redis.call('SET', KEYS[9], ARGV[11], 'EX', ARGV[12]) end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
if max_active > 0 then
  redis.call('ZADD', KEYS[8], ARGV[4], ARGV[2])
  redis.call('EXPIRE', KEYS[8], ARGV[5])
end
if parent and parent.run_id and parent.run_id == h.run_id then
  redis.call('SADD', parent_children, ARGV[2])
  expire_like(parent_hash, parent_children)
end
enqueue_job(KEYS[5], KEYS[6], ARGV[2], ARGV[6], ARGV[7], ARGV[3], false)
append_event(KEYS[7], ARGV[8], h, 'queued', nil, nil, KEYS[13])
redis.call('EXPIRE', KEYS[13], ARGV[5])
if ARGV[16] ~= '' then
  redis.call('SET', KEYS[11], ARGV[16] .. ' ' .. ARGV[2], 'EX', ARGV[17])
end
redis.call('HINCRBY', KEYS[12], 'created|' .. h.target, 1)
for i = 14, last_index do
  local how = string.sub(ARGV[18], i - 13, i - 13)
  if how == 'a' then
    index_add(KEYS[i], ARGV[2])
  elseif how == 'k' then
    index_keep(KEYS[i], ARGV[2], ARGV[15])
  else
    index_cut(KEYS[i], ARGV[2], ARGV[14], ARGV[15])
  end
end
return {'ok', kind}
