-- Index one dead letter for review (see dlq_index.py). Idempotent: a dead letter produced twice for the
-- same rejected ping (a validator crash between producing it and recording its batch) is indexed once.
-- ARGV: 1 key prefix, 2 id, 3 original "topic/partition/offset", 4 entry JSON, 5 rejected_at, 6 reason,
--       7 partner ("" if unknown), 8 minute start, 9 index cap, 10 per-minute counter TTL (s)
local prefix, id, original = ARGV[1], ARGV[2], ARGV[3]
local entry_key = prefix .. 'dlq:entry:' .. id
if redis.call('HSETNX', prefix .. 'dlq:seen', original, id) == 0 then
  return 0
end
if redis.call('EXISTS', entry_key) == 1 then
  return 0
end
redis.call('HSET', entry_key, 'entry', ARGV[4], 'status', 'new', 'reason', ARGV[6], 'partner', ARGV[7],
           'original', original)
redis.call('ZADD', prefix .. 'dlq:index', ARGV[5], id)
redis.call('HINCRBY', prefix .. 'dlq:counts:reason', ARGV[6], 1)
redis.call('HINCRBY', prefix .. 'dlq:counts:status', 'new', 1)
if ARGV[7] ~= '' then
  redis.call('ZINCRBY', prefix .. 'dlq:counts:partner', 1, ARGV[7])
end
local minute_key = prefix .. 'dlq:minute:' .. ARGV[8]
redis.call('INCR', minute_key)
redis.call('EXPIRE', minute_key, ARGV[10])

-- Keep the newest `cap` entries; counts by reason and partner stay cumulative.
local excess = redis.call('ZCARD', prefix .. 'dlq:index') - tonumber(ARGV[9])
if excess > 0 then
  for _, old in ipairs(redis.call('ZRANGE', prefix .. 'dlq:index', 0, excess - 1)) do
    local old_key = prefix .. 'dlq:entry:' .. old
    local fields = redis.call('HMGET', old_key, 'status', 'original')
    if fields[1] then
      redis.call('HINCRBY', prefix .. 'dlq:counts:status', fields[1], -1)
    end
    if fields[2] then
      redis.call('HDEL', prefix .. 'dlq:seen', fields[2])
    end
    redis.call('DEL', old_key)
    redis.call('ZREM', prefix .. 'dlq:index', old)
  end
end
return 1
