-- Expire couriers whose latest accepted fix is older than a cut-off (Store.expire_couriers, for tracker/expiry.py).
-- KEYS[1] GEO key, KEYS[2] position key prefix, KEYS[3] trail key prefix (one partition's: one hash tag),
-- ARGV[1] cut-off (epoch ms, event time), ARGV[2..] partner ids (members of the GEO set).
-- A courier expires when its position hash is gone, or its ts is older than the cut-off or unreadable: its
-- position, its trail and its GEO member go together. Scripts run one at a time, so a fix that a validator's
-- apply_batch.lua writes meanwhile lands either before (the courier is kept) or after (it comes back whole).
-- Returns how many couriers expired.
local geo_key = KEYS[1]
local pos_prefix = KEYS[2]
local trail_prefix = KEYS[3]
local cutoff = tonumber(ARGV[1])
local expired = 0

for i = 2, #ARGV do
  local partner_id = ARGV[i]
  local ts = tonumber(redis.call('HGET', pos_prefix .. partner_id, 'ts') or '')
  if ts == nil or ts < cutoff then
    redis.call('DEL', pos_prefix .. partner_id, trail_prefix .. partner_id)
    redis.call('ZREM', geo_key, partner_id)
    expired = expired + 1
  end
end
return expired
