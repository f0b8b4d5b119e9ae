"""The sizing guide's arithmetic (bench/sizing.py): pure, so checked here by hand-made costs."""

from __future__ import annotations

import pytest

from bench import sizing

COSTS = sizing.Costs(
    validator_us=20.0,
    redis_us=10.0,
    broker_us=5.0,
    gateway_input_us=10.0,
    events_us=8.0,
    ingest_us=400.0,
    broker_bytes=500.0,
    redis_bytes_per_courier=2048.0,
    frame_us=150.0,
    fanout_couriers=20_000,
)


def test_the_rate_and_frames_of_the_target():
    target = sizing.Target()
    assert target.rate == 50_000
    assert target.frames_per_s == 10_000  # 2,000 dispatchers at 5 frames a second


def test_processes_round_up_and_never_fall_to_zero():
    assert sizing.processes(1.0, 0.6) == 2
    assert sizing.processes(1.2, 0.6) == 2  # exactly full counts as fitting
    assert sizing.processes(0.0, 0.6) == 1


def test_partitions_leave_headroom_and_spread_evenly_over_the_shards():
    assert sizing.partitions_for(2, 1, 4) == 12  # 4 × 2 = 8, but never fewer than the default 12
    assert sizing.partitions_for(5, 2, 4) == 20
    assert sizing.partitions_for(5, 3, 4) == 21  # 20 rounded up to a multiple of 3 shards
    assert sizing.partitions_for(26, 8, 4) == 104


def test_plan_multiplies_the_costs_out():
    plan = sizing.plan(COSTS, sizing.Target())
    # validators: 20 µs × 50,000/s = 1.0 core, at most 60 % each -> 2
    assert plan.validators == 2
    assert plan.events_workers == 1  # 0.4 core
    assert plan.ingests == 34  # 20 cores / 0.6
    assert plan.redis_shards == 1  # 0.5 of Redis's thread
    assert plan.partitions == 12
    assert plan.brokers == 3  # 0.75 cores with RF 3: replication sets the count
    # gateway: 0.5 core following the positions leaves 0.1 core = 666.7 frames/s per process
    assert plan.gateways == 15
    assert plan.total_cores == pytest.approx(1.0 + 0.4 + 20.0 + 0.5 + 0.75 + 0.5 * 15 + 1.5)
    # of the limits no added process lifts, a gateway following every position is reached first: at 2×
    assert "gateway process" in plan.bottleneck
    assert "2.0× the target rate" in plan.bottleneck


def test_a_gateway_that_cannot_follow_the_fleet_is_the_bottleneck():
    costs = sizing.Costs(**{**COSTS.__dict__, "gateway_input_us": 26.0})  # 1.3 cores at 50,000/s
    plan = sizing.plan(costs, sizing.Target())
    assert plan.gateways is None
    assert plan.fan_out_processes == 3  # 1.5 cores of frames
    assert "gateway process" in plan.bottleneck
    assert "153,846 couriers" in plan.bottleneck  # 1 core / 26 µs = 38,461 pings/s, × 4 s


def test_render_shows_the_arithmetic():
    text = sizing.render(sizing.plan(COSTS, sizing.Target()), COSTS)
    assert "200,000 couriers / 4 s" in text
    assert "20.0 µs × 50,000/s = 1.00 cores" in text
    assert "Next bottleneck:" in text


SECTION = """<!-- bench:fanout -->
## Fan-out
1,000 WebSocket clients ... on a gateway with 20,000 couriers pinging once a second

| clients | processes | frames/s min / median | ≥ 90 % | frame age p50 / p99 (ms) | fix age p50 / p99 (ms) | \
server CPU | server waiting for a core | load average | \
server CPU per frame (µs, all included) | fix age p99 ≤ 1,000 ms (ours) | target met (issue 15) |
|---|---|---|---|---|---|---|---|---|---|---|---|
| 1,000 | 1 | 2.10 / 2.15 | 0 % | 331 / 993 | 1916 / 3036 | 87 % | 13 % | 1.9 | 406 | ✅ | ❌ |
| 1,000 | 2 | 2.05 / 2.10 | 0 % | 236 / 671 | 3047 / 5711 | 117 % | 83 % | 2.6 | 508 | ❌ | ❌ |
| 10 | 1 | 5.00 / 5.00 | 100 % | 32 / 46 | 155 / 248 | 53 % | 2 % | 2.3 | 10600 | ✅ | ✅ |
| 250 | 1 | 4.95 / 4.95 | 100 % | 65 / 135 | 197 / 1332 | 69 % | 6 % | 3.0 | 558 | ❌ | ✅ |
<!-- /bench:fanout -->
"""


