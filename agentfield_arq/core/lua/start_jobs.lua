-- A worker starts the jobs of one poll (arq_bridge.py, WakingWorker.start_jobs): each id that is
-- still queued, due, and held by no worker takes arq's in-progress lock, as arq's own start does
-- one id at a time (WATCH, EXISTS, ZSCORE, then MULTI/PSETEX: four round trips per id). At most
-- `most` ids are taken, in the order given. An id held already (another worker runs it: arq keeps
-- a job in its queue until it ends) is returned with what its lock has left, so that the worker
-- does not send it again before then.
-- KEYS: the queue
-- ARGV: now_ms, lock_ms, most, arq's in-progress key prefix, then the job ids
-- Returns two lists: the ids taken, each followed by its queue score; the ids found held, each
-- followed by its lock's PTTL (ms; -1 for a lock without expiry).
local now = tonumber(ARGV[1])
local most = tonumber(ARGV[3])
local taken, held = {}, {}
for i = 5, #ARGV do
  if #taken >= most * 2 then break end
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    if redis.call('SET', ARGV[4] .. id, '1', 'NX', 'PX', ARGV[2]) then
      taken[#taken + 1] = id
      taken[#taken + 1] = score
    else
      held[#held + 1] = id
      held[#held + 1] = redis.call('PTTL', ARGV[4] .. id)
    end
  end
end
return {taken, held}
