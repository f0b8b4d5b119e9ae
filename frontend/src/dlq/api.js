// HTTP to the gateway: reads with a timeout (and the viewer token when the gateway wants one: ../access.js),
// writes with the admin token. The admin token is asked for the first time a write is attempted, kept in
// sessionStorage (gone when the tab closes), and asked for again when the server answers 401. 403 means the
// server has no token configured at all: writes are off, asking is useless.
//
// Every function takes its fetch and token store as arguments so node tests can drive the whole flow.

import { fetchWithAccess, tokenStore as storeFor } from "../access.js";

const TIMEOUT_MS = 10_000;
export const TOKEN_KEY = "tracker.adminToken";
export const WRITES_DISABLED = "writes are disabled on this server (no TRACKER_ADMIN_TOKEN)";

async function bodyOf(response) {
  const text = await response.text();
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: text.slice(0, 300) };
  }
}

/**
 * GET a JSON document: { ok, status, body, error } with error a message when not ok. access: the page's read
 * access (../access.js createReadAccess), which sends the viewer token and asks for one on a 401.
 */
export async function getJson(url, { fetchImpl = globalThis.fetch, timeoutMs = TIMEOUT_MS, access = null } = {}) {
  try {
    const response = await fetchWithAccess(url, { fetchImpl, access, timeoutMs, headers: { accept: "application/json" } });
    const body = await bodyOf(response);
    if (!response.ok) return { ok: false, status: response.status, body, error: errorMessage(response.status, body) };
    return { ok: true, status: response.status, body, error: null };
  } catch (error) {
    const message = error && error.name === "AbortError" ? "the server did not answer in time" : "the server is unreachable";
    return { ok: false, status: 0, body: null, error: message };
  }
}

/** What to tell the reviewer about a failed request. */
export function errorMessage(status, body) {
  if (status === 403) return WRITES_DISABLED;
  const detail = body && typeof body.error === "string" && body.error !== "" ? body.error : null;
  if (status === 401) return detail ? `the token was refused (${detail})` : "the token was refused";
  if (status === 0) return "the server is unreachable";
  return detail || `the server answered ${status}`;
}

/** The admin token's sessionStorage-backed store (any Storage-like object, or null when storage is blocked). */
export function tokenStore(storage) {
  return storeFor(storage, TOKEN_KEY);
}

/**
 * POST a JSON body (or none) with the bearer token.
 *
 * askToken(reason) -> Promise<string|null>: shows the token dialog; reason is null the first time, or the
 * refusal message after a 401; null means the reviewer cancelled. Returns { ok, status, body, error,
 * cancelled }.
 */
export async function postWithToken(url, payload, { fetchImpl = globalThis.fetch, tokens, askToken, maxAsks = 5 }) {
  let token = tokens.get();
  let reason = null;
  for (let asks = 0; ; ) {
    if (!token) {
      if (asks >= maxAsks) return { ok: false, status: 401, body: null, error: reason, cancelled: false };
      asks += 1;
      token = await askToken(reason);
      if (!token) return { ok: false, status: 0, body: null, error: "cancelled", cancelled: true };
      tokens.set(token);
    }
    let response;
    try {
      response = await fetchImpl(url, {
        method: "POST",
        headers: {
          accept: "application/json",
          authorization: `Bearer ${token}`,
          ...(payload === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
      });
    } catch {
      return { ok: false, status: 0, body: null, error: errorMessage(0, null), cancelled: false };
    }
    const body = await bodyOf(response);
    if (response.status === 401) {
      tokens.clear();
      token = null;
      reason = errorMessage(401, body);
      continue;
    }
    if (!response.ok) {
      return { ok: false, status: response.status, body, error: errorMessage(response.status, body), cancelled: false };
    }
    return { ok: true, status: response.status, body, error: null, cancelled: false };
  }
}
