-- Drop node ids whose records have expired from the registry's set, each only if its record
-- is still absent: a node that registered again since the caller looked keeps its place.
-- KEYS: nodes set, then the node hash of each id
-- ARGV: the ids, in the order of their hashes
local dropped = 0
for i, node_id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    dropped = dropped + redis.call('SREM', KEYS[1], node_id)
  end
end
return dropped
