-- Delete one memory value and append the deletion to the memory event stream in the same step.
-- Deleting a missing key changes nothing and appends nothing.
-- KEYS: scope hash, memory events stream
-- ARGV: field, now_iso, events maxlen, scope, scope_id, agent_id, workflow_id, node_id
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if not previous then return {'missing'} end
redis.call('HDEL', KEYS[1], ARGV[1])
local fields = {'action', 'delete', 'scope', ARGV[4], 'scope_id', ARGV[5], 'key', ARGV[1],
  'timestamp', ARGV[2], 'agent_id', ARGV[6], 'workflow_id', ARGV[7], 'node_id', ARGV[8]}
local at = string.find(previous, ',"data":', 1, true)
if at then
  fields[#fields + 1] = 'previous_data'
  fields[#fields + 1] = string.sub(previous, at + 8, -2)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
return {'ok'}
