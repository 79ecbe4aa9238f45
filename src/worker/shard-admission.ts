/**
 * Per-request platform counts of a sharded generation, checked before any work: a Worker request
 * may make only so many subrequests (50 on the Free plan, 1,000+ on Paid: DO calls and R2 reads
 * count) and invoke only so many Workers through bindings (32). Past either, the platform fails
 * the request midway (a broken stream for the client); refused up front, it is a clear 400 that
 * says how much would fit, and a request that left max_tokens to the default gets what fits.
 *
 * Worst case, per request (ShardedEngine, src/shard/links.ts, src/shard/embedding.ts):
 *   forward passes  = ceil(prompt / prefill chunk) + (max_tokens − 1)
 *   invocations     = shards (stream: one session each) | shards × passes (rpc: one call per hop)
 *   embedding reads ≤ prompt tokens + (max_tokens − 1)   (one range read per uncached row at most)
 *   subrequests     = invocations + embedding reads
 * A session reopened after a shard restart costs one more; the limits leave that to the margin.
 */
import type { Admission, AdmitResult } from "../api/deps";
import { ApiError } from "../api/errors";

export interface ShardLimits {
  /** Subrequests one request may make (SUBREQUEST_LIMIT). */
  subrequests: number;
  /** Workers one request may invoke through bindings (SHARD_INVOCATION_LIMIT). */
  invocations: number;
}

/** The Paid plan's subrequests (cpu_ms = 30000 in the generated config already assumes a paid plan); the Free plan's 50 is SUBREQUEST_LIMIT = "50". */
export const DEFAULT_SHARD_LIMITS: ShardLimits = { subrequests: 10_000, invocations: 32 };

export interface ShardShape {
  shards: number;
  transport: "stream" | "rpc";
  prefillChunk: number;
}

export function requestCounts(s: ShardShape, promptTokens: number, maxTokens: number): { invocations: number; subrequests: number } {
  const passes = Math.ceil(promptTokens / s.prefillChunk) + Math.max(0, maxTokens - 1);
  const invocations = s.transport === "stream" ? s.shards : s.shards * passes;
  return { invocations, subrequests: invocations + promptTokens + Math.max(0, maxTokens - 1) };
}

/** The largest max_tokens (≥ 1) whose counts fit, or 0 when even one token does not. */
export function maxTokensThatFit(s: ShardShape, l: ShardLimits, promptTokens: number): number {
  const fits = (m: number) => {
    const c = requestCounts(s, promptTokens, m);
    return c.invocations <= l.invocations && c.subrequests <= l.subrequests;
  };
  if (!fits(1)) return 0;
  let lo = 1;
  let hi = 1;
  while (fits(hi * 2) && hi < 1 << 20) hi *= 2;
  hi *= 2;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export function shardAdmissionCheck(s: ShardShape, l: ShardLimits): (a: Admission) => AdmitResult {
  return (a) => {
    const c = requestCounts(s, a.promptTokens, a.maxTokens);
    if (c.invocations <= l.invocations && c.subrequests <= l.subrequests) return undefined;
    const fit = maxTokensThatFit(s, l, a.promptTokens);
    if (fit >= 1 && !a.maxTokensGiven) return { maxTokens: fit };
    const why =
      `this request could need ${c.subrequests} subrequests and ${c.invocations} Worker invocations on the sharded model ` +
      `(${s.shards} shards, ${s.transport} transport, ${a.promptTokens} prompt tokens, up to ${a.maxTokens} new tokens), ` +
      `more than the ${l.subrequests} subrequests and ${l.invocations} invocations a request may make here`;
    if (fit < 1) throw new ApiError(400, `${why}; shorten the prompt`, "invalid_request_error", "prompt", "subrequest_limit_exceeded");
    throw new ApiError(400, `${why}; set ${a.maxTokensParam} to at most ${fit}`, "invalid_request_error", a.maxTokensParam, "subrequest_limit_exceeded");
  };
}

export function parseShardLimits(vars: Record<string, unknown>): ShardLimits {
  const one = (name: string, def: number): number => {
    const v = vars[name];
    if (v === undefined || v === "") return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`var ${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };
  return { subrequests: one("SUBREQUEST_LIMIT", DEFAULT_SHARD_LIMITS.subrequests), invocations: one("SHARD_INVOCATION_LIMIT", DEFAULT_SHARD_LIMITS.invocations) };
}
