-- An execution waits for a child that waits (AgentField's awaiter-status): running <-> waiting,
-- nothing else. An execution waiting for its own approval is left to the approval.
-- KEYS: exec hash, status doc, events, index status running, index status waiting, history
-- ARGV: status ('waiting'/'running'), stream_maxlen
local names = {unpack(DOC_FIELDS)}
names[#names + 1] = 'approval_state'
local h = hmget(KEYS[1], names)
if not h.status then return {'missing'} end
if h.status == ARGV[1] then return {'noop', redis.call('GET', KEYS[2])} end
if (h.status ~= 'running' and h.status ~= 'waiting') or h.approval_state == 'pending' then
  return {'conflict', h.status}
end
h.status = ARGV[1]
redis.call('HSET', KEYS[1], 'status', ARGV[1])
local doc = build_doc(h, nil)
redis.call('SET', KEYS[2], doc, 'KEEPTTL')
append_event(KEYS[3], ARGV[2], h, ARGV[1], nil, nil, KEYS[6])
if ARGV[1] == 'waiting' then
  index_move({KEYS[4]}, KEYS[5], h.execution_id)
else
  index_move({KEYS[5]}, KEYS[4], h.execution_id)
end
return {'ok', doc}
