-- A non-terminal report from an agent: queued -> running, running -> running. Its progress (any
-- JSON) and message are kept and shown in the document, with a `progress` lifecycle entry; the
-- caller's webhook notices go out as asked: `started` on the start, `progress` at most once per
-- notice bucket (the throttle: the caller passes the bucket of now).
-- KEYS: exec hash, status doc, events, index status queued, index status running, queue,
--       started notice arq job, progress notice arq job, enqueue-to-start histogram, history
-- ARGV: now_iso, now_ms, stream_maxlen, new_status, progress_json ('' none),
--       message ('' none), started job id, started job payload,
--       progress job id, progress job payload, notice bucket, notice job ttl_ms
local h = hmget(KEYS[1], DOC_FIELDS)
if not h.status then return {'missing'} end
if TERMINAL[h.status] then return {'conflict', h.status} end
if ARGV[4] == 'queued' then
  if h.status == 'queued' then return {'ok', redis.call('GET', KEYS[2])} end
  return {'conflict', h.status}
end
local set = {}
local function keep(name, value)
  h[name] = value
  set[#set + 1] = name
  set[#set + 1] = value
end
if ARGV[5] ~= '' then keep('progress', ARGV[5]) end
if ARGV[6] ~= '' then keep('progress_message', ARGV[6]) end
local reported = #set > 0
local starting = h.status == 'queued'
if starting then
  keep('status', 'running')
  keep('started_ms', ARGV[2])
  h.started_at = ARGV[1]  -- in the document; the hash keeps the start in ms only
end
if #set == 0 then return {'ok', redis.call('GET', KEYS[2])} end
local job = nil
if starting and queue_notice(h, 'started', KEYS[6], KEYS[7], ARGV[7], ARGV[8], ARGV[12], ARGV[2]) then
  job = 'webhook'
end
if reported and h.notice_bucket ~= ARGV[11]
    and queue_notice(h, 'progress', KEYS[6], KEYS[8], ARGV[9], ARGV[10], ARGV[12], ARGV[2]) then
  keep('notice_bucket', ARGV[11])
  job = 'webhook'
end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('SET', KEYS[2], build_doc(h, nil), 'KEEPTTL')
if starting then
  append_event(KEYS[3], ARGV[3], h, 'running', job, nil, KEYS[10])
  if h.created_ms then observe(KEYS[9], math.max(tonumber(ARGV[2]) - tonumber(h.created_ms), 0)) end
  index_move({KEYS[4]}, KEYS[5], h.execution_id)
end
if reported then
  append_event(KEYS[3], ARGV[3], h, 'progress', job, {'progress', ARGV[5], 'message', ARGV[6]},
    KEYS[10])
end
return {'ok', redis.call('GET', KEYS[2])}
