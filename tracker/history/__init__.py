"""History: where couriers have been, for the trail window (``/api/couriers/{id}/trail``) and playback.

``plan`` holds the rules (packing, keys, expiry, reading a window), ``http`` the two routes; the validator's
apply script (``apply_batch.lua``) writes, ``store.py`` reads. The numbers below are ``make bench`` (history
section, BENCHMARKS.md) on the 2-core bench machine.

**Where it lives: Redis, packed, in two tiers.** 20,000 couriers at one fix a second make 1.73 billion
fixes a day. The alternatives:

- *The ``courier-positions`` log, read by time* (``offsets_for_times``): it is keyed by courier, so one
  partition holds a twelfth of every courier's fixes, and one courier's hour means scanning ~6 million
  records (20,000 × 3,600 / 12) to keep 3,600: about a minute at ~100,000 records/s (an estimate, not
  measured: the validator reads 20,000-80,000 a second). Its retention
  is the broker's, and a replayed fix kept as history only never reaches it (the validator produces only
  positions that move the live map).
- *A store made for it* (a time-series database): the right tool past what one Redis holds, but another
  service to run, and another place to make writes exactly-once. Not needed at this size.
- *Redis*, which the validator already writes atomically with its progress. A fix is 12 bytes (time in the
  bucket, latitude and longitude in micro-degrees, 0.11 m) APPENDed to a key per courier and minute; keeping
  every fix for 24 h would be ~25 GB for 20,000 couriers (measured 51.5 KiB per courier-hour with keys and
  allocator: 20.7 GB of bare points). So older history is downsampled: every fix for the last
  ``TRACKER_HISTORY_FULL_S`` (1 h), and before that, up to ``TRACKER_HISTORY_S`` (24 h), the first fix of
  each ``TRACKER_HISTORY_STEP_S`` slot (30 s), in a key per courier and hour (2.1 KiB per courier-hour). A
  day at the defaults: ~2.1 GB for 20,000 couriers (51.5 KiB per courier for the last hour, 2.1 KiB per hour
  before; Redis's ``used_memory`` grew 56 KiB per courier-hour with both tiers). Every key gets its expiry
  when it is created, so nothing sweeps.

"Exactly the fixes in the window" is exactly the fixes history keeps: all of them where the full tier still
reaches, one per slot before (the answer's ``downsampled_before`` says up to when). A minute is read from its
full-tier key while that exists, from the step tier after.

**Who writes: the validator's apply step**, in the same Lua script as positions, trails and counters, with
the slice's progress compare-and-set: a slice applied once writes its history once, and one redelivered,
skipped or fenced writes none (tested by rewinding the group). A separate consumer group on
``courier-positions`` would need progress of its own to dedupe, and would miss replays kept as history only.
The cost, measured: Redis +4.2 µs of CPU per ping (13.5 → 17.7 at 20,000 couriers, one ping per courier
per batch: one Redis would serve ~56,000 pings/s instead of ~74,000), the validator at 0.95× its pings/s
(``plan`` adds ~1-3 µs of Python per fix). ``TRACKER_HISTORY_S=0`` turns it off.

**Fleet playback** reads only the step tier: each hour has a set of the couriers with a step key there, so
"every courier in [from, to]" is a SUNION and one MGET per 10,000 keys, answered packed (``plan.Track``).
An hour of 2,000 couriers: 157 ms and 3.9 MB; of 20,000: 1.75 s and 39 MB (so the window is at most an hour).

**Limits.** A replayed fix older than the courier's latest lands in its minute (read back in time order) and
in the step tier only if its slot is empty. The validator decides "first of its slot" from the courier's
previous fix in its cache; after the cache is dropped and re-read from Redis while batches are still in
flight, a slot can get a second point (harmless). A courier that expires (``TRACKER_COURIER_TTL_S``) keeps
its history until the keys expire.
"""
