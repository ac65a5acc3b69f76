-- Shared by every script (store.py prepends it). Builds the JSON status document that the API
-- returns as is, from hash fields plus the outcome; the result is spliced in as raw JSON so that
-- any JSON value (null, a list, a big integer) survives byte for byte.
local TERMINAL = {succeeded = true, failed = true, cancelled = true, timeout = true}

local function build_doc(h, outcome)
  local doc = {
    execution_id = h.execution_id,
    run_id = h.run_id,
    status = h.status,
    target = h.target,
    type = h.type,
    created_at = h.created_at,
    started_at = h.started_at,
    webhook_registered = (h.webhook_url ~= nil and h.webhook_url ~= ''),
  }
  local result = nil
  if outcome then
    doc.completed_at = outcome.completed_at
    doc.duration_ms = outcome.duration_ms
    doc.error = outcome.error
    result = outcome.result
  end
  local s = cjson.encode(doc)
  if result then
    s = string.sub(s, 1, -2) .. ',"result":' .. result .. '}'
  end
  return s
end

local function hmget(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  local h = {}
  for i, name in ipairs(names) do
    if values[i] then h[name] = values[i] end
  end
  return h
end

local DOC_FIELDS = {'execution_id', 'run_id', 'status', 'target', 'type', 'created_at',
  'started_at', 'started_ms', 'webhook_url', 'attempt', 'phase', 'deadline_ms', 'digest'}
