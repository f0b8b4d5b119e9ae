import { test } from "node:test";
import assert from "node:assert/strict";
import { createConnection, describeClose, webSocketUrl } from "../src/connection.js";

/** A scripted WebSocket stand-in and manual timers: the test decides when things happen. */
function harness() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {
      this.readyState = 3;
    }
    serverOpen() {
      this.readyState = 1;
      this.onopen && this.onopen();
    }
    serverSend(frame) {
      this.onmessage && this.onmessage({ data: JSON.stringify(frame) });
    }
    serverClose(code, reason = "") {
      this.readyState = 3;
      this.onclose && this.onclose({ code, reason });
    }
  }
  let clock = 0;
  let nextId = 1;
  const pending = new Map();
  const timers = {
    setTimeout: (fn, ms) => (pending.set(nextId, { fn, at: clock + ms }), nextId++),
    clearTimeout: (id) => pending.delete(id),
    setInterval: (fn, ms) => (pending.set(nextId, { fn, at: clock + ms, every: ms }), nextId++),
    clearInterval: (id) => pending.delete(id),
  };
  function advance(ms) {
    const until = clock + ms;
    for (;;) {
      const due = [...pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, timer] = due;
      clock = timer.at;
      if (timer.every) timer.at += timer.every;
      else pending.delete(id);
      timer.fn();
    }
    clock = until;
  }
  return { sockets, FakeSocket, timers, advance, now: () => clock };
}

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
