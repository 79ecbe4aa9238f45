/**
 * Faults injected between the client and the real server: refusals with retry-after, dropped
 * connections before and after the first token, truncated streams, error events mid-stream, stalls
 * and a closed port. The proxy counts attempts, so "retried" and "not retried" are facts, not timings.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/node/server";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  TruncatedStreamError,
  createClient,
  type ClientOptions,
  type RetryInfo,
} from "../../src/client/index";
import { cannedSSE, closedPort, passThrough, refuse, startFaultProxy, startTinyServer, type FaultProxy } from "./harness";

let server: RunningServer;
let proxy: FaultProxy;
let retries: RetryInfo[];

beforeAll(async () => {
  server = await startTinyServer();
  proxy = await startFaultProxy(server.url);
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});
beforeEach(() => {
  proxy.seen.length = 0;
  retries = [];
});

const client = (opts: Partial<ClientOptions> = {}) => createClient({ baseURL: proxy.url, onRetry: (i) => retries.push(i), initialRetryDelayMs: 1, ...opts });
const QUEUE_FULL = { message: "the queue is full", type: "rate_limit_error", param: null, code: "queue_full" };
const req = { prompt: "Hello", max_tokens: 6, temperature: 0 };
const wantText = async () => (await createClient({ baseURL: server.url }).completion(req)).text;

describe("faults between client and server", { timeout: 60_000 }, () => {
  it("retries 429 (retry-after: 0) twice, then streams the answer", async () => {
    proxy.handle((ctx) => (ctx.attempt <= 2 ? refuse(ctx.res, 429, { "retry-after": "0" }, QUEUE_FULL) : passThrough()(ctx)));
    const stream = client({ maxRetries: 2 }).complete(req);
    expect(await stream.text()).toBe(await wantText());
    expect(proxy.seen.filter((s) => s.path === "/v1/completions")).toHaveLength(3);
    expect(stream.attempts).toBe(3);
    expect(retries.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 0],
      [2, 0],
    ]);
    expect((retries[0].error as APIError).status).toBe(429);
  });

  it("honours retry-after-ms on a 503, and an HTTP-date retry-after", async () => {
    const soon = new Date(Date.now() - 1000).toUTCString(); // already past: wait 0
    proxy.handle((ctx) =>
      ctx.attempt === 1
        ? refuse(ctx.res, 503, { "retry-after-ms": "7", "retry-after": "30" }, { message: "loading", type: "service_unavailable_error", param: null, code: "model_loading" })
        : ctx.attempt === 2
          ? refuse(ctx.res, 503, { "retry-after": soon }, { message: "loading", type: "service_unavailable_error", param: null, code: "model_loading" })
          : passThrough()(ctx),
    );
    const stream = client().complete(req);
    expect(await stream.text()).toBe(await wantText());
    expect(retries.map((r) => r.delayMs)).toEqual([7, 0]);
  });

  it("gives up after maxRetries with the server's error body, status and headers", async () => {
    proxy.handle(({ res }) => refuse(res, 429, { "retry-after": "0", "x-request-id": "req-42" }, QUEUE_FULL));
    const err = await client({ maxRetries: 3 }).complete(req).text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    const e = err as APIError;
    expect(e).toMatchObject({ status: 429, type: "rate_limit_error", code: "queue_full", param: null, requestId: "req-42", message: "429 the queue is full" });
    expect(e.body).toEqual({ error: QUEUE_FULL });
    expect(e.headers?.get("retry-after")).toBe("0");
    expect(proxy.attempts).toBe(4);
  });

  it("does not retry the server's 400s, and surfaces its body (param, code, x-should-retry)", async () => {
    proxy.handle(passThrough());
    const err = await client().complete({ prompt: "x", n: 2 } as never).text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect(err).toMatchObject({ status: 400, type: "invalid_request_error", param: "n", code: "unsupported_parameter" });
    expect((err as APIError).headers?.get("x-should-retry")).toBe("false");
    const nf = await client().completion({ prompt: "x", model: "nope" }).catch((e: unknown) => e);
    expect(nf).toMatchObject({ status: 404, type: "not_found_error", param: "model" });
    expect(proxy.attempts).toBe(2);
    expect(retries).toEqual([]);
  });

  it("x-should-retry: false stops a retry the status alone would allow", async () => {
    proxy.handle(({ res }) => refuse(res, 503, { "x-should-retry": "false" }, { message: "down for good", type: "server_error", param: null, code: null }));
    await expect(client().complete(req).text()).rejects.toMatchObject({ status: 503 });
    expect(proxy.attempts).toBe(1);
  });

  it("retries a connection dropped before the first token", async () => {
    proxy.handle((ctx) => (ctx.attempt === 1 ? void ctx.req.socket.destroy() : passThrough()(ctx)));
    const stream = client().complete(req);
    expect(await stream.text()).toBe(await wantText());
    expect(proxy.attempts).toBe(2);
    expect(retries[0].error).toBeInstanceOf(APIConnectionError);
  });

  it("retries a 200 that closes before its first event", async () => {
    proxy.handle((ctx) => (ctx.attempt === 1 ? void (ctx.res.writeHead(200, { "content-type": "text/event-stream" }), ctx.res.end()) : passThrough()(ctx)));
    expect(await client().complete(req).text()).toBe(await wantText());
    expect(proxy.attempts).toBe(2);
  });

  it("never retries once a token was delivered: a cut connection is a TruncatedStreamError", async () => {
    proxy.handle(passThrough({ onEvent: (i) => (i < 2 ? "send" : "destroy") }));
    const stream = client({ maxRetries: 5 }).complete(req);
    const got: string[] = [];
    const err = await (async () => {
      for await (const c of stream) got.push(c.choices[0].text);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedStreamError);
    const t = err as TruncatedStreamError;
    expect(t.cause).toBeInstanceOf(APIConnectionError);
    expect(t.chunks).toBe(2);
    expect(t.partialText).toBe(got.join(""));
    expect(got).toHaveLength(2);
    expect(proxy.attempts).toBe(1);
    expect(retries).toEqual([]);
  });

  it("a stream that ends cleanly without [DONE] and without finish_reason is truncated, not a success", async () => {
    proxy.handle(passThrough({ onEvent: (_i, raw) => (raw.includes('"finish_reason":null') ? "send" : "end") }));
    const stream = client().complete(req);
    const err = await stream.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedStreamError);
    expect((err as TruncatedStreamError).partialText).toBe(await wantText());
    expect(stream.finishReason).toBeNull();
    expect(proxy.attempts).toBe(1);
  });

  it("a finish_reason without [DONE] is a complete answer; [DONE] alone is too", async () => {
    proxy.handle(passThrough({ onEvent: (_i, raw) => (raw.startsWith("data: [DONE]") ? "skip" : "send") }));
    const s1 = client().complete(req);
    expect(await s1.text()).toBe(await wantText());
    expect(s1.finishReason).toBe("length");
    proxy.handle(({ res }) => cannedSSE(res, ["a", "b"], { finish: null }));
    const s2 = client().complete(req);
    expect(await s2.text()).toBe("ab");
    expect(s2.finishReason).toBeNull();
  });

  it("an error event mid-stream throws APIError with the server's body, keeping the text so far", async () => {
    const boom = { message: "the engine failed", type: "server_error", param: null, code: "engine_failure" };
    proxy.handle(
      passThrough({
        onEvent: (i, _raw, res) => {
          if (i < 2) return "send";
          res.write(`data: ${JSON.stringify({ error: boom })}\n\n`);
          return "end";
        },
      }),
    );
    const stream = client().complete(req);
    const err = await stream.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect(err).toMatchObject({ status: undefined, type: "server_error", code: "engine_failure", message: "stream error: the engine failed" });
    expect((err as APIError).body).toEqual({ error: boom });
    expect(stream.chunks).toBe(2);
    expect(stream.textSoFar.length).toBeGreaterThan(0);
    expect(proxy.attempts).toBe(1);
  });

  it("a slow first byte times out and is retried; a stall after the first token is truncation", async () => {
    // Attempt 1 never answers; attempt 2 answers at once (canned, so the model's speed doesn't matter).
    proxy.handle(({ attempt, res }) => (attempt === 1 ? undefined : cannedSSE(res, ["fast"])));
    const s = client({ timeoutMs: 300 }).complete(req);
    expect(await s.text()).toBe("fast");
    expect(retries[0].error).toBeInstanceOf(APIConnectionTimeoutError);
    expect(proxy.attempts).toBe(2);

    proxy.seen.length = 0;
    retries = [];
    proxy.handle(({ res }) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify({ id: "c", object: "text_completion", created: 1, model: "m", choices: [{ text: "first", index: 0, logprobs: null, finish_reason: null }] })}\n\n`);
      // …and nothing more, ever.
    });
    const stalled = client({ timeoutMs: 300 }).complete(req);
    const err = await stalled.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedStreamError);
    expect((err as TruncatedStreamError).cause).toBeInstanceOf(APIConnectionTimeoutError);
    expect(stalled.textSoFar).toBe("first");
    expect(proxy.attempts).toBe(1);
  });

  it("connection refused is retried, then reported as APIConnectionError", async () => {
    const port = await closedPort();
    const c = createClient({ baseURL: `http://127.0.0.1:${port}`, maxRetries: 2, initialRetryDelayMs: 1, onRetry: (i) => retries.push(i) });
    await expect(c.complete(req).text()).rejects.toBeInstanceOf(APIConnectionError);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
  });

  it("aborting while waiting to retry stops at once, without another attempt", async () => {
    proxy.handle(({ res }) => refuse(res, 429, { "retry-after": "30" }, QUEUE_FULL));
    const ac = new AbortController();
    const c = createClient({ baseURL: proxy.url, onRetry: (i) => (retries.push(i), ac.abort()) });
    await expect(c.complete(req, { signal: ac.signal }).text()).rejects.toBeInstanceOf(APIUserAbortError);
    expect(retries[0].delayMs).toBe(30_000);
    expect(proxy.attempts).toBe(1);
  });

  it("reports route and request id from the response headers, and sends the API key", async () => {
    proxy.handle(passThrough({ headers: { "x-edgelm-route": "origin", "x-request-id": "req-7" } }));
    const s = client({ apiKey: "sk-test", headers: { "x-extra": "1" } }).complete(req);
    await s.text();
    expect(s.route).toBe("origin");
    expect(s.requestId).toBe("req-7");
    expect(proxy.seen[0].headers.authorization).toBe("Bearer sk-test");
    expect(proxy.seen[0].headers["x-extra"]).toBe("1");
    expect(JSON.parse(proxy.seen[0].body)).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    const r = await client().chatCompletion({ messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expect(r).toMatchObject({ route: "origin", requestId: "req-7", finishReason: "length" });
  });
});
