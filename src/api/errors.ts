/**
 * OpenAI-shaped errors: `{"error":{"message","type","param","code"}}` with the matching status.
 * Deterministic 4xx carry `x-should-retry: false` so OpenAI SDKs don't retry them; 429/503 carry
 * `retry-after` so they back off instead.
 */

const ERROR_TYPES = ["invalid_request_error", "not_found_error", "rate_limit_error", "server_error", "service_unavailable_error"] as const;
export type ErrorType = (typeof ERROR_TYPES)[number];

export function isErrorType(v: unknown): v is ErrorType {
  return ERROR_TYPES.some((t) => t === v);
}

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Seconds, for 429/503. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A 400 about one request field. */
export function invalid(param: string, message: string, code = "invalid_value"): ApiError {
  return new ApiError(400, message, "invalid_request_error", param, code);
}

/** Anything thrown becomes an ApiError; unexpected ones are 500 without internals beyond the message. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  // A generation stopped by its client: nobody reads this answer, but the status should say why (nginx's 499).
  if (err instanceof Error && err.name === "AbortError") return new ApiError(499, "request aborted by the client", "invalid_request_error", null, "aborted");
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(500, `internal error: ${message}`, "server_error", null, null);
}

export function errorResponse(err: ApiError, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json");
  if (err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 409 && err.status !== 429) h.set("x-should-retry", "false");
  if (err.retryAfter !== undefined) h.set("retry-after", String(err.retryAfter));
  return new Response(JSON.stringify(err.body()), { status: err.status, headers: h });
}
