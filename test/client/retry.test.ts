/** The retry policy on its own: which failures are retried, and how long the client waits. */
import { describe, expect, it } from "vitest";
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, TruncatedStreamError } from "../../src/client/index";
import { isRetryable, retryDelayMs, serverRetryDelayMs } from "../../src/client/retry";

const err = (status: number, headers: Record<string, string> = {}) => new APIError(status, { error: { message: "x", type: "t", param: null, code: null } }, new Headers(headers));

describe("retry policy", () => {
  it("retries 408/409/429/5xx and connection failures, nothing else", () => {
    for (const s of [408, 409, 429, 500, 502, 503, 504]) expect(isRetryable(err(s)), String(s)).toBe(true);
    for (const s of [400, 401, 403, 404, 413, 422]) expect(isRetryable(err(s)), String(s)).toBe(false);
    expect(isRetryable(new APIConnectionError())).toBe(true);
    expect(isRetryable(new APIConnectionTimeoutError(10))).toBe(true);
    expect(isRetryable(new APIUserAbortError())).toBe(false);
    expect(isRetryable(new TruncatedStreamError("", 1))).toBe(false);
    // A mid-stream error event (no status) is the server's considered answer.
    expect(isRetryable(new APIError(undefined, { error: { message: "boom" } }, new Headers()))).toBe(false);
  });

  it("lets x-should-retry override the status", () => {
    expect(isRetryable(err(503, { "x-should-retry": "false" }))).toBe(false);
    expect(isRetryable(err(400, { "x-should-retry": "true" }))).toBe(true);
  });

  it("reads retry-after-ms, retry-after seconds and retry-after HTTP dates", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(serverRetryDelayMs(new Headers({ "retry-after-ms": "250" }), now)).toBe(250);
    expect(serverRetryDelayMs(new Headers({ "retry-after-ms": "250", "retry-after": "9" }), now)).toBe(250);
    expect(serverRetryDelayMs(new Headers({ "retry-after": "2" }), now)).toBe(2000);
    expect(serverRetryDelayMs(new Headers({ "retry-after": "1.5" }), now)).toBe(1500);
    expect(serverRetryDelayMs(new Headers({ "retry-after": "Thu, 01 Jan 2026 00:00:03 GMT" }), now)).toBe(3000);
    expect(serverRetryDelayMs(new Headers({ "retry-after": "Wed, 31 Dec 2025 23:59:00 GMT" }), now)).toBe(0);
    expect(serverRetryDelayMs(new Headers({ "retry-after": "soon" }), now)).toBeUndefined();
    expect(serverRetryDelayMs(new Headers(), now)).toBeUndefined();
  });

  it("honours a sensible server delay, else backs off exponentially with jitter below the cap", () => {
    expect(retryDelayMs(err(429, { "retry-after": "3" }), 0)).toBe(3000);
    expect(retryDelayMs(err(429, { "retry-after": "0" }), 5)).toBe(0);
    // No jitter (random 0): 500, 1000, 2000, … capped at 8000.
    const noJitter = [0, 1, 2, 3, 4, 5].map((n) => retryDelayMs(err(503), n, {}, 0, () => 0));
    expect(noJitter).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    // Full jitter takes off at most a quarter.
    expect(retryDelayMs(err(503), 1, {}, 0, () => 1)).toBe(750);
    // A server asking for more than a minute is not believed.
    expect(retryDelayMs(err(503, { "retry-after": "3600" }), 0, { initialRetryDelayMs: 100 }, 0, () => 0)).toBe(100);
    expect(retryDelayMs(new APIConnectionError(), 2, { initialRetryDelayMs: 10, maxRetryDelayMs: 30 }, 0, () => 0)).toBe(30);
  });

  it("APIError carries the server's body: nested (OpenAI, vLLM) or flat (old vLLM)", () => {
    const nested = new APIError(429, { error: { message: "queue full", type: "rate_limit_error", param: null, code: "queue_full" } }, new Headers({ "retry-after": "1" }), "req-1");
    expect(nested).toMatchObject({ status: 429, message: "429 queue full", type: "rate_limit_error", code: "queue_full", requestId: "req-1" });
    expect(nested.headers?.get("retry-after")).toBe("1");
    const flat = new APIError(400, { object: "error", message: "bad", type: "BadRequestError", param: null, code: 400 }, new Headers());
    expect(flat).toMatchObject({ message: "400 bad", type: "BadRequestError", code: 400 });
    const text = new APIError(502, "<html>Bad gateway</html>", new Headers());
    expect(text.message).toBe("502 <html>Bad gateway</html>");
    expect(text.type).toBeNull();
  });
});
