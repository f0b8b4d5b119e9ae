-- Move one review entry from status ARGV[3] to ARGV[4] (compare-and-set), recording who and when.
-- ARGV: 1 entry key, 2 counts-by-status hash, 3 from, 4 to, 5 by, 6 at (ms) (key names from index.py).
-- Returns "ok", "missing" or the current status.
local entry_key, statuses_key = ARGV[1], ARGV[2]
local current = redis.call('HGET', entry_key, 'status')
if not current then
  return 'missing'
end
if current ~= ARGV[3] then
  return current
end
redis.call('HSET', entry_key, 'status', ARGV[4], 'status_by', ARGV[5], 'status_at', ARGV[6])
redis.call('HINCRBY', statuses_key, ARGV[3], -1)
redis.call('HINCRBY', statuses_key, ARGV[4], 1)
return 'ok'
