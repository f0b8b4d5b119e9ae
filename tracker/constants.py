"""Every topic name, group id, header name and Redis key prefix, in one place."""

from __future__ import annotations

# Topics
LOCATION_UPDATES = "location-updates"
DLQ_TOPIC = "location-updates.DLQ"
COURIER_POSITIONS = "courier-positions"

# Consumer groups
VALIDATOR_GROUP = "location-validator"
DLQ_INDEXER_GROUP = "dlq-indexer"

# Dead-letter headers (docs/contract.md)
H_REASON = "dlq.reason"
H_DETAIL = "dlq.detail"
H_ORIGINAL_TOPIC = "dlq.original.topic"
H_ORIGINAL_PARTITION = "dlq.original.partition"
H_ORIGINAL_OFFSET = "dlq.original.offset"
H_ORIGINAL_TIMESTAMP = "dlq.original.timestamp"
H_GROUP = "dlq.group"
H_VALIDATOR = "dlq.validator"
H_REJECTED_AT = "dlq.rejected_at"
H_ATTEMPTS = "dlq.attempts"
# Set when the dead letter keeps only a prefix of the original value or only some of its headers: the
# original value's size and sha256 (hex), and how many original headers were dropped.
H_TRUNCATED = "dlq.truncated"
H_ORIGINAL_SIZE = "dlq.original.size"
H_ORIGINAL_SHA256 = "dlq.original.sha256"
H_HEADERS_DROPPED = "dlq.headers.dropped"
DLQ_HEADER_PREFIX = "dlq."
DETAIL_MAX_BYTES = 1024

# Replay headers
H_REPLAY_OF = "replay.of"
H_REPLAY_COUNT = "replay.count"
H_REPLAY_SIG = "replay.sig"  # HMAC over replay.of, replay.count and the value (tracker/replay_sig.py)
REPLAY_HEADER_PREFIX = "replay."

# Header of a record the Kafka client could not parse (a header name that is not UTF-8): it reaches the
# consumers with no key or value and this header holding the reason (kafka.py, Consumer._read_around).
H_UNREADABLE = "tracker.unreadable"

# Header the simulator puts on pings it corrupted on purpose: the reject code it expects.
# The validator ignores it; tests and the simulator's report use it.
H_SIM_EXPECT = "sim.expect"

# Redis keys, each under Settings.redis_prefix ("tracker:" plus the namespace), so that several
# deployments (or test cases) can share one server.
KEY_POSITION = "pos:"  # + partner_id -> hash {ts, lat, lon, json}: latest accepted position
KEY_GEO = "geo"  # GEO set of latest positions, member = partner_id
KEY_TRAIL = "trail:"  # + partner_id -> sorted set of JSON points [ts, lat, lon, speed], scored by event time
KEY_COUNTERS = "counters"  # hash: accepted, duplicates, rejected, rejected:<reason>
# Its fields: every ping is counted once as accepted, rejected or a duplicate (the accounting identity);
# rejected:<code> splits the rejected by reject code, accepted:history counts replays kept as history only.
C_ACCEPTED = "accepted"
C_REJECTED = "rejected"
C_DUPLICATES = "duplicates"
C_ACCEPTED_HISTORY = "accepted:history"
C_REJECTED_BY = "rejected:"  # + reject code
VERDICT_COUNTERS = (C_ACCEPTED, C_REJECTED, C_DUPLICATES)
KEY_PROGRESS = "progress:"  # + topic -> hash partition -> last applied offset (see store.py)
# + topic -> hash partition -> last offset a validator started judging; progress behind it on assignment
# means the previous owner died mid-batch (validator.py, "crash loops")
KEY_HIGH_WATER = "highwater:"
KEY_DEATHS = "deaths:"  # + topic -> hash "partition:offset" -> owners that died judging that record

# History (tracker/history/): packed fixes per courier and time bucket; every key expires by itself.
KEY_HISTORY_FULL = "hist:full:"  # + minute start (epoch ms) + ":" + partner_id -> every fix of that minute
KEY_HISTORY_STEP = "hist:step:"  # + hour start + ":" + partner_id -> one fix per history_step_s slot of that hour
KEY_HISTORY_FLEET = "hist:fleet:"  # + hour start -> set of the partner ids with a hist:step: key for that hour

