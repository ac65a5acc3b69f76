-- Record one fact about an execution on its hash (how telling its agent went), only while the
-- hash exists: a note never recreates an expired record without its TTL.
-- KEYS: exec hash
-- ARGV: field, value
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
