// What the map should frame: the courier and where it is heading (the pickup point before pickup, then the
// drop-off), plus the drop-off always, since that is where the customer is. Pure.
//
// The map is fitted once when the first data arrives and again only when the framing no longer holds: the
// courier left the view or the order moved on (pickup done). A customer who panned or zoomed in the last
// USER_HOLD_MS is left alone unless the order moved on: refitting on the next fix would fight their fingers.

export const USER_HOLD_MS = 20_000;

/** The [lon, lat] points to keep in view for a track (state.js), drawn courier position `drawn` or null. */
export function pointsToFit(track, drawn) {
  const order = track.order;
  if (order === null) return [];
  const points = [[order.dropoff.lon, order.dropoff.lat]];
  if (order.state === "to_pickup" && order.pickup !== null) points.push([order.pickup.lon, order.pickup.lat]);
  if (order.state !== "delivered" && drawn !== null) points.push(drawn);
  return points;
}

/** [[west, south], [east, north]] around `points`, or null for none. */
export function boundsOf(points) {
  if (points.length === 0) return null;
  let west = Infinity;
  let south = Infinity;
  let east = -Infinity;
  let north = -Infinity;
  for (const [lon, lat] of points) {
    west = Math.min(west, lon);
    east = Math.max(east, lon);
    south = Math.min(south, lat);
    north = Math.max(north, lat);
  }
  return [
    [west, south],
    [east, north],
  ];
}

/** Whether [lon, lat] lies inside `bounds` shrunk by `insetFraction` of its size on each side. */
export function inside(bounds, [lon, lat], insetFraction = 0.05) {
  const [[west, south], [east, north]] = bounds;
  const insetLon = (east - west) * insetFraction;
  const insetLat = (north - south) * insetFraction;
  return lon >= west + insetLon && lon <= east - insetLon && lat >= south + insetLat && lat <= north - insetLat;
}

/**
 * Whether to fit the map again: never fitted, the state changed since the last fit (a new target), or a point
 * to keep in view is outside what is shown (`visible`: the map's bounds now, or null before it has any) and
 * the customer has not moved the map in the last USER_HOLD_MS (`sinceUserMoveMs`: Infinity when never).
 */
export function needsFit(fittedState, track, points, visible, sinceUserMoveMs = Infinity) {
  if (track.order === null || points.length === 0) return false;
  if (fittedState !== track.order.state) return true;
  if (sinceUserMoveMs < USER_HOLD_MS) return false;
  if (visible === null) return true;
  return points.some((point) => !inside(visible, point));
}
