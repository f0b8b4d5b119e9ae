import { test } from "node:test";
import assert from "node:assert/strict";
import {
  VIEWER_TOKEN_KEY,
  authHeaders,
  base64url,
  createReadAccess,
  fetchWithAccess,
  tokenStore,
  webSocketProtocols,
} from "../src/access.js";
import { createConnection } from "../src/connection.js";

function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => items.set(key, String(value)),
    removeItem: (key) => items.delete(key),
  };
}

/** ask() that answers from a list, counting the forms shown and the reasons given. */
function answering(...answers) {
  const asked = [];
  const ask = async (reason) => {
    asked.push(reason);
    return answers.length ? answers.shift() : null;
  };
  return { ask, asked };
}

test("the token rides in a subprotocol as base64url without padding, next to the page's own", () => {
  assert.equal(base64url("viewer-token-1"), "dmlld2VyLXRva2VuLTE");
  assert.equal(base64url("ü?>"), "w7w_Pg"); // "/" and "+" become "_" and "-"
  assert.deepEqual(webSocketProtocols("tracker.v1", null), ["tracker.v1"]);
  assert.deepEqual(webSocketProtocols(undefined, "viewer-token-1"), ["tracker.v1", "bearer.dmlld2VyLXRva2VuLTE"]);
  assert.deepEqual(authHeaders("t0k3n"), { authorization: "Bearer t0k3n" });
  assert.deepEqual(authHeaders(null), {});
});

test("a token is asked for once, kept for the tab, and shared by concurrent refusals", async () => {
  const storage = memoryStorage();
  const { ask, asked } = answering(" viewer-token-1 ");
  const access = createReadAccess({ stores: [tokenStore(storage)], ask });
  assert.equal(access.token(), null);
  const [a, b] = await Promise.all([access.refused(null), access.refused(null)]);
  assert.deepEqual([a, b], ["viewer-token-1", "viewer-token-1"]);
  assert.deepEqual(asked, [null], "one form for both");
  assert.equal(storage.getItem(VIEWER_TOKEN_KEY), "viewer-token-1");
});

test("a refused stored token is forgotten and asked for again; a cancelled form is not shown again by itself", async () => {
  const storage = memoryStorage();
  storage.setItem(VIEWER_TOKEN_KEY, "stale");
  const { ask, asked } = answering(null);
  const access = createReadAccess({ stores: [tokenStore(storage)], ask });
  assert.equal(await access.refused("stale"), null);
  assert.deepEqual(asked, ["the server refused the token"]);
  assert.equal(access.token(), null);
  assert.equal(await access.refused(null), null, "cancelled: no form until the reader asks for one");
  assert.equal(asked.length, 1);
});

test("the review page's admin token reads when there is no viewer token", async () => {
  const storage = memoryStorage();
  const admin = tokenStore(storage, "tracker.adminToken");
  admin.set("admin-token-1");
  const { ask, asked } = answering("viewer-token-1");
  const access = createReadAccess({ stores: [tokenStore(storage), admin], ask });
  assert.equal(access.token(), "admin-token-1");
  assert.equal(await access.refused("admin-token-1"), "viewer-token-1");
  assert.equal(admin.get(), null);
  assert.equal(asked.length, 1);
});

test("a read refused with 401 asks for the token and is sent again with it", async () => {
  const seen = [];
  const fetchImpl = async (url, init) => {
    seen.push(init.headers.authorization ?? null);
    const ok = init.headers.authorization === "Bearer viewer-token-1";
    return { status: ok ? 200 : 401, ok };
  };
  const { ask } = answering("wrong", "viewer-token-1");
  const access = createReadAccess({ stores: [tokenStore(memoryStorage())], ask });
  const response = await fetchWithAccess("api/couriers/c1", { fetchImpl, access });
  assert.equal(response.status, 200);
  assert.deepEqual(seen, [null, "Bearer wrong", "Bearer viewer-token-1"]);

  const open = await fetchWithAccess("api/config", { fetchImpl: async () => ({ status: 401, ok: false }) });
  assert.equal(open.status, 401, "without read access a 401 is just returned");
});

test("a socket closed for its token is not retried until there is a new one", () => {
  const sockets = [];
  class FakeSocket {
    constructor(url, protocols) {
      this.protocols = protocols;
      sockets.push(this);
    }
    close() {}
  }
  const timers = { setTimeout: () => 1, clearTimeout() {}, setInterval: () => 2, clearInterval() {} };
  let token = null;
  const refusals = [];
  const connection = createConnection({
    url: "ws://x/ws",
    WebSocketImpl: FakeSocket,
    timers,
    protocols: () => webSocketProtocols("tracker.v1", token),
    isRefusal: (code, reason) => code === 1008 && reason === "viewer token required",
    onRefused: (code, reason) => refusals.push([code, reason]),
  });
  assert.deepEqual(sockets[0].protocols, ["tracker.v1"]);
  sockets[0].onclose({ code: 1008, reason: "viewer token required" });
  assert.equal(connection.status().state, "refused");
  assert.deepEqual(refusals, [[1008, "viewer token required"]]);
  assert.equal(connection.status().retryAtMs, null, "no retry scheduled");
  token = "viewer-token-1";
  connection.reconnectNow();
  assert.deepEqual(sockets[1].protocols, ["tracker.v1", "bearer.dmlld2VyLXRva2VuLTE"]);
  sockets[1].onclose({ code: 1008, reason: "bad bbox" });
  assert.equal(connection.status().state, "closed", "another 1008 is an ordinary close");
  connection.stop();
});

test("a preferred store (the admin token) is read first but never receives a token from the viewer form", async () => {
  const storage = memoryStorage();
  const admin = tokenStore(storage, "tracker.adminToken");
  const viewer = tokenStore(storage);
  viewer.set("viewer-token-1");
  const { ask } = answering("viewer-token-2");
  const access = createReadAccess({ preferred: [admin], stores: [viewer], ask });
  assert.equal(access.token(), "viewer-token-1");
  admin.set("admin-token-1");
  assert.equal(access.token(), "admin-token-1", "an operator's reads carry the operator token");
  assert.equal(await access.refused("admin-token-1"), "viewer-token-1", "refused: forgotten, the viewer token stays");
  assert.equal(admin.get(), null);
  viewer.clear();
  assert.equal(await access.refused(null), "viewer-token-2");
  assert.equal(admin.get(), null, "the viewer form's token is not an admin token");
  assert.equal(viewer.get(), "viewer-token-2");
});
