// A scripted WebSocket stand-in and manual timers, shared by the tests of the sockets (connection.test.js,
// track-outcome.test.js): the test decides when things happen.

/** `inject`: what createConnection takes (`random` fixed, so backoff delays are exact). */
export function harness() {
  const sockets = [];
  class FakeSocket {
    constructor(url, protocols) {
      Object.assign(this, { url, protocols, readyState: 0, sent: [] });
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
  const inject = { WebSocketImpl: FakeSocket, timers, now: () => clock, random: () => 1 };
  return { sockets, FakeSocket, timers, advance, now: () => clock, inject, pending };
}