def test_frame_cost_is_the_slope_between_the_sweep_rows_that_met_the_target():
    # the rows that held the frame rate (issue 15's column, the last), whatever their fix age
    cost = sizing.fanout_frame_cost(SECTION)
    assert cost is not None
    frames = 250 * 4.95 - 10 * 5.0
    assert cost.frame_us == pytest.approx((0.69 - 0.53) / frames * 1e6)
    assert cost.couriers == 20_000
    assert cost.input_us == pytest.approx((0.53 - 50 * (0.16 / frames)) / 20_000 * 1e6)


def test_no_frame_cost_without_the_section():
    assert sizing.fanout_frame_cost("# Benchmarks\n") is None


def test_ingest_batch_cost_from_the_ingest_section():
    row = "| native batches of 100 | `tracker ingest` | 527 | 52,700 | 221.7 / 378.9 | 88 % | 16.6 | 4 % | 10 % |"
    assert sizing.ingest_batch_cost("| native batches of 100 | baseline | 1 | 1 | x | 1 % | 9.0 |\n" + row) == (
        100,
        16.6,
    )
    assert sizing.ingest_batch_cost("") is None


def test_a_plan_offers_batched_ingest_when_measured():
    costs = sizing.Costs(**{**COSTS.__dict__, "ingest_batch_us": 16.6, "ingest_batch_pings": 100})
    text = sizing.render(sizing.plan(costs, sizing.Target()), costs)
    assert "16.6 µs (the ingest section) × 50,000/s = 0.83 cores" in text


COST_SECTION = """<!-- bench:cost -->
| row | pings/s | broker | validator | redis | gateway | events | ingest | all | load generator |
|---|---|---|---|---|---|---|---|---|---|
| idle (baseline) | — | 6 % | 1 % | 0 % | 1 % | 1 % | 0 % | 9 % | 0 % |

| row | pings/s | broker | validator | redis | gateway | events | ingest | all |
|---|---|---|---|---|---|---|---|---|
| 2,000 pings/s to Kafka | 1,999 | 164.7 | 106.4 | 51.7 | 40.0 | 75.0 | -0.3 | 437.8 |
| 10,000 pings/s to Kafka | 10,000 | 22.7 | 38.8 | 40.9 | 23.1 | 26.5 | -0.1 | 152.1 |
| 600 pings/s through the ingest | 638 | 228.9 | 197.5 | 96.2 | 65.8 | 155.7 | 688.8 | 1432.9 |

| row | pings sent | location-updates | courier-positions | events | dead letters | all (bytes/ping) | couriers | \
Redis KiB per courier |
|---|---|---|---|---|---|---|---|---|
| 2,000 pings/s to Kafka | 41,989 | 159 | 165 | 10 | 0 | 333 | 2,000 | 3.5 |
| 10,000 pings/s to Kafka | 209,902 | 142 | 158 | 9 | 0 | 310 | 10,000 | 3.4 |
<!-- /bench:cost -->
"""


def test_costs_parsed_back_from_the_cost_section():
    costs = sizing.parse_costs(SECTION + COST_SECTION)
    assert costs is not None
    assert (costs.validator_us, costs.redis_us, costs.broker_us) == (38.8, 40.9, 22.7)
    assert (costs.gateway_input_us, costs.events_us, costs.ingest_us) == (23.1, 26.5, 688.8)
    assert costs.broker_bytes == 310
    assert costs.redis_bytes_per_courier == pytest.approx(3.4 * 1024)
    assert costs.frame_us is not None
    assert sizing.parse_costs(SECTION) is None


def test_the_headline_says_what_the_plan_says():
    plan = sizing.plan(COSTS, sizing.Target())
    text = sizing.headline(plan)
    assert "50,000 pings/s take 2 validators" in text
    assert "15 gateway processes for 2,000 dispatchers" in text
