/**
 * CORS for browser clients: every response carries the allow-origin header for an allowed origin,
 * and OPTIONS preflights are answered here without touching a handler.
 */
const ALLOW_METHODS = "GET, HEAD, POST, OPTIONS";
const ALLOW_HEADERS = "authorization, content-type, x-request-id, x-edgelm-prefer-route, openai-organization, openai-project, range, if-range, if-none-match";

/** The Access-Control-Allow-Origin value for this request, or undefined when the origin is not allowed. */
export function allowedOrigin(origin: string | null, allowed: "*" | readonly string[]): string | undefined {
  if (allowed === "*") return "*";
  return origin !== null && allowed.includes(origin) ? origin : undefined;
}

export function corsHeaders(req: Request, allowed: "*" | readonly string[]): Headers {
  const h = new Headers();
  const origin = allowedOrigin(req.headers.get("origin"), allowed);
  if (allowed !== "*") h.set("vary", "origin");
  if (origin === undefined) return h;
  h.set("access-control-allow-origin", origin);
  // Browser code may read only exposed headers: the retry hint, the request id and the route taken (and why, and its cost, and the shard replica);
  // for the model file, what a ranged, resumable download needs; the rate limits, so a page can pace itself.
  h.set(
    "access-control-expose-headers",
    "retry-after, x-request-id, x-edgelm-route, x-edgelm-route-reason, x-edgelm-fallback, x-edgelm-estimated-cost-usd, x-edgelm-cost-usd, x-edgelm-replica, content-range, etag, accept-ranges, content-length, " +
      "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens",
  );
  return h;
}

export function preflight(req: Request, allowed: "*" | readonly string[]): Response {
  const h = corsHeaders(req, allowed);
  if (h.has("access-control-allow-origin")) {
    h.set("access-control-allow-methods", ALLOW_METHODS);
    h.set("access-control-allow-headers", req.headers.get("access-control-request-headers") ?? ALLOW_HEADERS);
    h.set("access-control-max-age", "86400");
  }
  return new Response(null, { status: 204, headers: h });
}
