// Where the tracking page finds its token and its two endpoints. Pure.
//
// The page is served at <prefix>/track/<token> (the token is the only credential: it is signed by the gateway
// and carries the order). Its data comes from <prefix>/api/track/<token> and <prefix>/ws/track/<token>, built
// from the page's own URL so that a gateway mounted under a path prefix works unchanged, and the page talks
// only to its own origin (the CSP's connect-src 'self').

export const TRACK_SEGMENT = "/track/";

/**
 * { token, apiUrl, wsUrl, rootUrl } for the page at `pageHref`, or null when the URL holds no token. The token is
 * taken as it appears in the path (tokens are base64url and ".", nothing to decode) and is never checked here:
 * the gateway decides. `rootUrl` is the gateway's root, against which paths it hands out (the basemap's) resolve.
 */
export function trackLink(pageHref) {
  const url = new URL(pageHref);
  const at = url.pathname.lastIndexOf(TRACK_SEGMENT);
  if (at < 0) return null;
  const token = url.pathname.slice(at + TRACK_SEGMENT.length).replace(/\/+$/, "");
  if (token === "" || token.includes("/")) return null;
  const prefix = url.pathname.slice(0, at + 1); // "/" or "/some/prefix/"
  const api = new URL(`${prefix}api/track/${token}`, url.origin);
  const ws = new URL(`${prefix}ws/track/${token}`, url.origin);
  ws.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return { token, apiUrl: api.href, wsUrl: ws.href, rootUrl: new URL(prefix, url.origin).href };
}
