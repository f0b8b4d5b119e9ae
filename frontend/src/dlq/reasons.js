// Reject reasons and review statuses of the DLQ page. The reasons are the server's: `/api/config` lists the
// codes the validator writes (header `dlq.reason`; tracker/models.py `Reason` is the one list), and the page
// adopts them once at start (`useReasons`). The page owns only how a reason looks: a label made from its code
// and a colour by its place in that list. A reason the page was not told about (an entry indexed before the
// server changed) still renders, by its code, in the fallback colour.

/** Reason colours by position in the server's list (cycled past the end; the last two are spares). */
export const REASON_PALETTE = Object.freeze([
  "#f472b6",
  "#c084fc",
  "#f87171",
  "#fb923c",
  "#facc15",
  "#a3e635",
  "#34d399",
  "#22d3ee",
  "#60a5fa",
  "#94a3b8",
  "#e879f9",
  "#2dd4bf",
]);

export const UNKNOWN_REASON_COLOUR = "#64748b";

/** "missing_partner_id" -> "Missing partner id". */
function labelOf(code) {
  const words = code.replaceAll("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * The page's reasons from the server's list of codes: frozen [{ code, label, colour }] in the server's order.
 * Anything that is not a non-empty string, and repeats, are left out, so a broken answer yields fewer reasons.
 */
export function reasonCatalogue(codes) {
  const reasons = [];
  const seen = new Set();
  for (const code of Array.isArray(codes) ? codes : []) {
    if (typeof code !== "string" || code === "" || seen.has(code)) continue;
    seen.add(code);
    const colour = REASON_PALETTE[reasons.length % REASON_PALETTE.length];
    reasons.push(Object.freeze({ code, label: labelOf(code), colour }));
  }
  return Object.freeze(reasons);
}

let known = reasonCatalogue([]);
let byCode = new Map();

/** Adopt the server's reason codes (from `/api/config`); returns the catalogue. */
export function useReasons(codes) {
  known = reasonCatalogue(codes);
  byCode = new Map(known.map((reason, index) => [reason.code, { ...reason, index }]));
  return known;
}

/** The reasons adopted, in the server's order. */
export function knownReasons() {
  return known;
}

/** A reason's place in the server's order; unknown reasons after every known one. */
export function reasonRank(code) {
  const reason = byCode.get(code);
  return reason ? reason.index : known.length;
}

export function reasonColour(code) {
  const reason = byCode.get(code);
  return reason ? reason.colour : UNKNOWN_REASON_COLOUR;
}

export function reasonLabel(code) {
  const reason = byCode.get(code);
  if (reason) return reason.label;
  return typeof code === "string" && code !== "" ? code : "unknown";
}

/** Review statuses, in their lifecycle order: only `new` entries can be replayed or discarded. */
export const STATUSES = Object.freeze(["new", "replayed", "discarded"]);
export const STATUS_COLOURS = Object.freeze({ new: "#f59e0b", replayed: "#22c55e", discarded: "#64748b" });

/** A MapLibre `match` expression colouring features by their `reason` property (a plain colour when no
 * reasons are known: `match` needs at least one code). */
export function reasonColourExpression() {
  if (known.length === 0) return UNKNOWN_REASON_COLOUR;
  const expression = ["match", ["get", "reason"]];
  for (const reason of known) expression.push(reason.code, reason.colour);
  expression.push(UNKNOWN_REASON_COLOUR);
  return expression;
}
