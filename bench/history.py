"""History at 20,000 couriers: Redis memory per courier-hour, the trail-window and fleet-window queries, and
what writing history costs the validator.

- **Memory and write cost**: ``--history-sample`` couriers (500) send one fix a second for an hour, written
  as the validator writes them at that rate: one fix per courier per script call, through
  :func:`tracker.history.plan.plan` and ``apply_batch.lua`` (the production path). Redis's ``used_memory``
  before and after, divided by courier-hours; Redis's CPU per fix.
- **Queries**: the rest of 20,000 couriers get the same hour of history in bulk (the same keys and sizes,
  one APPEND per courier-minute: the query does not care how the keys were written), each courier a latest
  position, and the queried ones a 200-point trail. Then a gateway process answers, over HTTP, one courier's
  last hour (``/api/couriers/{id}/trail``) and the whole fleet's (``/api/history/fleet``), against two
  baselines in the same run: ``/api/couriers/{id}`` (position and 200-point trail) and a plain Redis GET.
  The fleet query is measured again with 2,000 couriers (what the page plays back).
- **Validator throughput with and without history** (``TRACKER_HISTORY_S=0``): the same pre-filled topic
  (20,000 couriers, so that a batch holds about one ping per courier, as at 1 fix/s), rounds alternating.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
import numpy as np
import redis

from bench.common import machine, progress, redis_cpu_s, reproduce, run_measured, running
from simulator import SimConfig, iter_pings
from tracker.history import plan
from tracker.kafka import Producer, ensure_topics, partition_for
from tracker.local.processes import free_port
from tracker.models import OutRecord
from tracker.settings import Settings
from tracker.store import PartitionKeys, Slice, Store
from tracker.up import LocalSystem, child_env

TRAIL_POINTS = 200
HOUR_S = 3600


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def courier_ids(count: int, offset: int = 0) -> list[str]:
    return [f"courier-{index:05d}" for index in range(offset, offset + count)]


def walk(rng: np.random.Generator, couriers: int, seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Micro-degree tracks over Bengaluru: each courier starts somewhere and moves ~10 m/s."""
    lat0 = rng.integers(12_900_000, 13_050_000, couriers)[:, None]
    lon0 = rng.integers(77_500_000, 77_700_000, couriers)[:, None]
    lat = lat0 + np.cumsum(rng.integers(-90, 91, (couriers, seconds)), axis=1)
    lon = lon0 + np.cumsum(rng.integers(-90, 91, (couriers, seconds)), axis=1)
    return lat.astype(np.int32), lon.astype(np.int32)


async def fill_as_validator(store: Store, ids: list[str], start_ms: int, retention: plan.Retention) -> int:
    """One fix a second per courier for an hour, applied as the validator applies it at that rate."""
    lat, lon = walk(np.random.default_rng(1), len(ids), HOUR_S)
    previous: dict[str, int] = {}
    now_ms = start_ms  # what plan() compares expiries with: nothing of this hour is dropped
    by_partition: dict[int, list[int]] = {}  # each courier's fixes go to its partition's slice (its keys' slot)
    for index, partner_id in enumerate(ids):
        by_partition.setdefault(store.partition_of(partner_id), []).append(index)
    for second in range(HOUR_S):
        ts = start_ms + second * 1000
        slices, blobs = [], []
        for partition, indexes in by_partition.items():
            fixes = []
            for index in indexes:
                partner_id = ids[index]
                fixes.append(
                    (partner_id, ts, lat[index, second] / 1e6, lon[index, second] / 1e6, previous.get(partner_id))
                )
                previous[partner_id] = ts
            writes = plan.plan(fixes, now_ms, retention)
            slices.append(Slice(partition, -2, 0, 0, [], [], {}, writes.full, writes.step))
            blobs.append(writes.blobs)
        await store.apply("bench-history", slices, blobs)
    return len(ids) * HOUR_S


