-- A registration's claim on its node id: the first agent key to register an id owns it, and
-- the id is added to the key's record (so that revoking the key frees it). Admin keys act on
-- any node and claim none.
-- KEYS: node-owner key, the registering key's record
-- ARGV: key id, node id, '1' for an admin key
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then return 'mine' end
if ARGV[3] == '1' then return 'admin' end
if owner then return 'owned' end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'owned' end  -- the key was revoked meanwhile
redis.call('SET', KEYS[1], ARGV[1])
local nodes = redis.call('HGET', KEYS[2], 'nodes')
if nodes and nodes ~= '' then nodes = nodes .. ',' .. ARGV[2] else nodes = ARGV[2] end
redis.call('HSET', KEYS[2], 'nodes', nodes)
return 'claimed'
