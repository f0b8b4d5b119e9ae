-- Apply one partition's share of a batch of event decisions atomically (tracker/events/worker.py says why).
-- KEYS (the partition's, under its hash tag: one Redis Cluster slot): KEYS[1] progress hash key (partition ->
-- last applied offset), KEYS[2] the partition's state hash key, KEYS[3] clock hash key (partition ->
-- event-time clock). ARGV[1] MessagePack slice:
--   {"p": partition, "prev": offset, "last": offset, "clock": ms,
--    "put": [[partner_id, clock, "<clock> <state JSON>"], ...], "drop": [[partner_id, clock], ...]}
-- Returns 1 when applied; -1 ("fenced") when the recorded progress is not "prev", the progress the slice was
-- decided on: another member applied this partition meanwhile. Each courier's state is compare-and-set by
-- event time: it is written only over an older one (its clock, the number before the space, is smaller),
-- and dropped only if nothing newer was written since.
local progress_key = KEYS[1]
local state_key = KEYS[2]
local clock_key = KEYS[3]
local slice = cmsgpack.unpack(ARGV[1])

local done = tonumber(redis.call('HGET', progress_key, slice.p) or '-1')
if done ~= slice.prev then
  return -1
end

local function held_clock(partner_id)
  local held = redis.call('HGET', state_key, partner_id)
  if not held then
    return nil
  end
  return tonumber(string.match(held, '^(%-?%d+) '))
end

for _, item in ipairs(slice.put) do
  local held = held_clock(item[1])
  if (not held) or held < item[2] then
    redis.call('HSET', state_key, item[1], item[3])
  end
end

for _, item in ipairs(slice.drop) do
  local held = held_clock(item[1])
  if held and held <= item[2] then
    redis.call('HDEL', state_key, item[1])
  end
end

local clock = tonumber(redis.call('HGET', clock_key, slice.p) or '-1')
if slice.clock > clock then
  redis.call('HSET', clock_key, slice.p, slice.clock)
end
redis.call('HSET', progress_key, slice.p, slice.last)
return 1
