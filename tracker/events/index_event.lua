-- Index one event for /api/events, once (tracker/events/index.py).
-- KEYS (under the events' index's hash tag: one Redis Cluster slot): KEYS[1] data hash key (id -> JSON),
-- KEYS[2] index zset key (id -> event time), KEYS[3] per-courier zset key prefix (+ partner_id), KEYS[4]
-- per-zone zset key prefix (+ zone), KEYS[5] counts hash key (type -> events ever indexed).
-- ARGV[1] cap (events kept), ARGV[2] id, ARGV[3] JSON, ARGV[4] event time (ms), ARGV[5] partner_id,
-- ARGV[6] zone ('' for none), ARGV[7] type.
-- An id already indexed changes nothing (a crash can re-produce an event; its id is the same): returns 0.
-- Otherwise adds it, counts it, evicts the oldest events beyond the cap (from every index) and returns 1.
local data_key, index_key, partner_prefix, zone_prefix, counts_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cap = tonumber(ARGV[1])
local id, json, ts, partner_id, zone, kind = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if redis.call('HSETNX', data_key, id, json) == 0 then
  return 0
end
redis.call('ZADD', index_key, ts, id)
redis.call('ZADD', partner_prefix .. partner_id, ts, id)
if zone ~= '' then
  redis.call('ZADD', zone_prefix .. zone, ts, id)
end
redis.call('HINCRBY', counts_key, kind, 1)

while redis.call('ZCARD', index_key) > cap do
  local oldest = redis.call('ZPOPMIN', index_key)
  local old_id = oldest[1]
  local old = redis.call('HGET', data_key, old_id)
  if old then
    local event = cjson.decode(old)
    if type(event.partner_id) == 'string' then
      redis.call('ZREM', partner_prefix .. event.partner_id, old_id)
    end
    if type(event.zone) == 'string' then
      redis.call('ZREM', zone_prefix .. event.zone, old_id)
    end
    redis.call('HDEL', data_key, old_id)
  end
end
return 1
