-- Read the documents of a batch-status call, bounded in bytes: a status document over the
-- per-result cap, or any document with a result once the answer holds the budget, comes back
-- with its result left out, `result_truncated` and the result's `result_size` in bytes. The
-- result is the document's last member (build_doc appends it), so only the head of a large
-- document is read (GETRANGE), never the result itself. Reads only.
-- An execution's notes view comes too, while the budget holds it (else it is left out).
-- KEYS: for each execution: status doc, webhook view, exec hash, notes view
-- ARGV: per-document cap (bytes; 0: none, every document whole, as GET of one reads it),
--       budget of the whole answer (bytes), the asking key's id
--       ('' for an admin: any execution; else only those it submitted, the others are nil)
local cap = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local owner = ARGV[3]
local MARK = ',"result":'

local function summary(doc_key, hash_key, size)
  local head = redis.call('GETRANGE', doc_key, 0, cap - 1)
  local at = string.find(head, MARK, 1, true)
  if at then
    local result_size = size - (at - 1) - #MARK - 1
    return string.sub(head, 1, at - 1) .. ',"result_truncated":true,"result_size":' .. result_size .. '}'
  end
  -- No result: a small document goes whole (GETRANGE read all of it); a large one is large
  -- for another reason (an agent's long error), and is summarised from the hash.
  if size <= cap then return head end
  local h = hmget(hash_key, {'execution_id', 'run_id', 'status', 'target', 'type', 'created_at',
    'created_ms'})
  h.created_at = created_at(h)
  h.created_ms = nil
  h.result_truncated = true
  return cjson.encode(h)
end

local out = {}
for i = 1, #KEYS, 4 do
  local size = 0
  if owner == '' or redis.call('HGET', KEYS[i + 2], 'owner') == owner then
    size = redis.call('STRLEN', KEYS[i])
  end
  local doc = false
  if size > 0 then
    if cap == 0 or (size <= cap and size <= budget) then
      doc = redis.call('GET', KEYS[i])
      budget = budget - size
    else
      doc = summary(KEYS[i], KEYS[i + 2], size)
    end
  end
  out[#out + 1] = doc
  out[#out + 1] = redis.call('GET', KEYS[i + 1])
  local notes = false
  if doc then
    notes = redis.call('GET', KEYS[i + 3])
    if notes and cap ~= 0 then
      if #notes <= budget then budget = budget - #notes else notes = false end
    end
  end
  out[#out + 1] = notes
end
return out
