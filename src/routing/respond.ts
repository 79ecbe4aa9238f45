/**
 * The last step of a routed request: every response says which route served it, why, after which
 * fallback and at what estimated cost, and every way a request ends closes its accounting once
 * (the metrics count it then). Both paths answer through these, so their headers cannot drift apart.
 */
import { errorResponse, toApiError, type ApiError } from "../api/errors";
import { SSE_HEADERS, sseStream } from "../api/sse";
import { Accounting } from "./accounting";
import type { Route } from "./config";
import type { Fallback, RoutedRequest } from "./context";
import type { RoutingMetrics } from "./metrics";
import type { Endpoint } from "./origin";
import type { RouteDecision } from "./policy";

/** The decision's up-front estimate for `route`: the chosen path's, or the alternative's after a fallback. */
function estimateFor(decision: RouteDecision, route: Route): number | null {
  return route === decision.route ? decision.estimatedCostUsd : decision.alternativeCostUsd;
}

export function routeHeaders(decision: RouteDecision, route: Route, fallback: Fallback | null): Headers {
  const h = new Headers();
  h.set("x-edgelm-route", route);
  h.set("x-edgelm-route-reason", decision.reason);
  if (fallback) h.set("x-edgelm-fallback", `${fallback.from}->${route}; cause=${fallback.cause}`);
  const est = estimateFor(decision, route);
  if (est !== null) h.set("x-edgelm-estimated-cost-usd", String(Number(est.toPrecision(4))));
  return h;
}

export function accountingFor(r: RoutedRequest, route: Route): Accounting {
  const { deps } = r;
  return new Accounting(route, r.call.endpoint, estimateFor(r.decision, route), r.promptTokens, deps.cfg.prices, deps.metrics, deps.now, r.t0, r.settle);
}

/** Turned away before any path was tried (invalid, unknown model, or no route allowed). */
export function refused(metrics: RoutingMetrics, endpoint: Endpoint, err: ApiError, reason = "invalid_request"): Response {
  metrics.requests.inc({ route: "none", endpoint, status: String(err.status) });
  const res = errorResponse(err);
  res.headers.set("x-edgelm-route", "none");
  res.headers.set("x-edgelm-route-reason", reason);
  return res;
}

/** The last path tried failed before its first token and nothing is left to try: its error goes out. */
export function failed(r: RoutedRequest, res: Response, route: Route, fallback: Fallback | null): Response {
  r.deps.metrics.requests.inc({ route, endpoint: r.call.endpoint, status: String(res.status) });
  r.settle?.(0);
  return withHeaders(res, routeHeaders(r.decision, route, fallback));
}

/** `res` with `h` added; `res`'s own headers win. */
export function withHeaders(res: Response, h: Headers): Response {
  res.headers.forEach((v, k) => h.set(k, v));
  return new Response(res.body, { status: res.status, headers: h });
}

/** A whole (non-streamed) answer; its cost is known now, so it goes into a header too. */
export function wholeResponse(body: object, acct: Accounting, h: Headers): Response {
  acct.end(200);
  h.set("content-type", "application/json");
  const cost = acct.actualCost();
  if (cost !== null) h.set("x-edgelm-cost-usd", String(cost));
  return new Response(JSON.stringify(body), { status: 200, headers: h });
}

/**
 * Our SSE response over `items`. When the client goes away, `cancelSource` stops the path at once
 * (the generator's own cleanup would wait for its pending read to settle first).
 */
export function sseResponse(items: AsyncGenerator<unknown>, acct: Accounting, h: Headers, cancelSource: () => void): Response {
  let failure: string | undefined;
  const watched = (async function* () {
    try {
      yield* items;
    } catch (err) {
      failure = toApiError(err).code ?? "error";
      throw err;
    }
  })();
  const body = sseStream(watched, {
    onEnd: () => acct.end(200, failure, true),
    onCancel: () => {
      cancelSource();
      acct.end(499, "client_disconnected", true);
    },
  });
  for (const [k, v] of Object.entries(SSE_HEADERS)) h.set(k, v);
  return new Response(body, { status: 200, headers: h });
}
