-- Revoke an API key: its record goes, and the node ids it owned are free to be claimed again.
-- KEYS: key index
-- ARGV: key id, api-key record prefix, node-owner prefix
local digest = redis.call('HGET', KEYS[1], ARGV[1])
if not digest then return 0 end
local nodes = redis.call('HGET', ARGV[2] .. digest, 'nodes') or ''
for node in string.gmatch(nodes, '[^,]+') do
  if redis.call('GET', ARGV[3] .. node) == ARGV[1] then redis.call('DEL', ARGV[3] .. node) end
end
redis.call('DEL', ARGV[2] .. digest)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
