// Reject reasons and review statuses of the DLQ page: codes as the validator writes them (DESIGN.md, header
// `dlq.reason`), a short label and a colour each. Pure data; a reason the page does not know (a newer server)
// still renders, in the fallback colour.

export const REASONS = Object.freeze([
  { code: "malformed_payload", label: "Malformed payload", colour: "#f472b6" },
  { code: "missing_partner_id", label: "Missing partner id", colour: "#c084fc" },
  { code: "invalid_coordinates", label: "Invalid coordinates", colour: "#f87171" },
  { code: "outside_service_area", label: "Outside service area", colour: "#fb923c" },
  { code: "invalid_timestamp", label: "Invalid timestamp", colour: "#facc15" },
  { code: "stale_timestamp", label: "Stale timestamp", colour: "#a3e635" },
  { code: "future_timestamp", label: "Future timestamp", colour: "#34d399" },
  { code: "out_of_order", label: "Out of order", colour: "#22d3ee" },
  { code: "impossible_speed", label: "Impossible speed", colour: "#60a5fa" },
  { code: "processing_failed", label: "Processing failed", colour: "#94a3b8" },
]);

export const UNKNOWN_REASON_COLOUR = "#64748b";

const BY_CODE = new Map(REASONS.map((reason) => [reason.code, reason]));

export function reasonColour(code) {
  const known = BY_CODE.get(code);
  return known ? known.colour : UNKNOWN_REASON_COLOUR;
}

export function reasonLabel(code) {
  const known = BY_CODE.get(code);
  if (known) return known.label;
  return typeof code === "string" && code !== "" ? code : "unknown";
}

/** Review statuses, in their lifecycle order: only `new` entries can be replayed or discarded. */
export const STATUSES = Object.freeze(["new", "replayed", "discarded"]);
export const STATUS_COLOURS = Object.freeze({ new: "#f59e0b", replayed: "#22c55e", discarded: "#64748b" });

/** A MapLibre `match` expression colouring features by their `reason` property. */
export function reasonColourExpression() {
  const expression = ["match", ["get", "reason"]];
  for (const reason of REASONS) expression.push(reason.code, reason.colour);
  expression.push(UNKNOWN_REASON_COLOUR);
  return expression;
}
