/**
 * The Worker's per-key rate limits, as the router's `limit` hook: the tier's limits from
 * RATE_LIMITS, the key's RateLimiter object (named by a hash of the key, so the key is never a
 * name, a log word or a stored value), this isolate's leases, and the headers and 429 of
 * rate-limit-headers.ts. Requests without a key (an open API) and tiers without limits pass.
 */
import type { LimitAnswer, RouteCall } from "../routing/context";
import { bearerToken } from "./auth";
import { ConfigError, type DurableObjectNamespaceLike, type Env, type ExecutionContextLike } from "./env";
import { parseRateLimits } from "./rate-limit-config";
import { rateLimitError, rateLimitHeaders } from "./rate-limit-headers";
import type { LeaseAnswer, LeaseCall } from "./rate-limit-ledger";
import { LeaseCache } from "./rate-limit-lease";

export type LimitHook = (call: RouteCall, reserveTokens: number) => Promise<LimitAnswer | undefined>;

const utf8 = new TextEncoder();

/** The limiter object's name for a key: its SHA-256 in hex, prefixed so the namespace could hold other kinds. */
export async function limiterName(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8.encode(key)));
  return `key-sha256:${[...digest].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function callLimiter(ns: DurableObjectNamespaceLike): (name: string, call: LeaseCall) => Promise<LeaseAnswer> {
  return async (name, call) => {
    const res = await ns.get(ns.idFromName(name)).fetch("https://rate-limiter/lease", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(call) });
    if (!res.ok) throw new Error(`the RateLimiter object answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as LeaseAnswer;
  };
}

/**
 * Undefined when RATE_LIMITS is unset. `context` finds the request's execution context, which
 * keeps a refund's call to the limiter alive after the response has gone.
 */
export function rateLimitHook(env: Env, log: (line: string) => void, context: (req: Request) => ExecutionContextLike | undefined, now: () => number = () => Date.now()): LimitHook | undefined {
  const tiers = parseRateLimits(env.RATE_LIMITS);
  if (!tiers) return undefined;
  const ns = env.RATE_LIMITER;
  if (!ns || typeof ns.idFromName !== "function") {
    throw new ConfigError('var RATE_LIMITS is set but the Durable Object binding RATE_LIMITER is missing: bind class "RateLimiter" (wrangler.toml, [[durable_objects.bindings]])');
  }
  const leases = new LeaseCache(callLimiter(ns), now);
  const names = new Map<string, Promise<string>>();
  return async (call, reserve) => {
    const limits = tiers.get(call.tier);
    const key = bearerToken(call.req);
    if (!limits || key === undefined) return undefined;
    let name = names.get(key);
    if (!name) names.set(key, (name = limiterName(key)));
    const id = await name;
    let admitted;
    try {
      admitted = await leases.admit(id, limits, reserve);
    } catch (err) {
      // A limiter that cannot be reached must not take the API down with it: admit, and say so.
      log(`edgelm: rate limiter unreachable (${(err as Error).message}); admitted a tier ${call.tier} request without its limit`);
      return undefined;
    }
    if (!admitted.ok) return { ok: false, error: rateLimitError(admitted.answer, call.tier), headers: rateLimitHeaders(admitted.answer.status) };
    return {
      ok: true,
      headers: rateLimitHeaders(admitted.status),
      settle(used) {
        const flush = leases.settle(id, limits, reserve, used);
        if (flush) context(call.req)?.waitUntil(flush);
      },
    };
  };
}
