-- A worker takes an execution to invoke its agent: queued -> running, or running -> running after
-- a worker that crashed without being reaped (attempt + 1; the attempt is the fence token of
-- every later step). Not claimed: an execution that is terminal, waiting for its agent's
-- callback, queued under a newer job id (a hand-back or retry moved it: the older job is
-- `superseded`), held by a worker whose lease is live, or past its deadline (`overdue`:
-- the worker ends it `timeout` without calling the agent).
-- The first claim queues the caller's `started` webhook notice, if it asked for one. A claim
-- also reads how to call the node (its key: the node key prefix and the hash's node id), so
-- that the worker needs no round trip of its own for it.
-- KEYS: exec hash, status doc, events, holders, workers, index status queued,
--       index status running, queue, started notice arq job, enqueue-to-start histogram,
--       history
-- ARGV: now_iso, now_ms, stream_maxlen, job_id, worker_id ('' records no holder),
--       started job id, started job payload, notice job ttl_ms, node key prefix, then the node
--       fields to read
-- Returns {'ok', the node fields' values (false where unset), then the hash's field/value
-- pairs}, or {outcome, status}.
local flat = redis.call('HGETALL', KEYS[1])
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
of_key(KEYS[1], h)
if not h.status then return {'missing'} end
if TERMINAL[h.status] then return {'terminal', h.status} end
if h.phase == 'awaiting_callback' then return {'awaiting', h.status} end
if (h.job or h.execution_id) ~= ARGV[4] then return {'superseded', h.status} end
if tonumber(h.deadline_ms) <= tonumber(ARGV[2]) then return {'overdue', h.status} end
-- Held even by this very worker: arq starting a job it still runs (its lock lapsed).
local holder = redis.call('HGET', KEYS[4], h.execution_id)
if holder then
  local lease = redis.call('ZSCORE', KEYS[5], holder)
  if lease and tonumber(lease) > tonumber(ARGV[2]) then return {'held', h.status} end
end
local attempt = tostring(tonumber(h.attempt or '0') + 1)
local set = {'status', 'running', 'phase', 'invoking', 'attempt', attempt}
if not (h.started_ms or h.started_at) then
  -- The hash keeps the start in ms only; its RFC 3339 goes into the document.
  set[#set + 1] = 'started_ms'; set[#set + 1] = ARGV[2]
  h.started_ms = ARGV[2]
  h.started_at = ARGV[1]
end
redis.call('HSET', KEYS[1], unpack(set))
h.attempt = attempt
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], h.execution_id, ARGV[5]) end
if h.status == 'queued' then
  h.status = 'running'
  redis.call('SET', KEYS[2], build_doc(h, nil), 'KEEPTTL')
  local job = nil
  if queue_notice(h, 'started', KEYS[8], KEYS[9], ARGV[6], ARGV[7], ARGV[8], ARGV[2]) then
    job = 'webhook'
  end
  append_event(KEYS[3], ARGV[3], h, 'running', job, {'worker', ARGV[5]}, KEYS[11])
  if h.created_ms then observe(KEYS[10], math.max(tonumber(ARGV[2]) - tonumber(h.created_ms), 0)) end
  index_move({KEYS[6]}, KEYS[7], h.execution_id)
else  -- a worker's attempt after another's that was not handed back: no stream entry
  record_history(KEYS[11], ARGV[2], nil, h, 'running', {'worker', ARGV[5]})
end
h.status = 'running'
local out = {'ok'}
local node = {}
for i = 10, #ARGV do node[#node + 1] = ARGV[i] end
local values = redis.call('HMGET', ARGV[9] .. (h.node_id or ''), unpack(node))
for i = 1, #node do out[#out + 1] = values[i] end
for k, v in pairs(h) do out[#out + 1] = k; out[#out + 1] = v end
return out