# Review index of dead letters (tracker/dlq/index.py)
KEY_DLQ_ENTRY = "dlq:entry:"  # + id -> hash {entry (JSON), status, status_by, status_at, reason, partner, original}
KEY_DLQ_INDEX = "dlq:index"  # zset id -> rejected_at (ms)
KEY_DLQ_SEEN = "dlq:seen"  # hash original topic/partition/offset -> id: one entry per rejected ping
KEY_DLQ_REASONS = "dlq:counts:reason"  # hash reason -> dead letters ever indexed
KEY_DLQ_STATUSES = "dlq:counts:status"  # hash status -> entries in the index
KEY_DLQ_PARTNERS = "dlq:counts:partner"  # zset partner_id -> dead letters ever indexed
KEY_DLQ_MINUTE = "dlq:minute:"  # + minute start (ms) -> dead letters rejected in that minute (expires)
KEY_DLQ_BYTES = "dlq:bytes"  # total bytes of the indexed entries (the index is capped by bytes too)

# Zone and status events (tracker/events/): the topic, its two consumer groups and their Redis keys.
COURIER_EVENTS = "courier-events"  # zone_enter / zone_exit / status_change, keyed by partner_id
ZONE_EVENTS_GROUP = "zone-events"  # reads courier-positions, decides the events
EVENT_INDEXER_GROUP = "event-indexer"  # reads courier-events into the index behind /api/events
KEY_EVENTS_PROGRESS = "events:progress:"  # + topic -> hash partition -> last offset whose decisions are applied
KEY_EVENTS_STATE = "events:state:"  # + partition -> hash partner_id -> "<clock> <state JSON>" (decide.Courier)
KEY_EVENTS_CLOCK = "events:clock"  # hash partition -> that partition's event-time clock (epoch ms)
KEY_EVENTS_DATA = "events:data"  # hash event id -> event JSON
KEY_EVENTS_INDEX = "events:index"  # zset event id -> event time (ms): the newest events_index_max events
KEY_EVENTS_PARTNER = "events:partner:"  # + partner_id -> zset event id -> event time
KEY_EVENTS_ZONE = "events:zone:"  # + zone name -> zset event id -> event time
KEY_EVENTS_COUNTS = "events:counts"  # hash event type -> events ever indexed

# Devices that may post to the ingest (tracker/ingest/devices.py): only SHA-256 digests of their tokens are kept.
KEY_DEVICES = "devices"  # hash device id -> JSON {"sha256": hex digest of its token, "created_ms": epoch ms}
KEY_DEVICE_TOKENS = "devices:tokens"  # hash token digest (hex) -> device id: who a bearer token belongs to

# Header the ingest puts on every ping it produces: which app protocol it came in by (docs/ingest.md).
H_INGEST_PROTOCOL = "ingest.protocol"

# Orders and their tracking links (tracker/orders/). Every order key sits under one Redis Cluster hash tag,
# "{<prefix>orders}", so each of the orders' scripts (which touch several of them) runs on one cluster slot;
# Store builds the full names (Store.orders_keys). The values each holds: docs/contract.md, "Tracking links".
KEY_ORDERS_TAG = "orders"  # the hash tag's name: keys are "{" + prefix + KEY_ORDERS_TAG + "}" + one of these
KEY_ORDERS_DATA = ":data"  # hash order_id -> JSON {order_id, partner_id, pickup, dropoff, created_ms, expires_ms}
KEY_ORDERS_STATE = ":state"  # hash order_id -> "<state> <event time ms of the change>" (forward only)
KEY_ORDERS_OPEN = ":open"  # hash partner_id -> JSON list of its orders not yet delivered or revoked
KEY_ORDERS_REVOKED = ":revoked"  # zset order_id -> expires_ms: links refused before they expire
KEY_ORDERS_EXPIRY = ":expiry"  # zset order_id -> expires_ms: what to forget once it expired
KEY_ORDERS_CHANGES = ":changes"  # stream of {o: order_id}, capped: orders whose state moved or were revoked
