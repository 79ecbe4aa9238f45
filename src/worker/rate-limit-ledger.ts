/**
 * The limiter's side of a lease, as a pure function of its stored state, the call and the time
 * (the Durable Object in rate-limiter.ts only stores and serves it). One ledger per API key: a
 * requests bucket and a tokens bucket. An isolate calls when its lease cannot cover a request: it
 * hands back what it did not spend, the request is admitted or refused here (the authority), and
 * a new lease is taken out of the buckets for the isolate to spend without calling again.
 *
 * A lease is taken out of the bucket when granted, so nothing is ever admitted beyond the buckets;
 * the price is capacity parked in other isolates' leases. Each grant is at most half of what is
 * left, so leases shrink as the bucket empties and the last units go one request at a time.
 */
import { available, fullBucket, giveBack, msUntil, msUntilFull, resize, take, type Bucket } from "./token-bucket";

/** How long an isolate may spend a lease before it must come back (and return what is left). */
export const LEASE_MS = 10_000;

export interface LeaseLimits {
  rpm?: number;
  tpm?: number;
  slice: number;
}

export interface LeaseCall {
  limits: LeaseLimits;
  /** What the caller did not spend of earlier leases, and tokens refunded since (both ≥ 0). */
  returned: { requests: number; tokens: number };
  /** Tokens the asking request reserves; absent: the call only hands back. */
  need?: number;
}

/** One dimension as the client sees it: OpenAI's x-ratelimit-{limit,remaining,reset}-*. */
export interface DimensionStatus {
  limit: number;
  remaining: number;
  resetMs: number;
}

export interface LimitStatus {
  requests?: DimensionStatus;
  tokens?: DimensionStatus;
}

export type LeaseAnswer =
  | {
      ok: true;
      /** Beyond the asking request, for the caller to spend locally; null = that dimension is not limited. */
      grant: { requests: number | null; tokens: number | null };
      ttlMs: number;
      status: LimitStatus;
    }
  | {
      ok: false;
      /** The dimension that refused (requests first when both do). */
      dimension: "requests" | "tokens";
      /** Infinity (sent as null) when the request needs more tokens than the limit itself. */
      retryAfterMs: number | null;
      need: number;
      status: LimitStatus;
    };

export interface Ledger {
  requests?: Bucket;
  tokens?: Bucket;
}

function sync(b: Bucket | undefined, limit: number | undefined, now: number): Bucket | undefined {
  if (limit === undefined) return undefined;
  return b ? resize(b, limit, now) : fullBucket(limit, now);
}

function status(l: Ledger, now: number): LimitStatus {
  const dim = (b: Bucket | undefined) => b && { limit: b.capacity, remaining: available(b, now), resetMs: msUntilFull(b, now) };
  return { requests: dim(l.requests), tokens: dim(l.tokens) };
}

/** Beyond the asking request: a slice of the limit, never more than half of what is left. */
function leaseFrom(b: Bucket | undefined, slice: number, now: number): { bucket: Bucket | undefined; granted: number | null } {
  if (!b) return { bucket: undefined, granted: null };
  const n = Math.min(Math.floor(b.capacity * slice), Math.floor(available(b, now) / 2));
  return n > 0 ? { bucket: take(b, n, now) ?? b, granted: n } : { bucket: b, granted: 0 };
}

export function lease(prev: Ledger | undefined, call: LeaseCall, now: number): { ledger: Ledger; answer: LeaseAnswer } {
  let requests = sync(prev?.requests, call.limits.rpm, now);
  let tokens = sync(prev?.tokens, call.limits.tpm, now);
  if (requests) requests = giveBack(requests, call.returned.requests, now);
  if (tokens) tokens = giveBack(tokens, call.returned.tokens, now);
  if (call.need === undefined) {
    const ledger = { requests, tokens };
    return { ledger, answer: { ok: true, grant: { requests: 0, tokens: 0 }, ttlMs: 0, status: status(ledger, now) } };
  }
  const need = call.need;
  const afterRequest = requests && take(requests, 1, now);
  const afterTokens = tokens && take(tokens, need, now);
  if ((requests && !afterRequest) || (tokens && !afterTokens)) {
    const ledger = { requests, tokens };
    const dimension = requests && !afterRequest ? "requests" : "tokens";
    const wait = Math.max(requests ? msUntil(requests, 1, now) : 0, tokens ? msUntil(tokens, need, now) : 0);
    return { ledger, answer: { ok: false, dimension, retryAfterMs: Number.isFinite(wait) ? wait : null, need, status: status(ledger, now) } };
  }
  const r = leaseFrom(afterRequest, call.limits.slice, now);
  const t = leaseFrom(afterTokens, call.limits.slice, now);
  const ledger = { requests: r.bucket, tokens: t.bucket };
  // Slice 0 asks for exactness: no lease, so refunds too go straight back here.
  const ttlMs = call.limits.slice > 0 ? LEASE_MS : 0;
  return { ledger, answer: { ok: true, grant: { requests: r.granted, tokens: t.granted }, ttlMs, status: status(ledger, now) } };
}
