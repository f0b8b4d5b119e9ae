import { test } from "node:test";
import assert from "node:assert/strict";
import { headerState, isSelectable, pruned, toggled, withAll } from "../src/dlq/selection.js";
import { appendPage, bulkOutcome, firstPage, mergeRefresh, patchEntry, statusAfter } from "../src/dlq/list.js";
import { WRITES_DISABLED, errorMessage, postWithToken, tokenStore } from "../src/dlq/api.js";
import { ghostFeatures, jumpFeatures } from "../src/dlq/ghostmap-data.js";

const entry = (id, status = "new", extra = {}) => ({ id, status, reason: "stale_timestamp", ...extra });

test("selection: only `new` entries, toggles are immutable, header state", () => {
  const items = [entry("0:1"), entry("0:2"), entry("0:3", "replayed")];
  const empty = new Set();
  assert.equal(headerState(empty, items), "none");
  const one = toggled(empty, "0:1");
  assert.deepEqual([...one], ["0:1"]);
  assert.deepEqual([...empty], [], "the previous set is untouched");
  assert.equal(headerState(one, items), "some");
  const all = withAll(one, items, true);
  assert.deepEqual([...all].sort(), ["0:1", "0:2"], "replayed rows are not selectable");
  assert.equal(headerState(all, items), "all");
  assert.deepEqual([...withAll(all, items, false)], []);
  assert.deepEqual([...toggled(all, "0:2", true)].sort(), ["0:1", "0:2"]);
  // After a refresh 0:2 was discarded elsewhere and 0:1 fell off the page.
  assert.deepEqual([...pruned(all, [entry("0:2", "discarded"), entry("0:9")])], []);
  assert.ok(!isSelectable(null));
});

test("list paging: append skips ids already shown; refresh keeps pages loaded beyond the first", () => {
  const page1 = firstPage({ items: [entry("a"), entry("b")], next_cursor: "c1", total: 5 });
  assert.deepEqual(page1.items.map((item) => item.id), ["a", "b"]);
  const page2 = appendPage(page1, { items: [entry("b"), entry("c"), entry("d")], next_cursor: null, total: 5 });
  assert.deepEqual(page2.items.map((item) => item.id), ["a", "b", "c", "d"]);
  assert.equal(page2.nextCursor, null);

  // Two new rejects arrived; b was replayed meanwhile.
  const refreshed = mergeRefresh(page2, { items: [entry("y"), entry("z"), entry("a"), entry("b", "replayed")], next_cursor: "c9", total: 7 });
  assert.deepEqual(refreshed.items.map((item) => item.id), ["y", "z", "a", "b", "c", "d"]);
  assert.equal(refreshed.items[3].status, "replayed");
  assert.equal(refreshed.nextCursor, null, "the cursor continues after the kept tail");
  assert.equal(refreshed.total, 7);

  // Only one page loaded: a refresh just replaces it.
  assert.deepEqual(mergeRefresh(page1, { items: [entry("y"), entry("a")], next_cursor: "n" }).nextCursor, "n");
  // Nothing shared (a burst): replace.
  assert.deepEqual(mergeRefresh(page2, { items: [entry("q")], next_cursor: "n" }).items.map((item) => item.id), ["q"]);
  // The filtered list is now complete: replace.
  assert.deepEqual(mergeRefresh(page2, { items: [entry("a")], next_cursor: null }).items.map((item) => item.id), ["a"]);
  assert.deepEqual(firstPage({ items: [null, { id: 3 }, entry("ok")] }).items.map((item) => item.id), ["ok"]);
});

test("actions: row patches and bulk outcomes", () => {
  const list = firstPage({ items: [entry("a", "new", { replay_count: 1 }), entry("b")], next_cursor: null });
  const replayed = patchEntry(list, "a", statusAfter("replay", { replay_count: 2 }, list.items[0]));
  assert.equal(replayed.items[0].status, "replayed");
  assert.equal(replayed.items[0].replay_count, 2);
  assert.equal(list.items[0].status, "new", "immutable");
  assert.equal(patchEntry(list, "zz", { status: "x" }), list);
  assert.equal(statusAfter("replay", null, { replay_count: 1 }).replay_count, 2);
  assert.equal(statusAfter("discard", {}, null).status, "discarded");
  assert.deepEqual(
    bulkOutcome(["a", "b", "c"], { results: [{ id: "b", ok: false, error: "b is replayed, not new" }, { id: "a", ok: true, error: null }] }),
    { succeeded: ["a"], failed: [{ id: "b", error: "b is replayed, not new" }, { id: "c", error: "no result from the server" }] },
  );
});

