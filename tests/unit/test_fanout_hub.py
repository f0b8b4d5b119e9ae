"""The hub's index of cells decides what a client sees: after every tick, a client that applies its frames
shows exactly the couriers in the cells its box touches plus the one it follows, each at its latest position:
every courier in its box (edges included), none more than a cell outside it; also on boxes along cell lines,
points on a box's edge, boxes too big to list their bands, and with couriers expiring, moving across cells and
edges, and views changing in between. Without sockets."""

from __future__ import annotations

import json
import math
import random

import pytest

from tracker.hub import CELL_DEG, MAX_LISTED_BANDS, Client, Hub, View, band_of, column_of
from tracker.models import Position
from tracker.status import courier_status

NOW = 1_795_000_000_000
AREA = (77.50, 12.90, 77.56, 12.96)  # 6 x 6 cells


class Page:
    """What a map page holds after applying the frames it got (README, WebSocket protocol)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.couriers: dict[str, dict] = {}

    def read(self) -> None:
        self.client.wake.clear()
        while (raw := self.client.next_frame()) is not None:
            frame = json.loads(raw)
            if frame["type"] == "snapshot":
                self.couriers = {c["id"]: c for c in frame["couriers"]}
            elif frame["type"] == "delta":
                for courier in frame["couriers"]:
                    self.couriers[courier["id"]] = courier
                for gone in frame["removed"]:
                    self.couriers.pop(gone, None)  # an id it never had is allowed (a courier gone before a tick)


def in_cells(box: tuple[float, float, float, float], lat: float, lon: float) -> bool:
    """Whether (lat, lon) is in a cell the box touches."""
    return band_of(box[1]) <= band_of(lat) <= band_of(box[3]) and column_of(box[0]) <= column_of(lon) <= column_of(
        box[2]
    )


def expected(hub: Hub, client: Client) -> dict[str, tuple[float, float]]:
    out = {}
    for courier_id, courier in hub.couriers.items():
        p = courier.position
        box = client.bbox
        if box is None or courier_id == client.follow or in_cells(box, p.lat, p.lon):
            out[courier_id] = (p.lat, p.lon)
    return out


def in_box(hub: Hub, box: tuple[float, float, float, float]) -> set[str]:
    return {
        i for i, c in hub.couriers.items() if box[0] <= c.position.lon <= box[2] and box[1] <= c.position.lat <= box[3]
    }


def shown(page: Page) -> dict[str, tuple[float, float]]:
    return {courier_id: (c["lat"], c["lon"]) for courier_id, c in page.couriers.items()}


def on_grid(rng: random.Random, low: float, high: float) -> float:
    """A coordinate, now and then exactly on a band line (or a round longitude)."""
    if rng.random() < 0.3:
        return round(rng.randint(round(low / CELL_DEG), round(high / CELL_DEG)) * CELL_DEG, 4)
    return rng.uniform(low, high)


def random_box(rng: random.Random) -> tuple[float, float, float, float] | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.15:
        return (-180.0, -90.0, 180.0, 90.0)  # too many cells to list
    if roll < 0.2:
        return (77.53, 12.93, 77.53, 12.93)  # a point, on band lines
    west, east = sorted(on_grid(rng, AREA[0] - 0.01, AREA[2] + 0.01) for _ in range(2))
    south, north = sorted(on_grid(rng, AREA[1] - 0.01, AREA[3] + 0.01) for _ in range(2))
    return (west, south, east, north)


@pytest.mark.parametrize("seed", range(12))
def test_every_page_shows_exactly_its_view_after_every_tick(seed):
    rng = random.Random(seed)
    hub = Hub()
    ids = [f"c{i}" for i in range(60)]
    ts = NOW
    couriers_at: dict[str, tuple[float, float]] = {}

    def move(courier_id: str) -> None:
        nonlocal ts
        ts += 1
        if courier_id not in couriers_at or rng.random() < 0.2:
            lat, lon = on_grid(rng, AREA[1], AREA[3]), on_grid(rng, AREA[0], AREA[2])
        else:  # a step, often across a band line or a box's edge
            lat, lon = couriers_at[courier_id]
            step = rng.choice((0.0001, 0.001, 0.004))
            lat += rng.uniform(-step, step)
            lon += rng.uniform(-step, step)
        couriers_at[courier_id] = (lat, lon)
        hub.ingest(Position(courier_id, lat, lon, ts, ts, 5.0, 0.0, None, "bike"), NOW)

    for courier_id in ids[:40]:
        move(courier_id)
    pages = []
    for _ in range(8):
        page = Page(hub.connect())
        hub.set_viewport(page.client, random_box(rng))
        if rng.random() < 0.4:
            hub.set_follow(page.client, rng.choice(ids))
        pages.append(page)
    for round_number in range(40):
        for courier_id in rng.sample(ids, rng.randint(0, 30)):
            move(courier_id)
        if round_number % 7 == 3:
            gone = rng.sample(sorted(hub.couriers), 3)
            cutoff = min(hub.couriers[g].position.ts for g in gone)
            hub.expire(cutoff)  # at least nothing newer than the oldest of them stays out
            for courier_id in set(couriers_at) - set(hub.couriers):
                del couriers_at[courier_id]
        if round_number % 5 == 2:
            page = rng.choice(pages)
            hub.set_viewport(page.client, random_box(rng))
        if round_number % 6 == 4:
            page = rng.choice(pages)
            hub.set_follow(page.client, rng.choice([None, *ids]))
        assert hub.tick() or not hub.changed  # fewer than half the pages fall behind: the tick is never put off
        behind = rng.sample(pages, rng.randint(0, 3))
        for page in pages:
            if page in behind:
                continue  # this page falls behind a tick: its next frame carries both
            page.read()
            assert shown(page) == expected(hub, page.client), (seed, round_number, page.client.bbox)
            box = page.client.bbox
            if box is not None:  # what the cells mean for the page: all of its box, and at most a cell more
                assert in_box(hub, box) <= set(shown(page))
                margin = CELL_DEG * 1.0001
                for courier_id, (lat, lon) in shown(page).items():
                    if courier_id != page.client.follow:
                        assert box[1] - margin <= lat <= box[3] + margin and box[0] - margin <= lon <= box[2] + margin


def near(value: float, steps: int = 3) -> list[float]:
    """``value`` and the floats just below and above it."""
    out = [value]
    below = above = value
    for _ in range(steps):
        below, above = math.nextafter(below, -math.inf), math.nextafter(above, math.inf)
        out += [below, above]
    return out


def test_the_cells_a_box_touches_hold_every_point_of_it_and_none_a_cell_beyond():
    for west, south, east, north in (
        (77.5, 12.90, 77.6, 12.92),
        (77.4975, 12.8975, 77.5025, 12.9225),
        (0.0, 0.0, 0.0, 0.0075),
    ):
        view = View((west, south, east, north))
        # latitudes and longitudes on and next to the box's edges and the cell lines
        for low, high, cell_of, first, last, lines in (
            (south, north, band_of, view.first, view.last, 8),
            (west, east, column_of, view.west, view.east, 24),
        ):
            for line in (low, high, *(low + k * CELL_DEG for k in range(-2, lines))):
                for value in near(line):
                    if low <= value <= high:
                        assert first <= cell_of(value) <= last, (low, high, value)
                    elif value < low - CELL_DEG * 1.0001 or value > high + CELL_DEG * 1.0001:
                        assert not first <= cell_of(value) <= last, (low, high, value)
    # a point just south of a box on a cell line shares the box's first cell: a client gets it, the margin
    hub = Hub()
    hub.ingest(Position("edge", 12.899999999999999, 77.55, NOW, NOW, 5.0), NOW)
    hub.ingest(Position("in", 12.9, 77.55, NOW, NOW, 5.0), NOW)
    hub.ingest(Position("beyond", 12.894, 77.55, NOW, NOW, 5.0), NOW)
    hub.tick()
    assert band_of(12.899999999999999) == band_of(12.9)
    client = hub.connect()
    hub.set_viewport(client, (77.5, 12.9, 77.6, 12.92))
    assert sorted(c["id"] for c in json.loads(client.next_frame() or "")["couriers"]) == ["edge", "in"]
    assert View((-180.0, -90.0, 180.0, 90.0)).listed is None  # far more than MAX_LISTED_BANDS
    assert MAX_LISTED_BANDS * CELL_DEG >= 10  # a view of a whole city lists its bands


def test_a_district_client_looks_only_at_the_bands_near_it():
    """The point of the index: a tick costs a district client its own few bands, not every courier that moved."""
    hub = Hub()

    def everyone_moves(ts: int) -> None:  # 2,000 couriers over 0.2 x 0.2 degrees
        for i in range(2000):
            hub.ingest(Position(f"c{i}", 12.9 + (i % 40) * 0.005, 77.5 + (i // 40) * 0.004, ts, ts, 5.0), NOW)

    everyone_moves(NOW)
    hub.tick()
    client = hub.connect()
    hub.set_viewport(client, (77.51, 12.91, 77.52, 12.92))
    client.next_frame()
    looked_at = []
    original = View._bands

    def counting(self, by_band):
        bands = list(original(self, by_band))
        looked_at.append((len(bands), len(by_band)))
        return bands

    View._bands = counting  # type: ignore[method-assign]
    try:
        everyone_moves(NOW + 1)
        hub.tick()
    finally:
        View._bands = original  # type: ignore[method-assign]
    [(bands, changed_bands)] = looked_at
    assert bands <= 3 and changed_bands >= 40
    [delta] = [json.loads(frame) for frame in iter(client.next_frame, None)]
    box = (77.51, 12.91, 77.52, 12.92)
    assert sorted(c["id"] for c in delta["couriers"]) == sorted(
        i for i, c in hub.couriers.items() if in_cells(box, c.position.lat, c.position.lon)
    )
    assert delta["couriers"]


def test_a_tick_waits_while_most_clients_have_not_taken_the_last_one_and_stuck_ones_do_not_count():
    hub = Hub()
    clients = [hub.connect() for _ in range(4)]
    pages = [Page(client) for client in clients]
    for i in range(3):
        hub.ingest(Position(f"c{i}", 12.91, 77.51, NOW, NOW, 5.0), NOW)
    assert hub.tick() == 3
    for page in pages:
        page.read()
    hub.ingest(Position("c0", 12.92, 77.52, NOW + 1, NOW, 5.0), NOW)
    assert hub.tick() == 1
    pages[0].read()  # three of four have not taken that tick's frame: the writers are behind
    hub.ingest(Position("c1", 12.92, 77.52, NOW + 1, NOW, 5.0), NOW)
    assert hub.tick() == 0 and hub.changed == {"c1"}  # put off, not lost
    pages[1].read()
    clients[2].sending_since = 1.0  # its send is stuck on a socket that does not drain: it does not count
    assert hub.tick() == 1  # one of the three still waiting now
    for page in pages[:2]:
        page.read()
    assert {page.couriers["c1"]["lat"] for page in pages[:2]} == {12.92}
    pages[3].read()  # the one that fell behind gets both ticks' couriers in one frame
    assert pages[3].couriers["c0"]["lat"] == pages[3].couriers["c1"]["lat"] == 12.92


@pytest.mark.parametrize("seed", range(4))
def test_statuses_refreshed_from_the_seconds_that_aged_match_a_full_rederivation(seed):
    rng = random.Random(seed)
    hub = Hub()
    now = NOW
    for step in range(300):
        now += rng.choice((0, 200, 1000, 7_000, 59_999, 61_000))
        for _ in range(rng.randint(0, 5)):
            ts = now - rng.choice((0, 1_000, 55_000, 59_999, 60_000, 60_001, 599_000, 700_000, -5_000))
            speed = rng.choice((None, 0.1, 5.0))
            hub.ingest(Position(f"c{rng.randrange(40)}", 12.9, 77.5, ts, ts, speed), now)
        if step % 50 == 49:
            hub.expire(now - 650_000)
        refreshed_at = now - (rng.random() < 0.02) * 90_000  # now and then a clock that went back
        hub.refresh_statuses(refreshed_at)
        for courier in hub.couriers.values():
            expected = courier_status(courier.position.ts, courier.position.speed, refreshed_at, hub.thresholds)
            assert courier.status is expected, (step, courier.position)
        assert sum(hub.status_counts.values()) == len(hub.couriers)
