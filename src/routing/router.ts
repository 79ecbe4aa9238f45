/**
 * One generation request through the router: decide (validate, count, ask the policy), attempt the
 * chosen path, fall back to the other when it fails before its first token, and respond in our
 * shape with the route, the reason, the fallback and the cost in its headers and usage.
 * Platform-neutral: the host supplies the edge (a continuation into src/api), its load, the
 * breaker, the metrics and fetch.
 */
import { attemptEdge } from "./attempt-edge";
import { attemptOrigin } from "./attempt-origin";
import type { Route } from "./config";
import type { Attempt, Fallback, RouteCall, RoutedRequest, RouterDeps } from "./context";
import { decide } from "./decide";
import { failed, refused } from "./respond";

export type { EdgeView, RouteCall, RouterDeps } from "./context";

export async function routeRequest(call: RouteCall, deps: RouterDeps): Promise<Response> {
  const decided = decide(call, deps);
  if (!decided.ok) return decided.response;
  const r = decided.routed;
  // Reserved before either path runs, so the origin's requests count as the edge's do.
  const limit = await deps.limit?.(call, r.promptTokens + r.maxTokens);
  if (limit && !limit.ok) return withLimitHeaders(refused(deps.metrics, call.endpoint, limit.error, "rate_limited"), limit.headers);
  if (!limit) return routeLimited(r);
  let settled = false;
  r.settle = (used) => {
    if (settled) return;
    settled = true;
    limit.settle(used);
  };
  try {
    return withLimitHeaders(await routeLimited(r), limit.headers);
  } catch (err) {
    r.settle(0);
    throw err;
  }
}

function withLimitHeaders(res: Response, h: Headers): Response {
  h.forEach((v, k) => res.headers.set(k, v));
  return res;
}

async function routeLimited(r: RoutedRequest): Promise<Response> {
  const { call, deps } = r;
  const { route, reason, fallback } = r.decision;
  const { metrics } = deps;

  const first = await attempt(r, route);
  if (first.ok) return first.respond(null);
  metrics.errors.inc({ route, kind: first.cause });
  if (!fallback) {
    call.log(`${route} failed (${first.cause}); no fallback for reason ${reason}`);
    return failed(r, first.response, route, null);
  }
  call.log(`${route} failed before the first token (${first.cause}): falling back to ${fallback}`);
  await first.response.body?.cancel().catch(() => {});
  const fb: Fallback = { from: route, cause: first.cause };
  const second = await attempt(r, fallback);
  if (second.ok) {
    metrics.fallbacks.inc({ from: route, to: fallback, cause: first.cause });
    return second.respond(fb);
  }
  metrics.errors.inc({ route: fallback, kind: second.cause });
  return failed(r, second.response, fallback, fb);
}

function attempt(r: RoutedRequest, route: Route): Promise<Attempt> {
  return route === "edge" ? attemptEdge(r) : attemptOrigin(r);
}
