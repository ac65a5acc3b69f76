-- Store an API key (by digest) and claim the node ids listed for it, unless one is owned by
-- another key; a key id stored before under another digest loses that digest (rotation).
-- KEYS: api key hash, key index, then one node-owner key per listed node
-- ARGV: key id, digest, role, nodes (comma-separated), created_at, name, old-record prefix
for i = 3, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[1] then return {'owned', i - 2} end
end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old and old ~= ARGV[2] then redis.call('DEL', ARGV[7] .. old) end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'role', ARGV[3], 'nodes', ARGV[4],
  'created_at', ARGV[5], 'name', ARGV[6])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end
return {'ok'}
