import { test } from "node:test";
import assert from "node:assert/strict";
import { canReplayAsIs, headerRows, jumpOf, parseEditedPayload, payloadNote, prettyPayload, truncate } from "../src/dlq/payload.js";

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

test("a truncated payload is shown as a preview and cannot be replayed as is", () => {
  const preview = { payload_truncated: true, payload_shown: 4096, payload_size: 61_440, payload_sha256: "ab12", replay_as_is: false };
  assert.equal(canReplayAsIs(preview), false);
  assert.equal(
    payloadNote(preview),
    "Too large to replay as is: showing the first 4,096 of 61,440 bytes (sha256 ab12). Edit and replay a corrected payload instead.",
  );
  // The list row (no sizes yet) already says it cannot be replayed as is.
  assert.equal(canReplayAsIs({ payload_truncated: true }), false);
  assert.match(payloadNote({ payload_truncated: true }), /showing the first \? of \? bytes\./);

  const keyCut = { payload_truncated: false, replay_as_is: false };
  assert.equal(canReplayAsIs(keyCut), false);
  assert.match(payloadNote(keyCut), /keeps only part of the original record/);

  for (const whole of [{ payload_truncated: false, replay_as_is: true }, { payload_text: "{}" }]) {
    assert.equal(canReplayAsIs(whole), true);
    assert.equal(payloadNote(whole), null);
  }
  assert.equal(canReplayAsIs(null), false);
  assert.equal(payloadNote(null), null);
});
