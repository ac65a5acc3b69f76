-- A worker starts the jobs of one poll (arq_bridge.py, WakingWorker.start_jobs): each id that is
-- still queued, due, and held by no worker takes arq's in-progress lock, as arq's own start does
-- one id at a time (WATCH, EXISTS, ZSCORE, then MULTI/PSETEX: four round trips per id, spent
-- also on every id that another worker runs). At most `most` ids are taken, in the order given.
-- KEYS: the queue
-- ARGV: now_ms, lock_ms, most, arq's in-progress key prefix, then the job ids
-- Returns the ids taken, each followed by its queue score.
local now = tonumber(ARGV[1])
local most = tonumber(ARGV[3])
local out = {}
for i = 5, #ARGV do
  if #out >= most * 2 then break end
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= now
      and redis.call('SET', ARGV[4] .. ARGV[i], '1', 'NX', 'PX', ARGV[2]) then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = score
  end
end
return out
