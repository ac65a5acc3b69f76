-- A worker starts the jobs of one poll (arq_bridge.py, WakingWorker.start_jobs): each id that is
-- still queued, due, and held by no worker takes arq's in-progress lock, as arq's own start does
-- one id at a time (WATCH, EXISTS, ZSCORE, then MULTI/PSETEX: four round trips per id). At most
-- `most` ids are taken, in the order given.
-- A run job (its id starts with the run-job prefix) stays in arq's queue while it runs, as arq
-- wants, but scored at the moment its lock may lapse: no worker can start it before that, so no
-- poll reads it before either (with thousands of slots, the running jobs were most of what every
-- poll read, and each cost this script a ZSCORE and a SET per poll). A run job found held (by
-- another worker, or by this one: the ids after the first `starts`) is scored so again; its lock,
-- renewed by its worker's lease beats, may have outlived its first score.
-- KEYS: the queue
-- ARGV: now_ms, lock_ms, most, arq's in-progress key prefix, run-job id prefix, starts, then the
--       ids to start (`starts` of them), then ids this worker runs
-- Returns the ids taken, each followed by its queue score before it was taken.
local now = tonumber(ARGV[1])
local most = tonumber(ARGV[3])
local run_prefix = ARGV[5]
local last_start = 6 + tonumber(ARGV[6])
local out = {}

local function hide(id, ttl_ms)
  if string.sub(id, 1, #run_prefix) == run_prefix and ttl_ms > 0 then
    redis.call('ZADD', KEYS[1], 'XX', now + ttl_ms, id)
  end
end

for i = 7, last_start do
  if #out >= most * 2 then break end
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    if redis.call('SET', ARGV[4] .. id, '1', 'NX', 'PX', ARGV[2]) then
      out[#out + 1] = id
      out[#out + 1] = score
      hide(id, tonumber(ARGV[2]))
    else
      hide(id, redis.call('PTTL', ARGV[4] .. id))
    end
  end
end
for i = last_start + 1, #ARGV do
  hide(ARGV[i], redis.call('PTTL', ARGV[4] .. ARGV[i]))
end
return out