async def fill_in_bulk(store: Store, ids: list[str], start_ms: int, retention: plan.Retention, seed: int) -> None:
    """The same hour of history for ``ids``, one APPEND per key (through the same script)."""
    seconds = np.arange(HOUR_S, dtype=np.int64)
    times = start_ms + seconds * 1000
    minutes = times - times % plan.FULL_BUCKET_MS
    hours = times - times % plan.STEP_BUCKET_MS
    first_of_slot = np.r_[True, (times[1:] // retention.step_ms) != (times[:-1] // retention.step_ms)]
    rng = np.random.default_rng(seed)
    for chunk in range(0, len(ids), 1000):
        chunk_ids = ids[chunk : chunk + 1000]
        lat, lon = walk(rng, len(chunk_ids), HOUR_S)
        full: list[tuple[str, int]] = []
        step: list[tuple[str, int, str, str, int, int]] = []
        blobs: list[bytes] = []
        for minute in np.unique(minutes).tolist():
            where = minutes == minute
            offsets = np.broadcast_to((times[where] - minute).astype(np.int32), lat[:, where].shape)
            block = np.stack([offsets, lat[:, where], lon[:, where]], axis=2).astype("<i4")
            for index, partner_id in enumerate(chunk_ids):
                full.append((plan.suffix(minute, partner_id), retention.full_expiry(minute)))
                blobs.append(block[index].tobytes())
        for hour in np.unique(hours).tolist():
            where = (hours == hour) & first_of_slot
            offsets = np.broadcast_to((times[where] - hour).astype(np.int32), lat[:, where].shape)
            block = np.stack([offsets, lat[:, where], lon[:, where]], axis=2).astype("<i4")
            for index, partner_id in enumerate(chunk_ids):
                step.append((plan.suffix(hour, partner_id), retention.step_expiry(hour), partner_id, str(hour), -1, -1))
                blobs.append(block[index].tobytes())
        # One script call per 2,000 keys of one partition (the slot of its couriers' keys), the full entries'
        # blobs first, then the step entries', as it reads them.
        full_blobs, step_blobs = blobs[: len(full)], blobs[len(full) :]
        parts: dict[int, tuple[list, list, list, list]] = {}
        for entry, blob in zip(full, full_blobs, strict=True):
            part = parts.setdefault(store.partition_of(entry[0].split(":", 1)[1]), ([], [], [], []))
            part[0].append(entry)
            part[1].append(blob)
        for stepped, blob in zip(step, step_blobs, strict=True):
            part = parts.setdefault(store.partition_of(stepped[2]), ([], [], [], []))
            part[2].append(stepped)
            part[3].append(blob)
        calls = []
        for p, (pf, pfb, ps, psb) in parts.items():
            calls += [
                (Slice(p, -2, 0, 0, [], [], {}, pf[start : start + 2000]), pfb[start : start + 2000])
                for start in range(0, len(pf), 2000)
            ] + [
                (Slice(p, -2, 0, 0, [], [], {}, [], ps[start : start + 2000]), psb[start : start + 2000])
                for start in range(0, len(ps), 2000)
            ]
        for start in range(0, len(calls), 8):
            batch = calls[start : start + 8]
            await store.apply("bench-history", [s for s, _ in batch], [b for _, b in batch])


async def positions_and_trails(store: Store, ids: list[str], trailed: list[str], now_ms: int) -> None:
    """A latest position for every courier, and a full trail for ``trailed`` (the baseline route's data)."""
    encode = msgspec.json.Encoder().encode
    for start in range(0, len(ids), 1000):
        pos: dict[int, list] = {}
        for partner_id in ids[start : start + 1000]:
            position = {"id": partner_id, "lat": 12.97, "lon": 77.59, "ts": now_ms, "accepted_at_ms": now_ms}
            fix = (partner_id, now_ms, 12.97, 77.59, encode(position).decode())
            pos.setdefault(store.partition_of(partner_id), []).append(fix)
        await store.apply("bench-history", [Slice(p, -2, 0, 0, fixes, [], {}) for p, fixes in pos.items()])
    for partner_id in trailed:
        points: list[int | str] = []
        for index in range(TRAIL_POINTS):
            ts = now_ms - index * 1000
            points += [ts, encode((ts, 12.97 + index / 1e5, 77.59, 9.5)).decode()]
        partition = store.partition_of(partner_id)
        await store.apply("bench-history", [Slice(partition, -2, 0, 0, [], [(partner_id, points)], {})])


def timed_gets(client: httpx.Client, paths: list[str]) -> tuple[list[float], int]:
    """Milliseconds per request (sent one at a time, body read), and the bytes of the last body."""
    elapsed, size = [], 0
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        body = response.content
        elapsed.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, body[:200])
        size = len(body)
    return elapsed, size


def row(name: str, elapsed: list[float], note: str) -> str:
    return f"| {name} | {statistics.median(elapsed):.2f} | {percentile(elapsed, 0.99):.2f} | {len(elapsed)} | {note} |"


# In the map page: the fleet's hour loaded through the History control; frames a second while the map only
# redraws itself every frame with nothing moving (the baseline: what drawing this map costs at all), then
# played at 60x for `seconds`: frames a second, and the main-thread ms of each frame's playback work
# (interpolation and setData: playback/controller.js's frameMs).
MEASURE_PAGE = """async ([from, to, seconds]) => {
  const frames = async (ms) => {
    let count = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) { await new Promise(requestAnimationFrame); count += 1; }
    return count / (ms / 1000);
  };
  const local = (ms) => {
    const d = new Date(ms), p = (v, w = 2) => String(v).padStart(w, '0');
    return `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
      `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };
  document.querySelector('[data-action="history"]').click();
  const root = document.querySelector('.playback');
  root.querySelector('[name="courier"]').value = '';
  root.querySelector('[name="from"]').value = local(from);
  root.querySelector('[name="to"]').value = local(to);
  const speed = root.querySelector('[data-field="playback-speed"]');
  speed.value = '60';
  speed.dispatchEvent(new Event('change'));
  const hooks = window.__tracker.playback();
  const asked = performance.now();
  root.querySelector('form').requestSubmit();
  while (!hooks.state().active) {
    if (performance.now() - asked > 60000) throw new Error('no playback: ' + hooks.state().status);
    await new Promise(requestAnimationFrame);
  }
  const loadMs = performance.now() - asked;
  let redraw = true;
  const redrawing = () => { if (redraw) { hooks.repaint(); requestAnimationFrame(redrawing); } };
  requestAnimationFrame(redrawing);
  const idle = await frames(3000);
  redraw = false;
  const before = hooks.frameMs.length;
  root.querySelector('[data-action="playback-play"]').click();
  const playing = await frames(seconds * 1000);
  root.querySelector('[data-action="playback-play"]').click();
  const state = hooks.state();
  return {idle, playing, loadMs, frameMs: hooks.frameMs.slice(before), couriers: state.couriers, fixes: state.fixes};
}"""


async def measure_page(url: str, from_ms: int, to_ms: int, seconds: float) -> dict:
    from playwright.async_api import async_playwright

    from bench.browser import CHROMIUM_ARGS, chromium_path

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium not found: apt-get install chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1440, "height": 900})
        await page.goto(url)
        await page.wait_for_function("() => window.__tracker && window.__tracker.playback() !== null", timeout=30_000)
        result = await page.evaluate(MEASURE_PAGE, [from_ms, to_ms, seconds])
        await browser.close()
    return result