function memoryStorage() {
  const data = new Map();
  return { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, String(v)), removeItem: (k) => data.delete(k) };
}

function fakeFetch(answers) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, init });
    const [status, body] = answers.shift();
    return { status, ok: status >= 200 && status < 300, text: async () => (body === null ? "" : JSON.stringify(body)) };
  };
  return { impl, calls };
}

test("token: asked on the first write, kept, asked again after a 401", async () => {
  const tokens = tokenStore(memoryStorage());
  const asked = [];
  const replies = ["wrong", "right"];
  const askToken = async (reason) => {
    asked.push(reason);
    return replies.shift();
  };
  const { impl, calls } = fakeFetch([
    [401, { error: "missing or wrong token" }],
    [200, { id: "0:1", status: "replayed", replay_count: 1 }],
    [200, { id: "0:2", status: "discarded" }],
  ]);
  const first = await postWithToken("api/dlq/0%3A1/replay", { payload: { a: 1 } }, { fetchImpl: impl, tokens, askToken });
  assert.equal(first.ok, true);
  assert.deepEqual(asked, [null, "the token was refused (missing or wrong token)"]);
  assert.equal(calls[0].init.headers.authorization, "Bearer wrong");
  assert.equal(calls[1].init.headers.authorization, "Bearer right");
  assert.equal(calls[1].init.body, '{"payload":{"a":1}}');
  assert.equal(tokens.get(), "right");
  const second = await postWithToken("api/dlq/0%3A2/discard", undefined, { fetchImpl: impl, tokens, askToken });
  assert.equal(second.ok, true);
  assert.equal(asked.length, 2, "the kept token is reused without asking");
  assert.equal(calls[2].init.body, undefined);
});

test("token: cancel, 403 and other errors", async () => {
  const tokens = tokenStore(memoryStorage());
  const cancelled = await postWithToken("u", undefined, { fetchImpl: fakeFetch([]).impl, tokens, askToken: async () => null });
  assert.equal(cancelled.cancelled, true);

  tokens.set("t");
  const disabled = await postWithToken("u", undefined, {
    fetchImpl: fakeFetch([[403, { error: "no token configured" }]]).impl,
    tokens,
    askToken: async () => assert.fail("403 must not ask for a token"),
  });
  assert.equal(disabled.error, WRITES_DISABLED);
  assert.equal(tokens.get(), "t", "a 403 does not forget the token");

  const conflict = await postWithToken("u", undefined, { fetchImpl: fakeFetch([[409, { error: "0:1 is replayed, not new" }]]).impl, tokens, askToken: null });
  assert.deepEqual([conflict.ok, conflict.status, conflict.error], [false, 409, "0:1 is replayed, not new"]);
  assert.equal(errorMessage(422, { error: "replay cap reached" }), "replay cap reached");
  assert.equal(errorMessage(500, null), "the server answered 500");
  assert.equal(errorMessage(502, { error: "" }), "the server answered 502");

  const broken = tokenStore({ getItem: () => { throw new Error("denied"); }, setItem: () => { throw new Error("denied"); }, removeItem: () => {} });
  broken.set("mem");
  assert.equal(broken.get(), "mem", "falls back to memory when storage is blocked");
});

test("ghost features only for finite, in-range coordinates; jump line with both ends", () => {
  const collection = ghostFeatures([
    entry("a", "new", { lat: 12.9, lon: 77.6 }),
    entry("b", "new", { lat: null, lon: 77.6 }),
    entry("c", "new", { lat: 95, lon: 77.6 }),
  ]);
  assert.deepEqual(collection.features.map((f) => f.properties.id), ["a"]);
  assert.deepEqual(collection.features[0].geometry.coordinates, [77.6, 12.9]);
  assert.deepEqual(jumpFeatures(null).features, []);
  const parts = jumpFeatures({ from: [1, 2], to: [3, 4] }).features;
  assert.deepEqual(parts.map((f) => [f.properties.part, f.geometry.type]), [["line", "LineString"], ["from", "Point"], ["to", "Point"]]);
});
