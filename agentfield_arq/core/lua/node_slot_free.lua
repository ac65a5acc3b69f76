-- A call to a node has ended: free its slot and wake the oldest waiter (free_slot, common.lua).
-- A worker's own step that records the call's answer (finish.lua, await_callback.lua: end_run)
-- does this itself; this is for every other end of a call.
-- KEYS: node slots, node waiting list, arq queue
-- ARGV: execution_id, now_ms, most waiters looked at
return free_slot(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
