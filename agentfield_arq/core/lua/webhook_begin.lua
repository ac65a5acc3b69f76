-- A delivery job starts an attempt: pending -> delivering (attempt + 1). Finding the delivery
-- already `delivering` means the worker of the previous attempt died mid-flight: that attempt is
-- recorded as lost and this one carries on, unless the lost one was the last allowed.
-- Returns what the attempt needs to build, sign and send the request.
-- KEYS: webhook hash, webhook events, webhook view, exec hash, status doc, dead index,
--       webhook secret
-- ARGV: now_iso, now_ms, max_events, max_attempts, execution_id, dead_cutoff_ms
local w = hmget(KEYS[1], {'state', 'webhook_id', 'event_type', 'attempts', 'round_attempts'})
if not w.state then return {'missing'} end
if w.state == 'delivered' or w.state == 'failed' then return {'done', w.state} end
local attempts = tonumber(w.attempts)
local round = tonumber(w.round_attempts)
if w.state == 'delivering' then
  local lost = 'the worker delivering this attempt stopped before it finished'
  push_webhook_event(KEYS[1], KEYS[2], ARGV[3], {id = w.webhook_id .. '.' .. attempts,
    event_type = w.event_type, status = 'failed', attempt = attempts, error_message = lost,
    created_at = ARGV[1]})
  if round >= tonumber(ARGV[4]) then
    mark_webhook_dead(KEYS[1], KEYS[6], ARGV[5], ARGV[1], ARGV[2], ARGV[6], lost)
    webhook_view(KEYS[1], KEYS[2], KEYS[3])
    return {'done', 'failed'}
  end
end
local doc = redis.call('GET', KEYS[5])
local e = hmget(KEYS[4], {'webhook_url', 'webhook_headers', 'traceparent'})
if not doc or not e.webhook_url then return {'missing'} end
attempts = attempts + 1
round = round + 1
redis.call('HSET', KEYS[1], 'state', 'delivering', 'attempts', attempts,
  'round_attempts', round, 'last_attempt_at', ARGV[1])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
webhook_view(KEYS[1], KEYS[2], KEYS[3])
return {'ok', tostring(attempts), tostring(round), w.webhook_id, w.event_type, doc,
  e.webhook_url, redis.call('GET', KEYS[7]) or '', e.webhook_headers or '{}', e.traceparent or ''}
