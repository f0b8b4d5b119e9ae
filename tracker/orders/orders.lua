-- The orders' writes (tracker/orders/__init__.py has the data model), each atomic. Every key is passed in
-- KEYS, and all of them share one Redis Cluster hash tag ("{<prefix>orders}"), so this runs on one slot:
--   KEYS[1] data (order_id -> record JSON), KEYS[2] state (order_id -> "<state> <since ms>"),
--   KEYS[3] open (partner_id -> JSON list of order ids), KEYS[4] revoked (zset id -> expires_ms),
--   KEYS[5] expiry (zset id -> expires_ms), KEYS[6] changes (a stream, capped at about ARGV[2] entries, of
--   the orders whose state moved or which were revoked: what gateways read to refresh only those).
-- ARGV[1] is the operation, ARGV[2] the changes' cap, and the operation's arguments follow:
--   "create": order_id, partner_id, record, state, expires_ms, now_ms, prune_max
--       -> 1, or 0 (nothing changed) when the order id is taken. First forgets up to prune_max orders
--          that expired before now_ms (record, state, open entry, revocation).
--   "advance": states (comma-separated, in the order they happen), delivered, then per order:
--       order_id, state, since_ms -> per order 1 when it moved there, 0 when it was already there or past
--       it (states only move forward) or is unknown. A delivered order leaves its courier's open list.
--   "revoke": order_id -> 1, or 0 for an unknown order. It leaves the open list; its id stays in
--       revoked until it expires.
local data, state, open, revoked, expiry, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local op, cap = ARGV[1], ARGV[2]
local args = {}  -- the operation's own arguments
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end

local function changed(order_id)
  redis.call('XADD', changes, 'MAXLEN', '~', cap, '*', 'o', order_id)
end

local function drop_open(order_id)
  local record = redis.call('HGET', data, order_id)
  if not record then return end
  local partner_id = cjson.decode(record)['partner_id']
  local raw = redis.call('HGET', open, partner_id)
  if not raw then return end
  local kept = {}
  for _, id in ipairs(cjson.decode(raw)) do
    if id ~= order_id then kept[#kept + 1] = id end
  end
  if #kept == 0 then
    redis.call('HDEL', open, partner_id)
  else
    redis.call('HSET', open, partner_id, cjson.encode(kept))
  end
end

if op == 'create' then
  local order_id, partner_id = args[1], args[2]
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', args[6], 'LIMIT', 0, tonumber(args[7]))) do
    drop_open(id)
    redis.call('HDEL', data, id)
    redis.call('HDEL', state, id)
    redis.call('ZREM', revoked, id)
    redis.call('ZREM', expiry, id)
  end
  if redis.call('HEXISTS', data, order_id) == 1 then return 0 end
  redis.call('HSET', data, order_id, args[3])
  redis.call('HSET', state, order_id, args[4])
  local raw = redis.call('HGET', open, partner_id)
  local ids = {}
  if raw then ids = cjson.decode(raw) end
  ids[#ids + 1] = order_id
  redis.call('HSET', open, partner_id, cjson.encode(ids))
  redis.call('ZADD', expiry, args[5], order_id)
  return 1
elseif op == 'advance' then
  local rank = {}
  local n = 0
  for name in string.gmatch(args[1], '[^,]+') do
    n = n + 1
    rank[name] = n
  end
  local delivered = args[2]
  local results = {}
  for i = 3, #args, 3 do
    local order_id, to, since = args[i], args[i + 1], args[i + 2]
    local held = redis.call('HGET', state, order_id)
    local moved = 0
    if held then
      local held_state = string.match(held, '^(%S+)')
      if rank[to] and rank[held_state] and rank[to] > rank[held_state] then
        redis.call('HSET', state, order_id, to .. ' ' .. since)
        if to == delivered then drop_open(order_id) end
        changed(order_id)
        moved = 1
      end
    end
    results[#results + 1] = moved
  end
  return results
elseif op == 'revoke' then
  local order_id = args[1]
  local record = redis.call('HGET', data, order_id)
  if not record then return 0 end
  drop_open(order_id)
  redis.call('ZADD', revoked, cjson.decode(record)['expires_ms'], order_id)
  changed(order_id)
  return 1
end
return redis.error_reply('unknown operation')
