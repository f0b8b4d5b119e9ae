-- Index one dead letter for review (see index.py beside it). Idempotent: a dead letter produced twice for the
-- same rejected ping (a validator crash between producing it and recording its batch) is indexed once.
-- Every key name comes from index.py (Store.review, from tracker/constants.py), none is spelled here.
-- KEYS (all under the review index's hash tag: one Redis Cluster slot): 1 entry key prefix, 2 seen hash,
--       3 index zset, 4 counts-by-reason hash, 5 counts-by-status hash, 6 counts-by-partner zset,
--       7 this minute's counter key, 8 bytes counter key.
-- ARGV: 1 id, 2 original "topic/partition/offset", 3 entry JSON, 4 rejected_at, 5 reason,
--       6 partner ("" if unknown), 7 index cap (entries), 8 index cap (bytes), 9 partners kept,
--       10 per-minute counter TTL (s), 11 a new entry's status (Status.NEW in entry.py: its field in the
--       counts-by-status hash too)
-- Returns 1 when the entry was new (even if the caps evicted it at once: it was the oldest), else 0.
local entry_prefix, seen_key, index_key = KEYS[1], KEYS[2], KEYS[3]
local reasons_key, statuses_key, partners_key = KEYS[4], KEYS[5], KEYS[6]
local minute_key, bytes_key = KEYS[7], KEYS[8]
local id, original, entry = ARGV[1], ARGV[2], ARGV[3]
local max_entries, max_bytes, partners_top = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local new_status = ARGV[11]

local entry_key = entry_prefix .. id
if redis.call('HSETNX', seen_key, original, id) == 0 then
  return 0
end
if redis.call('EXISTS', entry_key) == 1 then
  return 0
end
redis.call('HSET', entry_key, 'entry', entry, 'status', new_status, 'reason', ARGV[5], 'partner', ARGV[6],
           'original', original)
redis.call('ZADD', index_key, ARGV[4], id)
local total_bytes = redis.call('INCRBY', bytes_key, #entry)
redis.call('HINCRBY', reasons_key, ARGV[5], 1)
redis.call('HINCRBY', statuses_key, new_status, 1)
if ARGV[6] ~= '' then
  redis.call('ZINCRBY', partners_key, 1, ARGV[6])
  -- Per-courier counts are kept for the busiest couriers only, so minting new ids cannot grow them forever.
  -- The courier just counted stays: a newcomer takes the place of the least rejected other one (trimming by
  -- rank alone would drop every newcomer at once, as the lowest, once the set is full).
  while redis.call('ZCARD', partners_key) > partners_top do
    local lowest = redis.call('ZRANGE', partners_key, 0, 1)
    redis.call('ZREM', partners_key, lowest[1] == ARGV[6] and lowest[2] or lowest[1])
  end
end
redis.call('INCR', minute_key)
redis.call('EXPIRE', minute_key, ARGV[10])

-- Keep the newest entries within both caps; counts by reason stay cumulative.
local count = redis.call('ZCARD', index_key)
while count > 0 and (count > max_entries or total_bytes > max_bytes) do
  local old = redis.call('ZRANGE', index_key, 0, 0)[1]
  local old_key = entry_prefix .. old
  local fields = redis.call('HMGET', old_key, 'status', 'original')
  if fields[1] then
    redis.call('HINCRBY', statuses_key, fields[1], -1)
  end
  if fields[2] then
    redis.call('HDEL', seen_key, fields[2])
  end
  total_bytes = redis.call('DECRBY', bytes_key, redis.call('HSTRLEN', old_key, 'entry'))
  if total_bytes < 0 then
    -- entries indexed before the byte total was kept: start counting afresh rather than go negative
    redis.call('SET', bytes_key, 0)
    total_bytes = 0
  end
  redis.call('DEL', old_key)
  redis.call('ZREM', index_key, old)
  count = count - 1
end
return 1
