/**
 * HTTP for the client: one attempt is one fetch (plus whatever the caller reads before it counts as
 * answered); `withRetries` repeats attempts that failed in a retryable way, and only those. A caller
 * streaming tokens ends the retry phase when its first event arrives, so nothing already shown to a
 * user is ever sent twice.
 */
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, EdgelmError } from "./errors";
import { isRetryable, retryDelayMs, type BackoffOptions } from "./retry";
import { childController, sleep, Watchdog } from "./signals";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface RetryInfo {
  /** The attempt that failed, 1-based. */
  attempt: number;
  /** How long the client waits before the next one. */
  delayMs: number;
  error: unknown;
}

export interface TransportOptions extends BackoffOptions {
  baseURL: string;
  apiKey?: string;
  fetch: FetchLike;
  maxRetries: number;
  timeoutMs?: number;
  headers?: HeadersInit;
  /** Told before each wait for a retry (logging, metrics, tests). */
  onRetry?: (info: RetryInfo) => void;
}

/** One attempt's cancellation: its own controller (a child of the call's), and the no-data watchdog. */
export interface Attempt {
  number: number;
  controller: AbortController;
  watchdog: Watchdog;
  /** Unhooks from the call's signal and stops the watchdog. */
  release(): void;
}

/**
 * `http://host:8787` and `http://host:8787/v1` both work: OpenAI clients put `/v1` in the base URL,
 * people pointing a CLI at a server usually don't.
 */
export function endpointURL(baseURL: string, path: string): string {
  const base = baseURL.replace(/\/+$/, "");
  return /\/v\d+$/.test(base) ? `${base}${path}` : `${base}/v1${path}`;
}

export function requestHeaders(opts: TransportOptions, accept: string): Headers {
  const h = new Headers(opts.headers);
  if (!h.has("content-type")) h.set("content-type", "application/json");
  if (!h.has("accept")) h.set("accept", accept);
  if (opts.apiKey && !h.has("authorization")) h.set("authorization", `Bearer ${opts.apiKey}`);
  return h;
}

/** One fetch: the Response when 2xx, else an APIError carrying the server's body, status and headers. */
export async function sendOnce(opts: TransportOptions, url: string, init: { method: string; headers: Headers; body?: string }, signal: AbortSignal): Promise<Response> {
  const res = await opts.fetch(url, { method: init.method, headers: init.headers, body: init.body, signal });
  if (res.ok) return res;
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's HTML page, say): the text itself is the best description there is.
  }
  throw new APIError(res.status, body, res.headers, res.headers.get("x-request-id"));
}

/**
 * Whatever an attempt threw, as one of the client's errors: the caller's abort wins, then the
 * watchdog, then server and client errors as they are; anything else is the runtime's network error.
 */
export function classify(err: unknown, callSignal: AbortSignal, attempt: Attempt, timeoutMs: number | undefined): EdgelmError {
  if (callSignal.aborted) return err instanceof APIUserAbortError ? err : new APIUserAbortError(undefined, { cause: callSignal.reason });
  if (attempt.watchdog.fired) return new APIConnectionTimeoutError(timeoutMs ?? 0);
  if (err instanceof EdgelmError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return new APIConnectionError(`connection error (${msg}${cause})`, { cause: err });
}

/**
 * Runs `run` until it succeeds, fails for good, runs out of retries, or the caller aborts (also
 * while waiting). On success the attempt's controller stays live and belongs to the result; the
 * caller must `release()` it when done.
 */
export async function withRetries<T>(opts: TransportOptions, callSignal: AbortSignal, run: (attempt: Attempt) => Promise<T>): Promise<{ value: T; attempt: Attempt }> {
  for (let n = 1; ; n++) {
    const { controller, dispose } = childController(callSignal);
    const watchdog = new Watchdog(controller, opts.timeoutMs);
    const attempt: Attempt = {
      number: n,
      controller,
      watchdog,
      release() {
        watchdog.stop();
        dispose();
      },
    };
    watchdog.arm();
    try {
      return { value: await run(attempt), attempt };
    } catch (raw) {
      attempt.release();
      // Drop whatever the failed attempt left open (a half-read body).
      controller.abort();
      const err = classify(raw, callSignal, attempt, opts.timeoutMs);
      if (n > opts.maxRetries || !isRetryable(err)) throw err;
      const delayMs = retryDelayMs(err, n - 1, opts);
      opts.onRetry?.({ attempt: n, delayMs, error: err });
      await sleep(delayMs, callSignal);
    }
  }
}
