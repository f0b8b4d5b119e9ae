// The loaded part of the list: entries newest first plus the cursor of the page after them. Pure functions
// from one state to the next (the page keeps the current one): append a page, merge a refresh of the first
// page, apply the outcome of an action.

export function emptyList() {
  return { items: [], nextCursor: null, total: null, pages: 0 };
}

function itemsOf(body) {
  return body && Array.isArray(body.items) ? body.items.filter((item) => item && typeof item.id === "string") : [];
}

function cursorOf(body) {
  return body && typeof body.next_cursor === "string" && body.next_cursor !== "" ? body.next_cursor : null;
}

function totalOf(body, fallback) {
  return body && Number.isFinite(body.total) ? body.total : fallback;
}

/** A first page replaces the list. */
export function firstPage(body) {
  return { items: itemsOf(body), nextCursor: cursorOf(body), total: totalOf(body, null), pages: 1 };
}

/** "Load more": append the next page, skipping ids already shown (entries can shift between requests). */
export function appendPage(list, body) {
  const seen = new Set(list.items.map((item) => item.id));
  const added = itemsOf(body).filter((item) => !seen.has(item.id));
  return { items: [...list.items, ...added], nextCursor: cursorOf(body), total: totalOf(body, list.total), pages: list.pages + 1 };
}

/**
 * Auto-refresh re-reads the first page. When only one page was loaded it simply replaces the list. When the
 * reviewer had loaded more, the rows older than the fresh page are kept (with the cursor that continues after
 * them), so refreshing never throws away what they scrolled to: the fresh page replaces everything up to the
 * last row it shares with the current list. A fresh page sharing no row with the list (a burst of new
 * rejects) replaces it.
 */
export function mergeRefresh(list, body) {
  const fresh = firstPage(body);
  if (list.pages <= 1) return fresh;
  const freshIds = new Set(fresh.items.map((item) => item.id));
  let lastShared = -1;
  list.items.forEach((item, index) => {
    if (freshIds.has(item.id)) lastShared = index;
  });
  if (lastShared === -1 || fresh.nextCursor === null) return fresh;
  const tail = list.items.slice(lastShared + 1).filter((item) => !freshIds.has(item.id));
  return { items: [...fresh.items, ...tail], nextCursor: list.nextCursor, total: fresh.total, pages: list.pages };
}

/** Apply `patch` (e.g. {status: "replayed", replay_count: 1}) to the entry `id`; same list when absent. */
export function patchEntry(list, id, patch) {
  let changed = false;
  const items = list.items.map((item) => {
    if (item.id !== id) return item;
    changed = true;
    return { ...item, ...patch };
  });
  return changed ? { ...list, items } : list;
}

/** The status change a successful action means for the row. */
export function statusAfter(action, response, previous) {
  if (action === "replay") {
    const count = response && Number.isFinite(response.replay_count)
      ? response.replay_count
      : ((previous && previous.replay_count) || 0) + 1;
    return { status: "replayed", replay_count: count, status_at: Date.now() };
  }
  return { status: "discarded", status_at: Date.now() };
}

/**
 * Bulk results {results: [{id, ok, error}]} -> { succeeded: [ids], failed: [{id, error}] }, in request order;
 * an id the server left out of its answer counts as failed.
 */
export function bulkOutcome(ids, body) {
  const byId = new Map();
  for (const result of (body && Array.isArray(body.results) ? body.results : [])) {
    if (result && typeof result.id === "string") byId.set(result.id, result);
  }
  const succeeded = [];
  const failed = [];
  for (const id of ids) {
    const result = byId.get(id);
    if (result && result.ok === true) succeeded.push(id);
    else failed.push({ id, error: result ? String(result.error || "failed") : "no result from the server" });
  }
  return { succeeded, failed };
}
