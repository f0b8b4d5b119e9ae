// Read access for both pages: the viewer token a gateway with TRACKER_VIEWER_TOKEN asks for (tracker/access.py).
//
// The token is asked for once, with a small form (token-dialog.js), and kept in sessionStorage like the review
// page's admin token (gone when the tab closes; the map and the review page in one tab share it). It goes on
// every read as `Authorization: Bearer`, and to /ws — browsers cannot set headers on a WebSocket — as the
// subprotocol `bearer.<base64url(token)>` offered next to the page's own (`tracker.v1`, from /api/config), which
// is the one the server accepts. A refused token (401, or /ws closed with 1008 and the server's reason) is
// forgotten and asked for again. On the review page an admin token already given for writes also reads.
//
// Pure apart from the storage and the `ask` callback handed in, so node tests drive every path.

export const VIEWER_TOKEN_KEY = "tracker.viewerToken";
export const BEARER_SUBPROTOCOL = "bearer.";
export const DEFAULT_SUBPROTOCOL = "tracker.v1";
const MAX_ASKS = 3;

/** A sessionStorage-backed store for one token (any Storage-like object, or null when storage is blocked). */
export function tokenStore(storage, key = VIEWER_TOKEN_KEY) {
  let memory = null; // when storage throws (privacy modes), keep it for this page only
  return {
    get() {
      try {
        return storage ? storage.getItem(key) : memory;
      } catch {
        return memory;
      }
    },
    set(token) {
      memory = token;
      try {
        if (storage) storage.setItem(key, token);
      } catch {
        /* memory only */
      }
    },
    clear() {
      memory = null;
      try {
        if (storage) storage.removeItem(key);
      } catch {
        /* nothing stored */
      }
    },
  };
}

/** base64url of the UTF-8 bytes of `text`, without padding (a subprotocol may not hold "=", "+" or "/"). */
export function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The subprotocols a page offers on /ws: its own, then the token's when it has one. */
export function webSocketProtocols(subprotocol, token) {
  const own = subprotocol || DEFAULT_SUBPROTOCOL;
  return token ? [own, BEARER_SUBPROTOCOL + base64url(token)] : [own];
}

/** The Authorization header for `token` ({} without one). */
export function authHeaders(token) {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * Read access: which token to send, and what to do when the server refuses it.
 *
 * stores: token stores tried in order (the first holds the viewer token and receives new ones; later ones,
 * such as the review page's admin token, are used when it is empty). ask(reason) -> Promise<string|null>
 * shows the form (reason: null the first time, else why the previous token was refused); null = cancelled.
 * preferred: stores tried before those but never given a new token (the review page's admin token: an
 * operator's reads show who replayed what, which a viewer's do not).
 */
export function createReadAccess({ stores, ask, preferred = [] }) {
  let asking = null; // one form at a time: concurrent refusals share it
  let cancelled = false;

  function token() {
    for (const store of [...preferred, ...stores]) {
      const value = store.get();
      if (value) return value;
    }
    return null;
  }

  /** Show the form; resolves with the token given (and stored) or null. Concurrent calls share one form. */
  function askForToken(reason = null) {
    if (asking === null) {
      asking = Promise.resolve(ask(reason)).then((given) => {
        asking = null;
        const trimmed = typeof given === "string" ? given.trim() : "";
        cancelled = trimmed === "";
        if (trimmed !== "") stores[0].set(trimmed);
        return trimmed === "" ? null : trimmed;
      });
    }
    return asking;
  }

  /**
   * The server refused `sent` (the token a request carried, or null): forget it and ask for another.
   * Resolves with the new token, or null — at once, without a form, when the reader just cancelled one and
   * nothing was sent (the page then offers a button to try again).
   */
  function refused(sent) {
    if (sent) {
      for (const store of [...preferred, ...stores]) if (store.get() === sent) store.clear();
    }
    const current = token();
    if (current && current !== sent) return Promise.resolve(current); // replaced meanwhile (another tab, form)
    if (!sent && cancelled) return Promise.resolve(null);
    return askForToken(sent ? "the server refused the token" : null);
  }

  return { token, ask: askForToken, refused };
}

/**
 * GET `url` with the read token; on a 401, ask for a token and try again (up to maxAsks forms). Resolves with
 * the last Response; rejects like fetch (an AbortError when one attempt takes longer than timeoutMs).
 */
export async function fetchWithAccess(url, { fetchImpl = globalThis.fetch, access = null, timeoutMs = 10_000, headers = {}, maxAsks = MAX_ASKS } = {}) {
  for (let asks = 0; ; asks += 1) {
    const token = access ? access.token() : null;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let response;
    try {
      response = await fetchImpl(url, { signal: controller.signal, headers: { ...headers, ...authHeaders(token) } });
    } finally {
      clearTimeout(timer);
    }
    if (response.status !== 401 || access === null || asks >= maxAsks) return response;
    const next = await access.refused(token);
    if (!next) return response;
  }
}
