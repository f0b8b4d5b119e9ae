// Which rows are ticked for a bulk replay/discard. Only entries still in status `new` can be acted on (the
// server answers 409 for the others), so only those are selectable; a refresh that changes a row's status or
// drops it from the list also drops it from the selection. Sets are never mutated: each function returns a
// new one, so the previous state can be compared against.

export function isSelectable(entry) {
  return Boolean(entry) && entry.status === "new";
}

export function toggled(selection, id, on = !selection.has(id)) {
  const next = new Set(selection);
  if (on) next.add(id);
  else next.delete(id);
  return next;
}

/** Tick (or untick) every selectable entry of `items`, keeping ticks on rows elsewhere. */
export function withAll(selection, items, on) {
  const next = new Set(selection);
  for (const entry of items) {
    if (!isSelectable(entry)) continue;
    if (on) next.add(entry.id);
    else next.delete(entry.id);
  }
  return next;
}

/** Only ids that are in `items` and still selectable. */
export function pruned(selection, items) {
  const next = new Set();
  for (const entry of items) if (selection.has(entry.id) && isSelectable(entry)) next.add(entry.id);
  return next;
}

/** "none" | "some" | "all": the state of the header checkbox for the selectable rows of `items`. */
export function headerState(selection, items) {
  let selectable = 0;
  let ticked = 0;
  for (const entry of items) {
    if (!isSelectable(entry)) continue;
    selectable += 1;
    if (selection.has(entry.id)) ticked += 1;
  }
  if (ticked === 0) return "none";
  return ticked === selectable ? "all" : "some";
}
