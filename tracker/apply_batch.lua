-- Apply one partition's slice of a validator batch atomically (see store.py for the why).
-- KEYS (all under the partition's hash tag, so in one Redis Cluster slot): KEYS[1] progress hash key,
-- KEYS[2] position key prefix, KEYS[3] GEO key, KEYS[4] trail key prefix, KEYS[5] counters hash key,
-- KEYS[6], KEYS[7], KEYS[8]: history's full-tier, step-tier and fleet key prefixes.
-- ARGV[1] trail cap, ARGV[2] MessagePack slice:
--   {"p": partition, "prev": offset, "first": offset, "last": offset,
--    "pos": [[partner_id, ts, lat, lon, position_json], ...],   -- newest accepted fix per courier
--    "trail": [[partner_id, [ts, point_json, ...]], ...],       -- pairs: score (event time), member
--    "cnt": {"accepted": n, ...},
--    "hist": [[key suffix, expire at (ms)], ...],                 -- history's full tier
--    "hist_step": [[key suffix, expire at, partner_id, hour, slot start, slot end], ...]}  -- its step tier
-- ARGV[3...]: the packed points of each "hist" entry, then of each "hist_step" entry (binary, beside the
--   slice: cmsgpack reads no bin type).
-- Returns 1 when applied; -1 ("fenced") when the recorded progress is not "prev", the progress the slice
-- was judged on: another member wrote this partition meanwhile. prev = -2 skips that check.
local progress_key = KEYS[1]
local pos_prefix = KEYS[2]
local geo_key = KEYS[3]
local trail_prefix = KEYS[4]
local counters_key = KEYS[5]
local full_prefix = KEYS[6]
local step_prefix = KEYS[7]
local fleet_prefix = KEYS[8]
local trail_cap = tonumber(ARGV[1])
local slice = cmsgpack.unpack(ARGV[2])
local FIRST_BLOB = 3

local done = tonumber(redis.call('HGET', progress_key, slice.p) or '-1')
if slice.prev ~= -2 and done ~= slice.prev then
  return -1
end

for _, fix in ipairs(slice.pos) do
  local key = pos_prefix .. fix[1]
  local current = redis.call('HGET', key, 'ts')
  -- newer wins by event time, the rule of tracker/models.py newer_wins: only a strictly newer ts replaces the
  -- held fix, so an older one (a late replay, a zombie's write) never moves the marker back and an equal one
  -- keeps the fix applied first (cases: tests/data/newer_wins.json)
  if (not current) or tonumber(current) < tonumber(fix[2]) then
    redis.call('HSET', key, 'ts', fix[2], 'lat', fix[3], 'lon', fix[4], 'json', fix[5])
    redis.call('GEOADD', geo_key, fix[4], fix[3], fix[1])
  end
end

-- trails are sorted by event time, so a replayed old fix lands in its place in history
for _, trail in ipairs(slice.trail) do
  local key = trail_prefix .. trail[1]
  redis.call('ZADD', key, unpack(trail[2]))
  redis.call('ZREMRANGEBYRANK', key, 0, -trail_cap - 1)
end

-- history (tracker/history/plan.py): APPEND packed points to a key per courier and minute (full tier) or hour
-- (step tier, one point per slot); a key gets its expiry when this APPEND created it. A step entry with a slot
-- (a replayed older fix; slot start -1: none) is appended only if no point of that key falls in the slot. A
-- step key created puts its courier in the hour's fleet set.
local blob_at = FIRST_BLOB
for _, h in ipairs(slice.hist) do
  local blob = ARGV[blob_at]
  blob_at = blob_at + 1
  local key = full_prefix .. h[1]
  if redis.call('APPEND', key, blob) == #blob then
    redis.call('PEXPIREAT', key, h[2])
  end
end
for _, h in ipairs(slice.hist_step) do
  local blob = ARGV[blob_at]
  blob_at = blob_at + 1
  local key = step_prefix .. h[1]
  local free = true
  if h[5] >= 0 then
    local held = redis.call('GET', key)
    if held then
      for i = 1, #held - 11, 12 do
        local offset = struct.unpack('<i', held, i)
        if offset >= h[5] and offset < h[6] then
          free = false
          break
        end
      end
    end
  end
  if free and redis.call('APPEND', key, blob) == #blob then
    redis.call('PEXPIREAT', key, h[2])
    local fleet = fleet_prefix .. h[4]
    redis.call('SADD', fleet, h[3])
    redis.call('PEXPIREAT', fleet, h[2])
  end
end

for name, count in pairs(slice.cnt) do
  redis.call('HINCRBY', counters_key, name, count)
end

redis.call('HSET', progress_key, slice.p, slice.last)
return 1
