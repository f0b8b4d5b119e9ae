import { test } from "node:test";
import assert from "node:assert/strict";
import { createConnection, describeClose, webSocketUrl } from "../src/connection.js";
import { harness } from "./fake-socket.js";


test("webSocketUrl follows the page's scheme and path", () => {
  assert.equal(webSocketUrl("http://localhost:8000/"), "ws://localhost:8000/ws");
  assert.equal(webSocketUrl("https://tracker.example/#x"), "wss://tracker.example/ws");
  assert.equal(webSocketUrl("https://tracker.example/ops/"), "wss://tracker.example/ops/ws");
});

test("close codes read as something a dispatcher understands", () => {
  assert.match(describeClose(1013, ""), /fell behind/);
  assert.match(describeClose(1008, "bad bbox"), /rejected.*bad bbox/);
  assert.equal(describeClose(1006, ""), "connection lost");
  assert.equal(describeClose(4999, ""), "connection closed (code 4999)");
});

test("reconnects with growing backoff, resets after a frame, and reports state", () => {
  const h = harness();
  const states = [];
  const opens = [];
  const connection = createConnection({
    url: "ws://x/ws",
    WebSocketImpl: h.FakeSocket,
    timers: h.timers,
    now: h.now,
    random: () => 1,
    onOpen: (send) => opens.push(send),
    onStateChange: (status) => states.push(status.state),
  });
  assert.equal(connection.status().state, "connecting");

  h.sockets[0].serverClose(1006);
  assert.equal(connection.status().state, "closed");
  assert.equal(connection.status().retryAtMs, 500);
  h.advance(500);
  assert.equal(h.sockets.length, 2);
  h.sockets[1].serverClose(1013);
  assert.equal(connection.status().retryAtMs, 500 + 1000, "second failure waits longer");
  assert.match(connection.status().lastError, /fell behind/);
  h.advance(1000);

  const socket = h.sockets[2];
  socket.serverOpen();
  assert.equal(connection.status().state, "open");
  assert.equal(opens.length, 1);
  socket.serverSend({ type: "snapshot", couriers: [] });
  socket.serverClose(1006);
  assert.equal(connection.status().retryAtMs - h.now(), 500, "a connection that delivered resets the backoff");
  assert.deepEqual(states.slice(0, 4), ["connecting", "closed", "connecting", "closed"]);
  connection.stop();
});

test("keepalive pings, and a silent server is dropped and retried", () => {
  const h = harness();
  const connection = createConnection({
    url: "ws://x/ws",
    WebSocketImpl: h.FakeSocket,
    timers: h.timers,
    now: h.now,
    random: () => 0,
    keepaliveMs: 1_000,
    silenceMs: 2_500,
  });
  const socket = h.sockets[0];
  socket.serverOpen();
  h.advance(1_000);
  assert.deepEqual(socket.sent, [{ type: "ping" }]);
  h.advance(2_000);
  assert.equal(connection.status().state, "closed");
  assert.match(connection.status().lastError, /no data/);
  h.advance(10_000);
  assert.equal(h.sockets.length, 2);
  connection.stop();
});

test("reconnectNow skips the wait; stop ends everything", () => {
  const h = harness();
  const connection = createConnection({ url: "ws://x/ws", WebSocketImpl: h.FakeSocket, timers: h.timers, now: h.now });
  h.sockets[0].serverClose(1006);
  connection.reconnectNow();
  assert.equal(h.sockets.length, 2);
  connection.stop();
  h.advance(60_000);
  assert.equal(h.sockets.length, 2);
  assert.equal(connection.status().state, "closed");
});
