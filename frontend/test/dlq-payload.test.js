import { test } from "node:test";
import assert from "node:assert/strict";
import { headerRows, jumpOf, parseEditedPayload, prettyPayload, truncate } from "../src/dlq/payload.js";

test("payload shown pretty when the server parsed it, raw text otherwise", () => {
  const rows = [
    [{ payload_json: { partner_id: "c-1", lat: 12.9 }, payload_text: '{"partner_id":"c-1","lat":12.9}' }, '{\n  "partner_id": "c-1",\n  "lat": 12.9\n}'],
    [{ payload_json: null, payload_text: '{"lat": \uFFFD oops' }, '{"lat": \uFFFD oops'],
    [{ payload_json: [1, 2], payload_text: "[1,2]" }, "[\n  1,\n  2\n]"],
    [{ payload_json: 0, payload_text: "0" }, "0"],
    [{ payload_text: "" }, ""],
    [{}, ""],
    [null, ""],
  ];
  for (const [entry, expected] of rows) assert.equal(prettyPayload(entry), expected);
  const xss = { payload_json: { partner_id: "<img src=x onerror=alert(1)>" } };
  assert.ok(prettyPayload(xss).includes('"<img src=x onerror=alert(1)>"'), "markup is kept as characters");
});

test("edited payloads must be JSON objects", () => {
  assert.deepEqual(parseEditedPayload('{"partner_id": "c-1"}'), { ok: true, payload: { partner_id: "c-1" } });
  const rows = [
    ["", /empty/],
    ["   ", /empty/],
    ["{oops", /^Not valid JSON: /],
    ["[1]", /not an array/],
    ["null", /not null/],
    ['"text"', /not string/],
    ["12", /not number/],
  ];
  for (const [text, pattern] of rows) {
    const result = parseEditedPayload(text);
    assert.equal(result.ok, false, text);
    assert.match(result.error, pattern);
  }
});

test("truncate collapses whitespace and cuts with an ellipsis", () => {
  assert.equal(truncate("a\n  b\tc"), "a b c");
  assert.equal(truncate("abcdefghij", 5), "abcd…");
  assert.equal(truncate("abcde", 5), "abcde");
  assert.equal(truncate(null), "");
});

test("headers become string pairs, malformed ones still shown", () => {
  assert.deepEqual(headerRows([["dlq.reason", "stale_timestamp"], ["empty", null], "odd", [7, 8]]), [
    ["dlq.reason", "stale_timestamp"],
    ["empty", ""],
    ["odd", ""],
    ["7", "8"],
  ]);
  assert.deepEqual(headerRows(undefined), []);
});

test("an impossible_speed jump: distance, time and speed from the last fix", () => {
  const entry = {
    reason: "impossible_speed",
    lat: 12.99,
    lon: 77.6,
    last_fix: { lat: 12.9, lon: 77.6, ts: 1_000_000 },
    payload_json: { ts: 1_010_000 },
  };
  const jump = jumpOf(entry);
  assert.deepEqual(jump.from, [77.6, 12.9]);
  assert.deepEqual(jump.to, [77.6, 12.99]);
  assert.ok(Math.abs(jump.metres - 10_008) < 10, String(jump.metres)); // 0.09° of latitude
  assert.equal(jump.seconds, 10);
  assert.ok(Math.abs(jump.metresPerSecond - 1000.8) < 1);
  assert.equal(jumpOf({ ...entry, payload_json: { ts: "1970-01-01T00:16:50Z" } }).seconds, 10);
  assert.equal(jumpOf({ ...entry, payload_json: null }).metresPerSecond, null);
  assert.equal(jumpOf({ ...entry, reason: "out_of_order" }), null);
  assert.equal(jumpOf({ ...entry, last_fix: null }), null);
  assert.equal(jumpOf({ ...entry, lat: null }), null);
});
