/**
 * When and how long to wait before trying again, as openai-node does it: the server's
 * `x-should-retry` wins; otherwise 408, 409, 429 and 5xx and connection failures are retried. The
 * delay is the server's `retry-after-ms` / `retry-after` (seconds or an HTTP date) when it is
 * sensible, else exponential backoff with jitter so that many clients refused at once do not come
 * back at once.
 */
import { APIConnectionError, APIError } from "./errors";

export interface BackoffOptions {
  /** First backoff step; doubled per retry. Default 500 ms. */
  initialRetryDelayMs?: number;
  /** Backoff ceiling. Default 8 s. */
  maxRetryDelayMs?: number;
}

/** A server asking for more than this is ignored in favour of the backoff (openai-node does the same). */
const MAX_SERVER_DELAY_MS = 60_000;

export function isRetryable(err: unknown): boolean {
  if (err instanceof APIConnectionError) return true;
  if (!(err instanceof APIError) || err.status === undefined) return false;
  const hint = err.headers?.get("x-should-retry");
  if (hint === "true") return true;
  if (hint === "false") return false;
  const s = err.status;
  return s === 408 || s === 409 || s === 429 || s >= 500;
}

/** The delay the server asked for, in ms, or undefined if it asked for none (or nonsense). */
export function serverRetryDelayMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers.get("retry-after");
  if (ra === null || ra.trim() === "") return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(ra)) return Number(ra) * 1000;
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * How long to wait before retry number `retry` (0 for the first retry) after `err`.
 * `random` is injectable so tests can pin the jitter.
 */
export function retryDelayMs(err: unknown, retry: number, opts: BackoffOptions = {}, now = Date.now(), random = Math.random): number {
  const headers = err instanceof APIError ? err.headers : undefined;
  const asked = serverRetryDelayMs(headers, now);
  if (asked !== undefined && asked <= MAX_SERVER_DELAY_MS) return asked;
  const initial = opts.initialRetryDelayMs ?? 500;
  const max = opts.maxRetryDelayMs ?? 8000;
  const base = Math.min(initial * 2 ** retry, max);
  // Up to 25% less than the base: spreads out clients without ever exceeding the ceiling.
  return base * (1 - random() * 0.25);
}
