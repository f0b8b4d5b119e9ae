"""Every topic name, group id, header name and Redis key prefix, in one place."""

from __future__ import annotations

# Topics
LOCATION_UPDATES = "location-updates"
DLQ_TOPIC = "location-updates.DLQ"
COURIER_POSITIONS = "courier-positions"

# Consumer groups
VALIDATOR_GROUP = "location-validator"
DLQ_INDEXER_GROUP = "dlq-indexer"

# Dead-letter headers (DESIGN.md)
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
DLQ_HEADER_PREFIX = "dlq."
DETAIL_MAX_BYTES = 1024

# Replay headers
H_REPLAY_OF = "replay.of"
H_REPLAY_COUNT = "replay.count"

# Header the simulator puts on pings it corrupted on purpose: the reject code it expects.
# The validator ignores it; tests and the simulator's report use it.
H_SIM_EXPECT = "sim.expect"

# Redis keys, each under Settings.redis_prefix ("tracker:" plus the namespace), so that several
# deployments (or test cases) can share one server.
KEY_POSITION = "pos:"  # + partner_id -> hash {ts, lat, lon, json}: latest accepted position
KEY_GEO = "geo"  # GEO set of latest positions, member = partner_id
KEY_TRAIL = "trail:"  # + partner_id -> list of JSON points [ts, lat, lon, speed], newest first
KEY_COUNTERS = "counters"  # hash: accepted, duplicates, rejected, rejected:<reason>
KEY_PROGRESS = "progress:"  # + topic -> hash partition -> last applied offset (see store.py)
