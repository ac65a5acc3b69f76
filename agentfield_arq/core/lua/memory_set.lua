-- Store one memory value in its scope's hash, keeping the first write's created_at, refusing a
-- new key past the scope's cap, refreshing the scope's expiry, and appending the change to the
-- memory event stream in the same step.
-- KEYS: scope hash, memory events stream
-- ARGV: field, record tail (the JSON after created_at), now_iso, max_fields, ttl_s ('' none),
--       events maxlen, scope, scope_id, data_json, agent_id, workflow_id, node_id (the writer)
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if not previous and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return {'full'}
end
local created = ARGV[3]
if previous then
  created = string.match(previous, '^{"created_at":"([^"]*)"') or ARGV[3]
end
local record = '{"created_at":"' .. created .. '"' .. ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], record)
if ARGV[5] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
local fields = {'action', 'set', 'scope', ARGV[7], 'scope_id', ARGV[8], 'key', ARGV[1],
  'timestamp', ARGV[3], 'data', ARGV[9], 'agent_id', ARGV[10], 'workflow_id', ARGV[11],
  'node_id', ARGV[12]}
if previous then
  local at = string.find(previous, ',"data":', 1, true)
  if at then
    fields[#fields + 1] = 'previous_data'
    fields[#fields + 1] = string.sub(previous, at + 8, -2)
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
return {'ok', record}
