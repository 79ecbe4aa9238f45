/**
 * What a client sees of its rate limits: OpenAI's x-ratelimit-* headers on every limited
 * generation response, and on a refusal a 429 `rate_limit_exceeded` (type `rate_limit_error`)
 * with `retry-after`, distinct from the queue's `queue_full`. Messages name the tier, never the key.
 */
import { ApiError } from "../api/errors";
import type { DimensionStatus, LeaseAnswer, LimitStatus } from "./rate-limit-ledger";
import { WINDOW_MS } from "./token-bucket";

/** Durations as OpenAI writes them: "20ms", "1s", "6m0s", "1.5s". */
export function formatDuration(ms: number): string {
  const t = Math.max(0, Math.ceil(ms));
  if (t < 1000) return `${t}ms`;
  const minutes = Math.floor(t / 60_000);
  const seconds = Number(((t % 60_000) / 1000).toFixed(3));
  return minutes > 0 ? `${minutes}m${seconds}s` : `${seconds}s`;
}

export function rateLimitHeaders(s: LimitStatus): Headers {
  const h = new Headers();
  const put = (suffix: string, d: DimensionStatus | undefined) => {
    if (!d) return;
    h.set(`x-ratelimit-limit-${suffix}`, String(d.limit));
    h.set(`x-ratelimit-remaining-${suffix}`, String(Math.max(0, d.remaining)));
    h.set(`x-ratelimit-reset-${suffix}`, formatDuration(d.resetMs));
  };
  put("requests", s.requests);
  put("tokens", s.tokens);
  return h;
}

export function rateLimitError(refusal: Extract<LeaseAnswer, { ok: false }>, tier: string): ApiError {
  const { dimension, need, status } = refusal;
  const d = status[dimension];
  const limit = d?.limit ?? 0;
  const remaining = Math.max(0, d?.remaining ?? 0);
  if (refusal.retryAfterMs === null) {
    // Waiting never helps: the reservation is larger than the whole bucket.
    const msg = `this request reserves ${need} tokens (prompt + max_tokens), more than tier ${tier}'s limit of ${limit} tokens per minute; lower max_tokens or shorten the prompt`;
    return new ApiError(429, msg, "rate_limit_error", "max_tokens", "rate_limit_exceeded", Math.ceil(WINDOW_MS / 1000));
  }
  const retry = Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
  const what =
    dimension === "requests"
      ? `${limit} requests per minute, ${remaining} left`
      : `${limit} tokens per minute, ${remaining} left, and this request reserves ${need} (prompt + max_tokens)`;
  return new ApiError(429, `rate limit reached for tier ${tier}: ${what}; retry in ${retry} s`, "rate_limit_error", null, "rate_limit_exceeded", retry);
}
