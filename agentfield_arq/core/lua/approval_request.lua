-- A running execution asks for a person's approval (AgentField's request-approval): it becomes
-- `waiting`, with the approval's own deadline in place of its own, and holds no worker slot
-- (its agent already answered 202). Asking again with the same request id changes nothing.
-- KEYS: exec hash, status doc, deadlines, events, index status running, index status waiting,
--       history
-- ARGV: request_id, request_url, callback_url, now_iso, expires_ms, expires_iso,
--       stream_maxlen, keep_ms (how long the records and history must outlive the deadline),
--       now_ms
local names = {unpack(DOC_FIELDS)}
names[#names + 1] = 'approval_request_id'
names[#names + 1] = 'approval_state'
local h = hmget(KEYS[1], names)
if not h.status then return {'missing'} end
if h.status == 'waiting' and h.approval_request_id == ARGV[1] and h.approval_state == 'pending' then
  return {'noop', redis.call('GET', KEYS[2])}
end
if h.status ~= 'running' then return {'conflict', h.status} end
h.status = 'waiting'
redis.call('HDEL', KEYS[1], 'approval_responded_at', 'approval_feedback', 'approval_response')
redis.call('HSET', KEYS[1], 'status', 'waiting', 'phase', 'awaiting_callback',
  'approval_request_id', ARGV[1], 'approval_request_url', ARGV[2],
  'approval_callback_url', ARGV[3], 'approval_state', 'pending',
  'approval_requested_at', ARGV[4], 'approval_expires_at', ARGV[6], 'deadline_ms', ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[5], h.execution_id)
local doc = build_doc(h, nil)
redis.call('SET', KEYS[2], doc, 'KEEPTTL')
local keep = tonumber(ARGV[5]) + tonumber(ARGV[8]) - tonumber(ARGV[9])
for _, key in ipairs({KEYS[1], KEYS[2], KEYS[7]}) do
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < keep then redis.call('PEXPIRE', key, keep) end
end
append_event(KEYS[4], ARGV[7], h, 'waiting', nil, nil, KEYS[7])
index_move({KEYS[5]}, KEYS[6], h.execution_id)
return {'ok', doc}
