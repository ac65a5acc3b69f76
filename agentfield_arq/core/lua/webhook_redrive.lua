-- Send an execution's webhook again on request, with the same webhook-id. A delivered or dead
-- delivery starts a new round of attempts; a pending one is brought forward to now. While the
-- last attempt's job is still being closed by arq (its in-progress lock is held), a new job of
-- the same id would be deleted by that close, so the caller is asked to try again.
-- KEYS: exec hash, webhook hash, webhook events, webhook view, dead index, queue,
--       delivery arq job, delivery arq in-progress lock
-- ARGV: now_ms, delivery job id, delivery job payload, delivery job ttl_ms
local e = hmget(KEYS[1], {'status', 'webhook_url'})
if not e.status then return {'missing'} end
if not e.webhook_url or e.webhook_url == '' then return {'no_webhook'} end
if not TERMINAL[e.status] then return {'not_terminal', e.status} end
local w = hmget(KEYS[2], {'state', 'webhook_id', 'dead_member'})
if not w.state then return {'no_webhook'} end
local busy = redis.call('EXISTS', KEYS[8]) == 1
if w.state == 'pending' or w.state == 'delivering' then
  if not busy then
    enqueue_job(KEYS[6], KEYS[7], ARGV[2], ARGV[3], ARGV[4], ARGV[1], true)
  end
  return {'ok', w.state, w.webhook_id}
end
if busy then return {'busy', w.state} end
if w.dead_member then redis.call('ZREM', KEYS[5], w.dead_member) end
redis.call('HSET', KEYS[2], 'state', 'pending', 'round_attempts', '0')
redis.call('HDEL', KEYS[2], 'dead_member', 'failed_at', 'next_attempt_at')
webhook_view(KEYS[2], KEYS[3], KEYS[4])
enqueue_job(KEYS[6], KEYS[7], ARGV[2], ARGV[3], ARGV[4], ARGV[1], false)
return {'ok', 'pending', w.webhook_id}
