-- The large documents of a bounded read (core/views.py): those finish.lua named in the large
-- documents' set. One over the per-document cap comes with its result left out,
-- `result_truncated` and the result's `result_size` in bytes; the result is the document's last
-- member (build_doc appends it, after the progress), so only the head of the document is read
-- (GETRANGE), never the result itself. One within the cap (the cap was raised since) comes
-- whole. Reads only.
-- KEYS: for each execution: status doc, exec hash
-- ARGV: per-document cap (bytes)
-- Returns, for each: the document (false: none), then 1 if it was summarised, else 0
local cap = tonumber(ARGV[1])
local MARK = ',"result":'

local function summary(doc_key, hash_key, size)
  local head = redis.call('GETRANGE', doc_key, 0, cap - 1)
  local h = hmget(hash_key, {'execution_id', 'run_id', 'status', 'target', 'type', 'created_at',
    'created_ms', 'progress'})
  -- The result's mark is the first past the progress (raw JSON, which may hold one of its own).
  local from = 1
  if h.progress then
    local p = string.find(head, ',"progress":', 1, true)
    if p then from = p + #',"progress":' + #h.progress end
  end
  local at = string.find(head, MARK, from, true)
  if at then
    local result_size = size - (at - 1) - #MARK - 1
    return string.sub(head, 1, at - 1) .. ',"result_truncated":true,"result_size":' .. result_size .. '}'
  end
  -- No result: large for another reason (an agent's long error), summarised from the hash.
  h.progress = nil
  h.created_at = created_at(h)
  h.created_ms = nil
  h.result_truncated = true
  return cjson.encode(h)
end

local out = {}
for i = 1, #KEYS, 2 do
  local size = redis.call('STRLEN', KEYS[i])
  if size == 0 then
    out[#out + 1] = false
    out[#out + 1] = 0
  elseif size <= cap then
    out[#out + 1] = redis.call('GET', KEYS[i])
    out[#out + 1] = 0
  else
    out[#out + 1] = summary(KEYS[i], KEYS[i + 1], size)
    out[#out + 1] = 1
  end
end
return out
