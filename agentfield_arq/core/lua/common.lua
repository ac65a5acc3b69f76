-- Shared by every script (scripts.py prepends it). Builds the JSON status document that the API
-- returns as is, from hash fields plus the outcome; the result is spliced in as raw JSON so that
-- any JSON value (null, a list, a big integer) survives byte for byte.
local TERMINAL = {succeeded = true, failed = true, cancelled = true, timeout = true}

-- Unix milliseconds in RFC 3339, UTC, to the millisecond (kernel/codec.py's rfc3339).
local function rfc3339(ms)
  local s = math.floor(ms / 1000)
  local days = math.floor(s / 86400)
  local t = s - days * 86400
  -- Days to a civil date (H. Hinnant's algorithm), in March-based years.
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', year, month, day,
    math.floor(t / 3600), math.floor(t % 3600 / 60), t % 60, ms % 1000)
end

-- The creation time: written in RFC 3339 by records before, now told by `created_ms` alone (the
-- start's likewise by `started_ms`).
local function created_at(h)
  return h.created_at or (h.created_ms and rfc3339(tonumber(h.created_ms))) or nil
end

local function build_doc(h, outcome)
  local doc = {
    execution_id = h.execution_id,
    run_id = h.run_id,
    status = h.status,
    target = h.target,
    type = h.type,
    created_at = created_at(h),
    -- The contract lists it even before a start; records before kept it in RFC 3339.
    started_at = h.started_at or (h.started_ms and rfc3339(tonumber(h.started_ms))) or cjson.null,
    webhook_registered = (h.webhook_url ~= nil and h.webhook_url ~= ''),
    parent_execution_id = h.parent_execution_id,
    progress_message = h.progress_message,
    retry_of = h.retry_of,
  }
  local result = nil
  if outcome then
    doc.completed_at = outcome.completed_at
    doc.duration_ms = outcome.duration_ms
    doc.error = outcome.error
    result = outcome.result
  end
  local s = cjson.encode(doc)
  -- Raw JSON values, spliced in as they were stored.
  if h.progress then
    s = string.sub(s, 1, -2) .. ',"progress":' .. h.progress .. '}'
  end
  if result then
    s = string.sub(s, 1, -2) .. ',"result":' .. result .. '}'
  end
  return s
end

-- The execution's id is its hash key's last part (keys.py), not a field of the hash (records
-- written before kept it as one): `of_key` adds it to a hash read, when there is one.
local function of_key(key, h)
  if next(h) ~= nil and not h.execution_id then h.execution_id = string.match(key, ':exec:([^:]+)$') end
  return h
end

local function hmget(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  local h = {}
  for i, name in ipairs(names) do
    if values[i] then h[name] = values[i] end
  end
  return of_key(key, h)
end

-- Queue an arq job (its record layout is arq_bridge.py's): the record, expiring after `ttl_ms`,
-- then its id in the queue, scored by when it may run (unix ms). With `nx`, a record already
-- there is kept: it belongs to the same job, queued or running.
local function enqueue_job(queue, job_key, job_id, payload, ttl_ms, run_ms, nx)
  if nx then
    redis.call('SET', job_key, payload, 'NX', 'PX', ttl_ms)
  else
    redis.call('SET', job_key, payload, 'PX', ttl_ms)
  end
  redis.call('ZADD', queue, run_ms, job_id)
end

-- `key` expires when `source` does (a key of an execution, with its hash).
local function expire_like(source, key)
  local ttl = redis.call('PTTL', source)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end

-- An execution's history (keys.history): each of its lifecycle entries again, one JSON object
-- with the entry's stream id (`id`), or its time (`ms`) for a step that writes no stream entry
-- (a claim of an execution already running, an agent's 202; an id's first part is its time),
-- its attempt and its extra fields. It is made by create.lua with the hash's TTL and keeps it
-- (a push keeps a key's TTL): a step that changes the hash's TTL sets the history's too. A chatty
-- execution keeps its first entry (its creation) and the newest HISTORY_MAX - 1 (keys.py's
-- HISTORY_MAX is the same number); the first entry then counts the ones dropped (`dropped`), so
-- that a reader numbers every entry (core/history.py) without a read here.
local HISTORY_MAX = 200

local function record_history(history, ms, id, h, status, extra)
  local s = id and '{"id":"' .. id .. '"' or '{"ms":' .. ms
  s = s .. ',"status":' .. cjson.encode(status)
  if h.attempt and h.attempt ~= '0' then s = s .. ',"attempt":' .. tonumber(h.attempt) end
  for i = 1, #extra, 2 do
    local name, value = extra[i], extra[i + 1]
    if value ~= '' then
      -- A progress report is any JSON, spliced in raw as the status document does.
      local shown = name == 'progress' and value or cjson.encode(value)
      s = s .. ',' .. cjson.encode(name) .. ':' .. shown
    end
  end
  if redis.call('RPUSH', history, s .. '}') > HISTORY_MAX then
    local first = redis.call('LPOP', history)
    redis.call('LPOP', history)
    local dropped = tonumber(string.match(first, '^{"dropped":(%d+),') or '0')
    if dropped > 0 then first = string.gsub(first, '^{"dropped":%d+,', '{', 1) end
    redis.call('LPUSH', history, '{"dropped":' .. (dropped + 1) .. ',' .. string.sub(first, 2))
  end
end

-- Append one entry to the lifecycle stream, capped near `maxlen`: the execution's id, target,
-- run and submitting key (what event subscribers filter on; the key's id is never shown) and its
-- status; and the same entry to the execution's history (its key: `history`).
-- `job` names a job queued by the same step (a `queued` entry always implies one): it wakes
-- idle workers (arq_bridge.py).
-- `extra`: more field/value pairs (a progress entry's `progress` and `message`, a claim's
-- `worker`, a hand-back's `reason`).
local function append_event(events, maxlen, h, status, job, extra, history)
  local entry = {'execution_id', h.execution_id, 'status', status, 'target', h.target or '',
    'run_id', h.run_id or '', 'owner', h.owner or ''}
  if job then
    entry[#entry + 1] = 'job'
    entry[#entry + 1] = job
  end
  for _, v in ipairs(extra or {}) do entry[#entry + 1] = v end
  local id = redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', unpack(entry))
  record_history(history, nil, id, h, status, extra or {})
end

-- A webhook notice (`started`, `progress`): queued only when the caller's `webhook.events`
-- asked for it (the hash's `webhook_notices`). Its job sends one attempt of the current
-- document (core/delivery.py); `completed` goes through the delivery of finish.lua instead.
-- Returns whether a job was queued.
local function queue_notice(h, event, queue, job_key, job_id, payload, ttl_ms, now_ms)
  if not h.webhook_url or h.webhook_url == '' or not h.webhook_notices then return false end
  if not string.find(',' .. h.webhook_notices .. ',', ',' .. event .. ',', 1, true) then
    return false
  end
  enqueue_job(queue, job_key, job_id, payload, ttl_ms, now_ms, true)
  return true
end

local DOC_FIELDS = {'execution_id', 'run_id', 'status', 'target', 'type', 'created_at',
  'started_at', 'started_ms', 'webhook_url', 'attempt', 'phase', 'deadline_ms', 'digest',
  'parent_execution_id', 'progress', 'progress_message', 'webhook_notices', 'notice_bucket',
  'retry_of', 'created_ms', 'owner'}

-- Execution indexes (core/catalog.py reads them): sorted sets of execution ids, every score 0,
-- so ordered by id, that is by creation time. The global and status indexes and those of
-- targets and owners are cut by the sweep (store.py, prune_indexes), not at each add; those of
-- targets and owners also expire `ttl_s` past their last add (a forgotten node's, a revoked
-- key's). An index of a run or of a parent is cut here, at each add: no sweep lists them.
local function index_add(key, execution_id)
  redis.call('ZADD', key, 0, execution_id)
end

local function index_keep(key, execution_id, ttl_s)
  redis.call('ZADD', key, 0, execution_id)
  redis.call('EXPIRE', key, ttl_s)
end

local function index_cut(key, execution_id, cutoff, ttl_s)
  redis.call('ZADD', key, 0, execution_id)
  redis.call('ZREMRANGEBYLEX', key, '-', '(' .. cutoff)
  redis.call('EXPIRE', key, ttl_s)
end

-- Histograms of durations for /metrics (core/metrics.py holds the same bounds): a count per
-- bucket (the first bound at or above the value; not cumulative), plus `sum` (the count is the
-- buckets' sum, added up by the reader).
local BUCKETS_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
  300000, 900000, 3600000}

local function observe(hist, ms)
  local le = '+Inf'
  for _, bound in ipairs(BUCKETS_MS) do
    if ms <= bound then
      le = tostring(bound)
      break
    end
  end
  redis.call('HINCRBY', hist, le, 1)
  redis.call('HINCRBY', hist, 'sum', ms)
end

-- A transition moves the execution from the status indexes `from` to the status index `to`
-- (nil: to none). Every status but succeeded has one: queued and running (create, claim,
-- progress, requeue, finish), waiting (approval_request, approval_decide, awaiter, finish) and
-- the other terminal ones (finish).
local function index_move(from, to, execution_id)
  for _, key in ipairs(from) do redis.call('ZREM', key, execution_id) end
  if to then index_add(to, execution_id) end
end

-- Succeeded, the bulk of what is retained, has no status index of its own (its memory would be
-- most of all the indexes'): the list answers that filter from the global index.
local UNINDEXED_STATUS = {succeeded = true}

-- Webhook deliveries (core/delivery.py). The view is the JSON object of delivery fields
-- that reads splice into the status document; it is rebuilt from the delivery hash and the list
-- of attempt records whenever either changes, and expires with the execution.
local WEBHOOK_EVENT_FIELDS = {'id', 'event_type', 'status', 'attempt', 'http_status',
  'error_message', 'duration_ms', 'created_at'}

local function webhook_view(hash, events, view)
  local w = hmget(hash, {'state', 'next_attempt_at'})
  local s = '{"webhook_status":' .. cjson.encode(w.state)
  if w.next_attempt_at then
    s = s .. ',"webhook_next_attempt_at":' .. cjson.encode(w.next_attempt_at)
  end
  s = s .. ',"webhook_events":[' .. table.concat(redis.call('LRANGE', events, 0, -1), ',') .. ']}'
  redis.call('SET', view, s)
  expire_like(hash, view)
end

-- Append one attempt record (fields in a fixed order, so that people can read them) and keep
-- only the newest `max_events`.
local function push_webhook_event(hash, events, max_events, e)
  local parts = {}
  for _, name in ipairs(WEBHOOK_EVENT_FIELDS) do
    if e[name] ~= nil then parts[#parts + 1] = '"' .. name .. '":' .. cjson.encode(e[name]) end
  end
  redis.call('RPUSH', events, '{' .. table.concat(parts, ',') .. '}')
  redis.call('LTRIM', events, -tonumber(max_events), -1)
  expire_like(hash, events)
end

-- A delivery that will not be tried again: kept, and indexed by the time it died so that the
-- dead list pages stably; index entries older than `cutoff_ms` (expired records) are dropped.
local function mark_webhook_dead(hash, dead, execution_id, now_iso, now_ms, cutoff_ms, err)
  local member = string.rep('0', 13 - #now_ms) .. now_ms .. ':' .. execution_id
  redis.call('HSET', hash, 'state', 'failed', 'failed_at', now_iso, 'last_error', err,
    'dead_member', member)
  redis.call('HDEL', hash, 'next_attempt_at')
  redis.call('ZADD', dead, 0, member)
  redis.call('ZREMRANGEBYLEX', dead, '-', '(' .. string.rep('0', 13 - #cutoff_ms) .. cutoff_ms)
end

-- A call to a node has ended: free its slot (slots.py), and wake the oldest execution waiting
-- for one by making its deferred run job due now. Only a job whose queue score is in the future
-- is moved (LT: never later), so that a job a worker is running, whose score is in the past, is
-- left to arq; an execution whose job is gone leaves the list. A waiter not woken still asks
-- again at the end of its own wait. Returns the run job woken, or false.
local function free_slot(slots, waiting, queue, execution_id, now_ms, scan)
  redis.call('ZREM', slots, execution_id)
  local now = tonumber(now_ms)
  for _, waiter in ipairs(redis.call('ZRANGE', waiting, 0, tonumber(scan) - 1)) do
    local score = redis.call('ZSCORE', queue, waiter)
    if not score then
      redis.call('ZREM', waiting, waiter)
    elseif tonumber(score) > now then
      redis.call('ZADD', queue, 'XX', 'LT', now, waiter)
      redis.call('ZREM', waiting, waiter)
      return waiter
    end
  end
  return false
end

-- A worker's run job ends with the step that calls this (store.py, RunEnd), whatever that step's
-- outcome: its arq record, lock and try count and its queue entry go (arq's finish_job would
-- delete them next, in a round trip of its own; WakingWorker skips it), and its node call slot
-- is freed (`slots`, `waiting`: nil when it holds none), in the same round trip.
local function end_run(queue, job_key, lock_key, retry_key, slots, waiting, job_id, execution_id,
    now_ms, scan)
  redis.call('DEL', job_key, lock_key, retry_key)
  redis.call('ZREM', queue, job_id)
  if slots then free_slot(slots, waiting, queue, execution_id, now_ms, scan) end
end