def measure_queries(
    settings: Settings, ids: list[str], queried: list[str], now_ms: int, fleet_runs: int, page_s: float = 0
) -> dict:
    """Trail, baseline and fleet requests to a gateway process over HTTP (and the page, for ``page_s``)."""
    window = {"from": str(now_ms - HOUR_S * 1000), "to": str(now_ms)}
    query = f"from={window['from']}&to={window['to']}"
    results: dict = {}
    with (
        tempfile.TemporaryDirectory() as logs,
        LocalSystem(settings, Path(logs), validators=0) as system,
        httpx.Client(base_url=system.base_url, timeout=120) as client,
    ):
        timed_gets(client, [f"/api/couriers/{partner_id}/trail?{query}" for partner_id in queried[:20]])  # warm
        results["trail"] = timed_gets(client, [f"/api/couriers/{pid}/trail?{query}" for pid in queried])
        results["courier"] = timed_gets(client, [f"/api/couriers/{partner_id}" for partner_id in queried])
        points = client.get(f"/api/couriers/{queried[0]}/trail?{query}").json()["points"]
        results["trail_points"] = len(points)
        results["fleet"] = timed_gets(client, [f"/api/history/fleet?{query}"] * fleet_runs)
        fleet = client.get(f"/api/history/fleet?{query}").json()
        results["fleet_couriers"] = len(fleet["couriers"])
        results["fleet_points"] = sum(len(base64.b64decode(track["points"])) // 12 for track in fleet["couriers"])
        if page_s:
            progress(f"history: the page plays the fleet's hour back at 60x for {page_s:g} s")
            results["page"] = asyncio.run(measure_page(system.base_url + "/", now_ms - HOUR_S * 1000, now_ms, page_s))
    client_redis = redis.Redis.from_url(running(settings.redis_url, "REDIS_URL"))
    minute = now_ms - now_ms % plan.FULL_BUCKET_MS - plan.FULL_BUCKET_MS
    partition = partition_for(ids[0].encode(), settings.location_partitions)  # the courier's keys' hash tag
    key = PartitionKeys.of(settings.redis_prefix, partition).hist_full + plan.suffix(minute, ids[0])
    gets = []
    for _ in range(len(queried)):
        started = time.perf_counter()
        client_redis.get(key)
        gets.append((time.perf_counter() - started) * 1000)
    results["redis_get"] = gets
    client_redis.close()
    return results


async def fill(settings: Settings, couriers: int, sample: int, queried: int, seed: int) -> dict:
    retention = plan.Retention.from_settings(settings)
    # The hour written starts now, so that no key of it expires while the bench runs (the full tier's first
    # minute would, 61 minutes after it began); the queries ask for that hour.
    start_ms = time.time_ns() // 1_000_000
    start_ms -= start_ms % 1000
    now_ms = start_ms + HOUR_S * 1000
    ids = courier_ids(couriers)
    facts: dict = {"now_ms": now_ms, "ids": ids}
    async with Store(settings) as store:
        client = store.redis
        if sample:
            before, cpu_before, started = (await client.info("memory"))["used_memory"], await _cpu(client), time.time()
            fixes = await fill_as_validator(store, ids[:sample], start_ms, retention)
            facts["sample_s"] = time.time() - started
            facts["cpu_us_per_fix"] = (await _cpu(client) - cpu_before) / fixes * 1e6
            facts["bytes_per_courier_hour"] = ((await client.info("memory"))["used_memory"] - before) / sample
            facts["tiers"] = await _tier_bytes(store, ids[:sample], start_ms, now_ms)
        progress(f"history: bulk hour for {couriers - sample:,} couriers")
        await fill_in_bulk(store, ids[sample:], start_ms, retention, seed)
        await positions_and_trails(store, ids, ids[:queried], now_ms)
        facts["used_memory"] = (await client.info("memory"))["used_memory"]
    return facts


async def _cpu(client) -> float:
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def _tier_bytes(store: Store, ids: list[str], start_ms: int, now_ms: int) -> dict[str, float]:
    """MEMORY USAGE of each tier's keys, per courier (the key's value, name and Redis's own overhead)."""
    minutes, hours = plan.window_buckets(start_ms, now_ms)
    totals = {}
    for tier, buckets in (("full", minutes), ("step", hours)):
        pipe = store.redis.pipeline(transaction=False)
        for partner_id in ids:
            keys = store.courier_keys(partner_id)
            prefix = keys.hist_full if tier == "full" else keys.hist_step
            for bucket in buckets:
                pipe.memory_usage(prefix + plan.suffix(bucket, partner_id))
        totals[tier] = sum(value or 0 for value in await pipe.execute()) / len(ids)
    return totals


async def prefill(settings: Settings, pings: int) -> None:
    config = SimConfig(
        couriers=20_000, count=pings, interval_s=1.0, bad_rate=0.05, duplicate_rate=0.01, seed=7, burst=True
    )
    async with Producer(settings) as producer:
        batch, futures = [], []
        for ping in iter_pings(config, time.time_ns() // 1_000_000, settings=settings):
            batch.append(OutRecord(value=ping.value, key=ping.key, headers=ping.headers))
            if len(batch) == 20_000:
                futures += await producer.send_many(settings.location_topic, batch)
                batch = []
        futures += await producer.send_many(settings.location_topic, batch)
        await asyncio.gather(*futures)


def validator_ab(settings: Settings, pings: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """pings/s and Redis µs/ping of ``tracker validate`` with history off and on, alternating."""
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    redis_client = redis.Redis.from_url(running(settings.redis_url, "REDIS_URL"))
    for round_number in range(1, rounds + 1):
        for mode in ("off", "on"):
            namespace = f"benchhist{round_number}{mode}."
            ns_settings = settings.replace(namespace=namespace, log_level="WARNING")
            asyncio.run(ensure_topics(ns_settings))
            asyncio.run(prefill(ns_settings, pings))
            progress(f"history: validator round {round_number}/{rounds}, history {mode}, {pings:,} pings")
            env = child_env(ns_settings) | {"TRACKER_HISTORY_S": "0" if mode == "off" else str(settings.history_s)}
            cpu_before = redis_cpu_s(redis_client)
            summary, _ = run_measured([sys.executable, "-m", "tracker", "validate", "--until-idle", "2"], env=env)
            cpu = redis_cpu_s(redis_client) - cpu_before
            assert summary["consumed"] == pings, summary
            results[mode].append((pings / (summary["busy_ms"] / 1000), cpu / pings * 1e6))
    redis_client.close()
    return results


def run(
    settings: Settings,
    broker: str,
    couriers: int = 20_000,
    sample: int = 500,
    queries: int = 300,
    fleet_runs: int = 5,
    ab_pings: int = 200_000,
    ab_rounds: int = 2,
    page_s: float = 10.0,
) -> str:
    big = settings.replace(namespace="history.", http_port=free_port())
    small = settings.replace(namespace="history2k.", http_port=free_port())
    for namespaced in (big, small):
        asyncio.run(ensure_topics(namespaced))
    progress(f"history: {sample} couriers' hour written as the validator writes it")
    facts = asyncio.run(fill(big, couriers, sample, queries, seed=2))
    rng = np.random.default_rng(3)
    queried = facts["ids"][: max(queries, 1)]
    rng.shuffle(queried)
    progress(f"history: queries at {couriers:,} couriers")
    big_results = measure_queries(big, facts["ids"], queried, facts["now_ms"], fleet_runs)
    progress("history: the fleet query at 2,000 couriers")
    small_facts = asyncio.run(fill(small, 2_000, 0, 20, seed=4))
    small_results = measure_queries(
        small, small_facts["ids"], small_facts["ids"][:20], small_facts["now_ms"], fleet_runs, page_s=page_s
    )
    ab = validator_ab(settings, ab_pings, ab_rounds)

    page = small_results["page"]
    per_hour = facts["bytes_per_courier_hour"]
    tiers = facts["tiers"]
    step_hour = tiers["step"]  # one hour of the step tier per courier
    full_hour = tiers["full"]
    day_gb = couriers * (full_hour + 24 * step_hour) / 1e9
    day_full_gb = couriers * 24 * full_hour / 1e9
    envelope_gb = couriers * 86_400 * plan.POINT_BYTES / 1e9
    off_rate = statistics.median(rate for rate, _ in ab["off"])
    on_rate = statistics.median(rate for rate, _ in ab["on"])
    off_cpu = statistics.median(cpu for _, cpu in ab["off"])
    on_cpu = statistics.median(cpu for _, cpu in ab["on"])
    trail_ms, trail_bytes = big_results["trail"]
    courier_ms, courier_bytes = big_results["courier"]
    fleet_ms, fleet_bytes = big_results["fleet"]
    small_fleet_ms, small_fleet_bytes = small_results["fleet"]
    rows = "\n".join(
        [
            row(
                "`/api/couriers/{id}/trail`, the last hour",
                trail_ms,
                f"{big_results['trail_points']:,} points, {trail_bytes / 1e3:.0f} kB",
            ),
            row(
                "baseline: `/api/couriers/{id}`",
                courier_ms,
                f"position + {TRAIL_POINTS}-point trail, {courier_bytes / 1e3:.0f} kB",
            ),
            row("baseline: Redis GET of one minute's key", big_results["redis_get"], "from the bench process, no HTTP"),
            row(
                f"`/api/history/fleet`, the last hour, {big_results['fleet_couriers']:,} couriers",
                fleet_ms,
                f"{big_results['fleet_points']:,} points, {fleet_bytes / 1e6:.1f} MB",
            ),
            row(
                f"`/api/history/fleet`, the last hour, {small_results['fleet_couriers']:,} couriers",
                small_fleet_ms,
                f"{small_results['fleet_points']:,} points, {small_fleet_bytes / 1e6:.1f} MB",
            ),
        ]
    )
    each = ", ".join
    return f"""## History

{couriers:,} couriers with an hour of history each (one fix a second; {sample} of them written as the validator
writes at that rate, through `tracker/history/plan.py` and `apply_batch.lua`, the rest in bulk to the same
keys). Defaults: every fix for the last `TRACKER_HISTORY_FULL_S` (3,600 s), one per `TRACKER_HISTORY_STEP_S`
({settings.history_step_s} s) for `TRACKER_HISTORY_S` ({settings.history_s:,} s).

**Memory** (Redis `used_memory`, before and after the {sample} couriers' hour): **{per_hour / 1024:.1f} KiB
per courier-hour** with both tiers; by `MEMORY USAGE` of the keys, the full tier {full_hour / 1024:.1f} KiB and
the step tier {step_hour / 1024:.2f} KiB per courier-hour ({plan.POINT_BYTES} bytes a point: 3,600 and
{HOUR_S // settings.history_step_s} points). A day at the defaults (the last hour in full, 24 h of steps) is
~{day_gb:.1f} GB for {couriers:,} couriers, against ~{day_full_gb:.1f} GB keeping every fix for 24 h
({envelope_gb:.1f} GB of bare points, the back-of-envelope). Whole Redis after the fill, with
{couriers:,} positions: {facts["used_memory"] / 1e9:.2f} GB.

**Write cost**: Redis spent {facts["cpu_us_per_fix"]:.1f} µs of CPU per fix on history alone in that
hour (one fix per courier per script call). The validator, on the same pre-filled topic ({ab_pings:,} pings,
20,000 couriers, 5 % bad), {ab_rounds} rounds each, alternating:

| history | median pings/s | each round | Redis µs per ping (median) |
|---|---|---|---|
| off (`TRACKER_HISTORY_S=0`) | {off_rate:,.0f} | {each(f"{rate:,.0f}" for rate, _ in ab["off"])} | {off_cpu:.1f} |
| on (defaults) | {on_rate:,.0f} | {each(f"{rate:,.0f}" for rate, _ in ab["on"])} | {on_cpu:.1f} |

With history the validator does **{on_rate / off_rate:.2f}×** the pings/s, and Redis spends
**{on_cpu - off_cpu:+.1f} µs** per ping.

**Queries** through a gateway process over HTTP (one request at a time, keep-alive), ms:

| request | p50 | p99 | requests | answer |
|---|---|---|---|---|
{rows}

**Fleet playback in the map page** (headless Chromium, SwiftShader WebGL, no GPU; 1440×900): the
{small_results["fleet_couriers"]:,} couriers' hour loaded through the History control in {page["loadMs"]:.0f} ms,
then played at 60× for {page_s:g} s: {page["playing"]:.1f} frames/s, against {page["idle"]:.1f} frames/s when
the same page only redraws the map every frame with nothing moving (the baseline: what SwiftShader's drawing of
the map costs at all; with a GPU both are the display's rate). Main-thread work
of playback per frame (interpolating every courier and `setData` of one MultiPoint): p50
{statistics.median(page["frameMs"]):.2f} ms, p95 {percentile(page["frameMs"], 0.95):.2f} ms, max
{max(page["frameMs"]):.2f} ms over {len(page["frameMs"])} frames.

Machine: {machine()}, Chromium from Debian.
Reproduce: {reproduce(broker, "--only history")}.
"""
