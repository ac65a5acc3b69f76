-- A person approves or rejects a waiting execution. Approved, it is `running` again with a
-- fresh deadline, and its agent carries on; rejected, the decision is recorded here and the
-- caller then ends the execution `failed` (finish.lua, with its webhook). The same decision
-- again changes nothing; another one is a conflict.
-- KEYS: exec hash, status doc, deadlines, events, index status running, index status waiting,
--       history
-- ARGV: decision ('approved'/'rejected'), now_iso, feedback, response_json ('' none),
--       new_deadline_ms, stream_maxlen
local names = {unpack(DOC_FIELDS)}
names[#names + 1] = 'approval_request_id'
names[#names + 1] = 'approval_state'
local h = hmget(KEYS[1], names)
if not h.status then return {'missing'} end
if not h.approval_request_id then return {'no_approval'} end
if h.approval_state == ARGV[1] then return {'noop', redis.call('GET', KEYS[2])} end
if h.status ~= 'waiting' or h.approval_state ~= 'pending' then
  return {'conflict', h.status}
end
redis.call('HSET', KEYS[1], 'approval_state', ARGV[1], 'approval_responded_at', ARGV[2],
  'approval_feedback', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'approval_response', ARGV[4]) end
if ARGV[1] == 'approved' then
  h.status = 'running'
  redis.call('HSET', KEYS[1], 'status', 'running', 'deadline_ms', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], h.execution_id)
  redis.call('SET', KEYS[2], build_doc(h, nil), 'KEEPTTL')
  append_event(KEYS[4], ARGV[6], h, 'running', nil, nil, KEYS[7])
  index_move({KEYS[6]}, KEYS[5], h.execution_id)
end
return {'ok', redis.call('GET', KEYS[2])}
