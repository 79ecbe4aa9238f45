/**
 * What the client throws. Every error is an `EdgelmError`, so a caller can tell client failures from
 * its own bugs; the subclasses say whether the server answered (APIError), the network failed
 * (APIConnectionError), the stream broke off (TruncatedStreamError) or the caller cancelled
 * (APIUserAbortError).
 */

export class EdgelmError extends Error {
  override name = "EdgelmError";
}

/** The server's `{"error":{…}}` object as OpenAI, vLLM and edgelm send it (vLLM's `code` is a number). */
export interface ErrorObject {
  message: string;
  type?: string | null;
  param?: string | null;
  code?: string | number | null;
  [extra: string]: unknown;
}

/**
 * The server refused or failed the request: an HTTP error status, or an `{"error":…}` event in the
 * middle of a stream (then `status` is undefined: the HTTP status was already 200).
 */
export class APIError extends EdgelmError {
  override name = "APIError";
  /** The parsed body (JSON, else its text), exactly as the server sent it. */
  readonly body: unknown;
  readonly error: ErrorObject | undefined;
  readonly type: string | null;
  readonly param: string | null;
  readonly code: string | number | null;

  constructor(
    readonly status: number | undefined,
    body: unknown,
    readonly headers: Headers | undefined,
    readonly requestId: string | null = null,
  ) {
    const error = errorObjectOf(body);
    const text = error?.message ?? (typeof body === "string" && body.trim() !== "" ? body.trim().slice(0, 500) : "(no error body)");
    super(status === undefined ? `stream error: ${text}` : `${status} ${text}`);
    this.body = body;
    this.error = error;
    this.type = error?.type ?? null;
    this.param = error?.param ?? null;
    this.code = error?.code ?? null;
  }
}

/** Nested `{error:{message,…}}` (OpenAI, vLLM ≥ 0.10.1) or flat `{message,…}` (older vLLM). */
function errorObjectOf(body: unknown): ErrorObject | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const b = body as Record<string, unknown>;
  const inner = typeof b.error === "object" && b.error !== null ? (b.error as Record<string, unknown>) : typeof b.error === "string" ? { message: b.error } : b;
  if (typeof inner.message !== "string") return undefined;
  return inner as ErrorObject;
}

/** No HTTP answer: connection refused or reset, DNS, TLS… (`cause` holds the runtime's error). */
export class APIConnectionError extends EdgelmError {
  override name = "APIConnectionError";
  constructor(message = "connection error", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Nothing arrived within `timeoutMs` (before the first event, or between two events). */
export class APIConnectionTimeoutError extends APIConnectionError {
  override name = "APIConnectionTimeoutError";
  constructor(timeoutMs: number) {
    super(`no data from the server for ${timeoutMs} ms`);
  }
}

/**
 * The caller aborted (its AbortSignal, `stream.abort()`, or leaving the loop early). Named
 * "AbortError" like fetch's own, so `err.name === "AbortError"` checks keep working.
 */
export class APIUserAbortError extends EdgelmError {
  override name = "AbortError";
  constructor(message = "request aborted by the caller", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The stream ended, or broke off, without `[DONE]` and without a finish_reason: the text so far is
 * not the whole answer, and the client must not pass it off as one. Never retried (tokens had
 * already been delivered); `cause` is the network error when there was one.
 */
export class TruncatedStreamError extends EdgelmError {
  override name = "TruncatedStreamError";
  constructor(
    readonly partialText: string,
    readonly chunks: number,
    options?: { cause?: unknown },
  ) {
    const why = options?.cause instanceof Error ? ` (${options.cause.message})` : "";
    super(`the stream ended after ${chunks} chunk(s) without [DONE] or a finish_reason${why}`, options);
  }
}
