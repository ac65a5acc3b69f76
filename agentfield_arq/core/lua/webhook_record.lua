-- Record the outcome of one delivery attempt, fenced by its attempt number: `delivered`,
-- `retry` (pending again until `next_attempt_at`) or `dead` (kept and listed, not retried).
-- KEYS: webhook hash, webhook events, webhook view, dead index, attempt counters
-- ARGV: attempt, outcome, now_iso, now_ms, max_events, http_status ('' none), error ('' none),
--       duration_ms, next_attempt_at ('' none), execution_id, dead_cutoff_ms
local w = hmget(KEYS[1], {'state', 'attempts', 'webhook_id', 'event_type'})
if w.state ~= 'delivering' or w.attempts ~= ARGV[1] then return {'stale', w.state or 'missing'} end
local event = {id = w.webhook_id .. '.' .. ARGV[1], event_type = w.event_type, status = 'failed',
  attempt = tonumber(ARGV[1]), duration_ms = tonumber(ARGV[8]), created_at = ARGV[3]}
if ARGV[6] ~= '' then event.http_status = tonumber(ARGV[6]) end
if ARGV[7] ~= '' then event.error_message = ARGV[7] end
if ARGV[2] == 'delivered' then
  event.status = 'delivered'
  redis.call('HSET', KEYS[1], 'state', 'delivered', 'delivered_at', ARGV[3])
  redis.call('HDEL', KEYS[1], 'last_error', 'last_http_status')
else
  redis.call('HSET', KEYS[1], 'last_error', ARGV[7], 'last_http_status', ARGV[6])
  if ARGV[2] == 'retry' then
    redis.call('HSET', KEYS[1], 'state', 'pending', 'next_attempt_at', ARGV[9])
  else
    mark_webhook_dead(KEYS[1], KEYS[4], ARGV[10], ARGV[3], ARGV[4], ARGV[11], ARGV[7])
  end
end
redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
push_webhook_event(KEYS[1], KEYS[2], ARGV[5], event)
webhook_view(KEYS[1], KEYS[2], KEYS[3])
return {'ok', w.state}
