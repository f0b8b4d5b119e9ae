import { test } from "node:test";
import assert from "node:assert/strict";
import { REFUSALS, closeOutcome, httpOutcome, refusalMessage } from "../src/track/outcome.js";
import { openTrackSocket } from "../src/track/socket.js";
import { harness } from "./fake-socket.js";

test("HTTP answers of /api/track: data, a refusal with the gateway's reason, or try again", () => {
  assert.deepEqual(httpOutcome(200, {}), { kind: "ok" });
  assert.deepEqual(httpOutcome(403, { error: "invalid tracking link" }), { kind: "refused", reason: "invalid tracking link" });
  assert.deepEqual(httpOutcome(410, { error: "tracking link revoked" }), { kind: "refused", reason: "tracking link revoked" });
  assert.deepEqual(httpOutcome(410, { error: "tracking link expired" }), { kind: "refused", reason: "tracking link expired" });
  assert.deepEqual(httpOutcome(410, null), { kind: "refused", reason: "tracking link expired" });
  assert.deepEqual(httpOutcome(403, { error: "<script>" }), { kind: "refused", reason: "invalid tracking link" });
  assert.deepEqual(httpOutcome(404, null), { kind: "refused", reason: "invalid tracking link" });
  for (const status of [0, 429, 500, 502, 503]) assert.deepEqual(httpOutcome(status, null), { kind: "retry" });
});

test("each refusal reads as something a customer understands", () => {
  assert.match(refusalMessage("invalid tracking link").title, /not valid/);
  assert.match(refusalMessage("tracking link expired").title, /expired/);
  assert.match(refusalMessage("tracking link revoked").title, /no longer active/);
  assert.match(refusalMessage("too many messages").title, /cannot be shown/);
  assert.equal(Object.keys(REFUSALS).length, 3);
});

test("closes of /ws/track: delivered and 1008 end it, everything else is retried", () => {
  assert.deepEqual(closeOutcome(1000, "delivered"), { kind: "delivered" });
  assert.deepEqual(closeOutcome(1008, "tracking link revoked"), { kind: "refused", reason: "tracking link revoked" });
  assert.deepEqual(closeOutcome(1008, ""), { kind: "refused", reason: "" });
  for (const [code, reason] of [[1000, ""], [1001, ""], [1006, ""], [1011, ""], [1012, ""], [1013, "slow"], [4000, ""]]) {
    assert.deepEqual(closeOutcome(code, reason), { kind: "retry" }, `${code}`);
  }
});


function open(h) {
  const ends = [];
  const frames = [];
  const states = [];
  const socket = openTrackSocket({
    url: "ws://x/ws/track/t",
    onMessage: (text) => frames.push(JSON.parse(text)),
    onEnd: (outcome) => ends.push(outcome),
    onStateChange: (status) => states.push(status.state),
    inject: h.inject,
  });
  return { socket, ends, frames, states };
}

test("a lost connection is retried with growing backoff and the order comes again", () => {
  const h = harness();
  const { ends, frames, states } = open(h);
  assert.deepEqual(h.sockets[0].protocols, ["tracker.v1"]);
  h.sockets[0].serverOpen();
  h.sockets[0].serverSend({ type: "order", state: "picked_up" });
  h.sockets[0].serverClose(1006);
  assert.equal(states.at(-1), "closed");
  h.advance(499);
  assert.equal(h.sockets.length, 1);
  h.advance(1); // first retry after 500 ms (random() = 1: the top of the jitter)
  assert.equal(h.sockets.length, 2);
  h.sockets[1].serverClose(1006); // refused at the TCP level: no frame, so the backoff grows
  h.advance(999);
  assert.equal(h.sockets.length, 2);
  h.advance(1);
  assert.equal(h.sockets.length, 3);
  h.sockets[2].serverOpen();
  h.sockets[2].serverSend({ type: "order", state: "picked_up" });
  assert.equal(frames.length, 2);
  assert.deepEqual(ends, []);
});

test("refused (1008) and delivered (1000 'delivered') end the socket for good", () => {
  for (const [code, reason, expected] of [
    [1008, "tracking link expired", { kind: "refused", reason: "tracking link expired" }],
    [1008, "tracking link revoked", { kind: "refused", reason: "tracking link revoked" }],
    [1008, "invalid tracking link", { kind: "refused", reason: "invalid tracking link" }],
    [1000, "delivered", { kind: "delivered" }],
  ]) {
    const h = harness();
    const { ends, states } = open(h);
    h.sockets[0].serverOpen();
    h.sockets[0].serverSend({ type: "order", state: "arriving" });
    h.sockets[0].serverClose(code, reason);
    assert.deepEqual(ends, [expected]);
    assert.equal(states.at(-1), "refused");
    h.advance(60_000);
    assert.equal(h.sockets.length, 1, `${code} ${reason}: no reconnect`);
  }
});

test("a socket silent for a minute is taken for dead and reopened; pings keep an idle one alive", () => {
  const h = harness();
  open(h);
  h.sockets[0].serverOpen();
  h.sockets[0].serverSend({ type: "order", state: "picked_up" });
  h.advance(20_000);
  assert.deepEqual(h.sockets[0].sent, [{ type: "ping" }]);
  h.advance(40_000);
  assert.equal(h.sockets.length, 1);
  h.advance(20_000); // 80 s without a frame, checked at the keepalive
  h.advance(1_000);
  assert.equal(h.sockets.length, 2);
});
