-- Move one review entry from status ARGV[1] to ARGV[2] (compare-and-set), recording who and when.
-- KEYS: 1 entry key, 2 counts-by-status hash (key names from index.py, under the review index's hash tag).
-- ARGV: 1 from, 2 to, 3 by, 4 at (ms). Returns "ok", "missing" or the current status.
local entry_key, statuses_key = KEYS[1], KEYS[2]
local current = redis.call('HGET', entry_key, 'status')
if not current then
  return 'missing'
end
if current ~= ARGV[1] then
  return current
end
redis.call('HSET', entry_key, 'status', ARGV[2], 'status_by', ARGV[3], 'status_at', ARGV[4])
redis.call('HINCRBY', statuses_key, ARGV[1], -1)
redis.call('HINCRBY', statuses_key, ARGV[2], 1)
return 'ok'
