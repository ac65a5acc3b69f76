-- Store one vector: its JSON record (metadata, norm, times; keeping the first write's
-- created_at) and its packed float32 numbers, in the scope's two hashes, refusing a new key
-- past the scope's cap and refreshing the scope's expiry.
-- KEYS: records hash, numbers hash
-- ARGV: field, record tail (the JSON after created_at), now_iso, max_fields, ttl_s ('' none),
--       packed numbers
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if not previous and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return {'full'}
end
local created = ARGV[3]
if previous then
  created = string.match(previous, '^{"created_at":"([^"]*)"') or ARGV[3]
end
redis.call('HSET', KEYS[1], ARGV[1], '{"created_at":"' .. created .. '"' .. ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[6])
if ARGV[5] ~= '' then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return {'ok'}
