/**
 * A token bucket as plain data (so a Durable Object can store it as is): it holds at most
 * `capacity`, refills at `capacity` per minute, and every operation takes the time it happens at,
 * so the math is tested with a hand-moved clock rather than by waiting.
 */

/** The refill period: limits are "per minute" (rpm, tpm). */
export const WINDOW_MS = 60_000;

export interface Bucket {
  capacity: number;
  /** What it held at `at` (ms); what it holds later follows from the refill rate. */
  level: number;
  at: number;
}

export function fullBucket(capacity: number, now: number): Bucket {
  return { capacity, level: capacity, at: now };
}

const ratePerMs = (b: Bucket) => b.capacity / WINDOW_MS;

/** The bucket brought forward to `now`; a clock that went backwards refills nothing. */
export function refill(b: Bucket, now: number): Bucket {
  if (now <= b.at) return b;
  return { capacity: b.capacity, level: Math.min(b.capacity, b.level + (now - b.at) * ratePerMs(b)), at: now };
}

/** A new limit keeps what is left, up to the new capacity: raising a limit does not hand out a fresh burst. */
export function resize(b: Bucket, capacity: number, now: number): Bucket {
  const r = refill(b, now);
  return { capacity, level: Math.min(capacity, r.level), at: r.at };
}

/** Takes `n` when that much is there (the new bucket), else undefined and nothing changes. */
export function take(b: Bucket, n: number, now: number): Bucket | undefined {
  const r = refill(b, now);
  return r.level >= n ? { ...r, level: r.level - n } : undefined;
}

/** Gives back `n` (a refund, an unspent lease); never above capacity, where it would be a burst nobody paid for. */
export function giveBack(b: Bucket, n: number, now: number): Bucket {
  const r = refill(b, now);
  return { ...r, level: Math.min(r.capacity, r.level + Math.max(0, n)) };
}

/** Whole units available at `now`. */
export function available(b: Bucket, now: number): number {
  return Math.floor(refill(b, now).level + 1e-9);
}

/** Milliseconds until `n` is available: 0 when it is, Infinity when the bucket can never hold it. */
export function msUntil(b: Bucket, n: number, now: number): number {
  if (n > b.capacity) return Infinity;
  const r = refill(b, now);
  return r.level >= n ? 0 : Math.ceil((n - r.level) / ratePerMs(r));
}

/** Milliseconds until the bucket is full again (OpenAI's "reset"). */
export function msUntilFull(b: Bucket, now: number): number {
  return msUntil(b, b.capacity, now);
}
