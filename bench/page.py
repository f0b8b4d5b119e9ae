"""Page frame cost: main-thread time to apply a 10,000-courier frame in headless Chromium.

``applyFrame`` is timed from the frame object in to the map source's ``setData`` returning (the target's
definition); "task" adds what MapLibre does synchronously right after (walking the collection and posting
it to its worker) up to the end of the task. Baseline in the same run: ``JSON.parse`` of the same frame,
the cost any client pays before applying anything.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.browser import CHROMIUM_ARGS, chromium_path
from bench.common import machine, progress
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.settings import Settings
from tracker.up import LocalSystem

MEASURE = """async ([count, iterations]) => {
  const vehicles = ['walk', 'bike', 'scooter', 'car'], \
statuses = ['online', 'online', 'online', 'idle', 'stale', 'offline'];
  const ids = Array.from({length: count}, (_, i) => 'bench-' + String(i).padStart(5, '0'));
  let ts = Date.now();
  const frame = (type, k) => {
    ts += 1000;
    const couriers = ids.map((id, i) => ({id, lat: 12.90 + ((i * 7919 + k * 13) % 15000) / 100000,
      lon: 77.52 + ((i * 104729 + k * 17) % 16000) / 100000, ts, speed: 5.2, heading: (i * 37 + k) % 360,
      vehicle: vehicles[i % 4], status: statuses[(i + k) % 6], order_id: i % 3 ? null : 'order-' + i}));
    return type === 'snapshot' ? {type, server_time_ms: Date.now(), couriers}
                               : {type, seq: k, server_time_ms: Date.now(), couriers, removed: []};
  };
  const settle = () => new Promise(resolve => setTimeout(resolve, 200));
  const endOfTask = async () => { for (let i = 0; i < 50; i++) await null; };
  const run = async (type) => {
    const apply = [], task = [], parse = [];
    for (let k = 0; k < iterations; k++) {
      const text = JSON.stringify(frame(type, k));
      await settle();
      const t0 = performance.now();
      const parsed = JSON.parse(text);
      const t1 = performance.now();
      apply.push(window.__tracker.applyFrame(parsed));
      await endOfTask();
      task.push(performance.now() - t1);
      parse.push(t1 - t0);
    }
    return {apply, task, parse, bytes: JSON.stringify(frame(type, 0)).length};
  };
  return {snapshot: await run('snapshot'), delta: await run('delta'), rendered: window.__tracker.renderedCount()};
}"""


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, couriers: int, iterations: int) -> dict:
    from playwright.async_api import async_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium not found: apt-get install chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1440, "height": 900})
        await page.goto(url)
        await page.wait_for_function("() => window.__tracker && window.__tracker.ready", timeout=30_000)
        result = await page.evaluate(MEASURE, [couriers, iterations])
        await browser.close()
    return result


def run(settings: Settings, couriers: int, iterations: int) -> str:
    run_settings = settings.replace(namespace="page.", http_port=free_port())
    asyncio.run(ensure_topics(run_settings))
    progress(f"page frame cost: {iterations} snapshots and {iterations} deltas of {couriers:,} couriers")
    with tempfile.TemporaryDirectory() as logs, LocalSystem(run_settings, Path(logs)) as system:
        result = asyncio.run(measure(system.base_url + "/", couriers, iterations))
    assert result["rendered"] >= couriers, result["rendered"]
    rows = []
    for kind in ("snapshot", "delta"):
        data = result[kind]
        apply, task, parse = data["apply"], data["task"], data["parse"]
        rows.append(
            f"| {kind} ({data['bytes'] / 1e6:.1f} MB JSON) | {statistics.median(apply):.1f} / "
            f"{percentile(apply, 0.95):.1f} | {statistics.median(task):.1f} / {percentile(task, 0.95):.1f} | "
            f"{statistics.median(parse):.1f} / {percentile(parse, 0.95):.1f} | "
            f"{statistics.median(apply) / max(statistics.median(parse), 0.01):.2f} |"
            f"{' ✅' if statistics.median(apply) <= 8 else ' ❌'} |"
        )
        progress(f"  {kind}: applyFrame median {statistics.median(apply):.1f} ms")
    table = "\n".join(rows)
    return f"""## Page frame cost

Main-thread time to apply one frame of {couriers:,} couriers in headless Chromium (SwiftShader WebGL, no GPU),
{iterations} frames of each kind, median / p95 in ms. *applyFrame*: frame object in → map source `setData`
returned (target ≤ 8 ms, median). *Task*: the same plus MapLibre's synchronous work right after (serialising
the collection to its worker) to the end of the task. Baseline in the same run: `JSON.parse` of that frame.

| frame | applyFrame | task | JSON.parse (baseline) | applyFrame / JSON.parse | target met |
|---|---|---|---|---|---|
{table}

Machine: {machine()}, Chromium from Debian.
Reproduce: `make bench BENCH_ARGS="--only page"`.
"""
