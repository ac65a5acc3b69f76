-- A call to a node has ended: free its slot and wake the oldest waiter (free_slot, common.lua).
-- A worker's own settle does this in finish.lua instead; this is for every other end of a call.
-- KEYS: node slots, node waiting list, arq queue
-- ARGV: execution_id, now_ms, most waiters looked at
return free_slot(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
