// The live event feed: zone entries and exits, status changes and orders' steps (GET /api/events,
// tracker/events/http.py),
// newest first; a click flies to the courier. The rules (which events, in what order, how they read) are
// pure functions; `createEventsFeed` polls and `renderEvents` writes the list.
//
// Why polling, and without `since`: events are decided by a worker of their own, one hop after the map, and
// a `stale` or `offline` change is decided late by design (its event time is the fix time plus the
// threshold, and a quiet partition's clock runs up to TRACKER_MAX_AGE_S + TRACKER_MAX_SKEW_S behind the wall
// clock). Asking `since` the newest event seen would miss those. So each poll asks for the newest
// FEED_SIZE events by event time and merges them by id: one small request every POLL_MS per open page
// (about 10 KB when the feed is full), nothing when the tab is hidden, and no change to /ws.

export const FEED_SIZE = 50;
export const POLL_MS = 3_000;
export const EVENTS_PATH = `api/events?limit=${FEED_SIZE}`;
const TEXT_MAX = 80; // ids and zone names are shown this long at most

// How each order step reads (an order event names its order in `order_id`).
const ORDER_STEPS = { order_picked_up: "Picked up", order_arriving: "Arriving", order_delivered: "Delivered" };
const EVENT_TYPES = new Set(["zone_enter", "zone_exit", "status_change", ...Object.keys(ORDER_STEPS)]);

/** Whether `event` is one the feed can show (anything else from the server is skipped). */
export function isEvent(event) {
  return (
    event !== null &&
    typeof event === "object" &&
    typeof event.id === "string" &&
    EVENT_TYPES.has(event.type) &&
    typeof event.partner_id === "string" &&
    Number.isFinite(event.ts) &&
    Number.isFinite(event.lat) &&
    Number.isFinite(event.lon)
  );
}

// At one fix a courier's status changes first, then it leaves zones, then it enters others
// (tracker/events/decide.py): newest first, events of one time read the other way round.
// An order moves on the same fix after the courier's own events (a different worker's fold; any fixed order
// will do, as long as it never flickers).
const SAME_TIME_RANK = {
  zone_enter: 0,
  zone_exit: 1,
  status_change: 2,
  order_delivered: 3,
  order_arriving: 4,
  order_picked_up: 5,
};

/** Newest first by event time; at one time as above, then by id, so the order never flickers between polls. */
export function compareEvents(a, b) {
  return b.ts - a.ts || SAME_TIME_RANK[a.type] - SAME_TIME_RANK[b.type] || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/**
 * `held` (newest first) with the events of a poll merged in: each id once, newest first, at most `max`.
 * Returns the same array when nothing changed (so the caller can skip redrawing).
 */
export function mergeEvents(held, incoming, max = FEED_SIZE) {
  if (!Array.isArray(incoming)) return held;
  const byId = new Map(held.map((event) => [event.id, event]));
  let added = false;
  for (const event of incoming) {
    if (isEvent(event) && !byId.has(event.id)) {
      byId.set(event.id, event);
      added = true;
    }
  }
  if (!added) return held;
  const merged = [...byId.values()].sort(compareEvents).slice(0, max);
  const same = merged.length === held.length && merged.every((event, index) => event === held[index]);
  return same ? held : merged;
}

function short(text) {
  const value = String(text ?? "");
  return value.length > TEXT_MAX ? `${value.slice(0, TEXT_MAX - 1)}…` : value;
}

/**
 * How an event reads in the feed: { kind, what } (e.g. "Entered", "Koramangala"; "Status", "online → stale";
 * "Delivered", "order o-17").
 */
export function describeEvent(event) {
  switch (event.type) {
    case "zone_enter":
      return { kind: "Entered", what: short(event.zone) };
    case "zone_exit":
      return { kind: "Left", what: short(event.zone) };
    case "order_picked_up":
    case "order_arriving":
    case "order_delivered":
      return { kind: ORDER_STEPS[event.type], what: `order ${short(event.order_id ?? "—")}` };
    default:
      return { kind: "Status", what: `${short(event.from ?? "—")} → ${short(event.to ?? "—")}` };
  }
}

/** "14:03:27" in the viewer's time zone (the feed spans minutes; the date is in the tooltip). */
export function clockTime(tsMs) {
  const date = new Date(tsMs);
  const pad = (value) => String(value).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/**
 * Poll the events every `intervalMs` while the page is visible, from `start()` on. `fetchJson(path)`
 * answers { ok, status, body }; `onEvents(events)` gets the feed (newest first) whenever it changed,
 * `onStatus(text)` a line for the feed's header ("" when all is well). A 401 (the viewer token was refused)
 * stops the polling until `start()` is called again, once the page has a token the gateway takes.
 */
export function createEventsFeed({ fetchJson, onEvents, onStatus, intervalMs = POLL_MS, doc = globalThis.document }) {
  let events = [];
  let timer = null;
  let inFlight = false;
  let running = false;

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    try {
      const response = await fetchJson(EVENTS_PATH);
      if (response.ok) {
        onStatus("");
        const merged = mergeEvents(events, response.body);
        if (merged !== events) {
          events = merged;
          onEvents(events);
        }
      } else if (response.status === 401) {
        onStatus("viewer token needed");
        running = false;
        clearTimeout(timer);
      } else {
        onStatus("events unavailable, retrying");
      }
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!running) return;
      if (!doc || !doc.hidden) await poll();
      if (running) schedule();
    }, intervalMs);
  }

  if (doc) doc.addEventListener("visibilitychange", () => running && !doc.hidden && poll());

  return {
    /** Poll now and every `intervalMs` from now on (again after a 401 stopped it); running already: nothing. */
    start() {
      if (running) return;
      running = true;
      poll();
      schedule();
    },
    poll,
    events: () => events,
  };
}

/** Write the feed into `list` (an <ol>): one button per event, carrying the courier's id for the click. */
export function renderEvents(list, events) {
  const doc = list.ownerDocument;
  const items = events.map((event) => {
    const { kind, what } = describeEvent(event);
    const item = doc.createElement("li");
    const button = doc.createElement("button");
    button.type = "button";
    button.className = "event";
    button.dataset.type = event.type;
    button.dataset.partnerId = event.partner_id;
    button.dataset.eventId = event.id;
    button.title = `${new Date(event.ts).toLocaleString()} · fly to ${short(event.partner_id)}`;
    const parts = [
      ["event-time", clockTime(event.ts)],
      ["event-kind", kind],
      ["event-what", what],
      ["event-courier", short(event.partner_id)],
    ];
    for (const [className, text] of parts) {
      const span = doc.createElement("span");
      span.className = className;
      span.textContent = text;
      button.append(span);
    }
    item.append(button);
    return item;
  });
  list.replaceChildren(...items);
}

/**
 * The feed on the page: draws into the elements index.html names (data-field events-list, events-empty,
 * events-status) and hands a clicked event's courier id to `onPick`. It polls from `start()` on (main.js
 * starts it with each snapshot from /ws: one comes only with a viewer token the gateway takes).
 */
export function wireEventsFeed(doc, { fetchJson, onPick }) {
  const field = (name) => doc.querySelector(`[data-field="${name}"]`);
  const list = field("events-list");
  const empty = field("events-empty");
  const status = field("events-status");
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-partner-id]");
    if (button !== null) onPick(button.dataset.partnerId);
  });
  const feed = createEventsFeed({
    fetchJson,
    onEvents: (events) => {
      renderEvents(list, events);
      empty.hidden = events.length > 0;
    },
    onStatus: (text) => {
      if (status.textContent !== text) status.textContent = text;
    },
    doc,
  });
  return feed;
}
