-- Look an API key up by its digest and count the request against the key's rate, in one step.
-- KEYS: api key hash, the key's rate counter of this window
-- ARGV: requests allowed per window (0: no limit), window length (s)
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {'unknown'} end
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('HGET', KEYS[1], 'role') ~= 'admin' then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
  if n > limit then return {'limited'} end
end
return {'ok', unpack(fields)}
