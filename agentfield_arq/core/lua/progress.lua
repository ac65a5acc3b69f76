-- A non-terminal report from an agent: queued -> running, running -> running (progress kept).
-- KEYS: exec hash, status doc, events, index status queued, index status running
-- ARGV: now_iso, now_ms, stream_maxlen, new_status, progress_json ('' for none), index cutoff,
--       index ttl_s
local h = hmget(KEYS[1], DOC_FIELDS)
if not h.status then return {'missing'} end
if TERMINAL[h.status] then return {'conflict', h.status} end
if ARGV[4] == 'queued' then
  if h.status == 'queued' then return {'ok', redis.call('GET', KEYS[2])} end
  return {'conflict', h.status}
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[5]) end
if h.status == 'queued' then
  h.status = 'running'
  h.started_at = ARGV[1]
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'started_ms', ARGV[2])
  redis.call('SET', KEYS[2], build_doc(h, nil), 'KEEPTTL')
  append_event(KEYS[3], ARGV[3], h, 'running')
  index_move({KEYS[4]}, KEYS[5], h.execution_id, ARGV[6], ARGV[7])
end
return {'ok', redis.call('GET', KEYS[2])}
