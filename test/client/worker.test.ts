/**
 * The client against the Cloudflare Worker (src/worker.ts) in real workerd, over a real socket,
 * using test/worker/harness.ts: streaming with route and request-id headers, chat, abort, a real
 * 429 from the Worker's queue retried after its retry-after, error bodies (401, 400), and — through
 * the fault proxy in front of it — held-back delivery and truncation.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { APIError, APIUserAbortError, TruncatedStreamError, createClient, type RetryInfo } from "../../src/client/index";
import { requestLines, startWorker, testModelPath, type WorkerUnderTest, waitHealthy } from "../worker/harness";
import { gate, passThrough, startFaultProxy, type FaultProxy } from "./harness";

const KEY = "sk-edgelm-client-test-0001";
const VARS = {
  MODEL_KEY: "models/tiny-q4_0.gguf",
  MODEL_ID: "edgelm-tiny",
  CHAT_TEMPLATE: "zephyr",
  // No waiting room: a second request while one generates gets 429 with retry-after at once.
  QUEUE_DEPTH: "0",
  // One generation at a time, so a second request finds the engine busy.
  MAX_BATCH: "1",
  LOAD_WAIT_MS: "60000",
  CPU_BUDGET_MS: "30000",
  PREFILL_TOKENS_PER_S: "1000000",
  DECODE_TOKENS_PER_S: "100",
  PREFILL_CHUNK_TOKENS: "8",
  API_KEYS: JSON.stringify({ [KEY]: "free" }),
  // Through Miniflare a disconnect may only be noticed as a reader that stopped (test/worker/disconnect.test.ts).
  STREAM_STALL_MS: "1000",
};

let w: WorkerUnderTest;
let proxy: FaultProxy;

beforeAll(async () => {
  w = await startWorker({ vars: VARS, r2Model: await testModelPath() });
  proxy = await startFaultProxy(w.url);
  await waitHealthy(w);
}, 120_000);
afterAll(async () => {
  await proxy?.close();
  await w?.close();
});

const client = (extra: Partial<Parameters<typeof createClient>[0]> = {}) => createClient({ baseURL: w.url, apiKey: KEY, maxRetries: 0, ...extra });

describe("edgelm/client against the Worker in workerd", { timeout: 60_000 }, () => {
  it("streams a completion with route and request id; the text matches the non-streamed one", async () => {
    const req = { prompt: "Once upon a time", max_tokens: 8, seed: 7 };
    const stream = client().complete(req);
    let chunks = 0;
    for await (const _ of stream) chunks++;
    expect(chunks).toBeGreaterThan(8);
    expect(stream.route).toBe("edge");
    expect(stream.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(stream.finishReason).toBe("length");
    expect(stream.usage?.completion_tokens).toBe(8);
    const whole = await client().completion(req);
    expect(whole.text).toBe(stream.textSoFar);
    expect(whole.route).toBe("edge");
  });

  it("streams a chat", async () => {
    const s = client().chat({ messages: [{ role: "user", content: "Hi there!" }], max_tokens: 5, temperature: 0 });
    const chunks = [];
    for await (const c of s) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    const whole = await client().chatCompletion({ messages: [{ role: "user", content: "Hi there!" }], max_tokens: 5, temperature: 0 });
    expect(s.textSoFar).toBe(whole.text);
    expect(s.finishReason).toBe("length");
  });

  it("delivers each chunk as it comes (the proxy holds the rest until the first is consumed)", async () => {
    const release = gate();
    let sent = 0;
    proxy.handle(passThrough({ onEvent: async (i) => (i === 1 && (await release.promise), (sent = i + 1), "send" as const) }));
    const s = createClient({ baseURL: proxy.url, apiKey: KEY }).complete({ prompt: "Hello", max_tokens: 6, temperature: 0 });
    let n = 0;
    for await (const _ of s) {
      if (n++ === 0) {
        expect(sent).toBe(1);
        release.open();
      }
    }
    expect(s.finishReason).toBe("length");
  });

  it("a real 429 from the busy Worker is retried after its retry-after, and succeeds once the engine is free", async () => {
    const health = async () => ((await (await fetch(`${w.url}/health`)).json()) as { queue: { running: boolean } }).queue;
    const a = client().complete({ prompt: "x", max_tokens: 150, temperature: 0 });
    const it = a[Symbol.asyncIterator]();
    await it.next();
    // A is generating (and the queue has no waiting room), so B's first attempt must be refused.
    expect((await health()).running).toBe(true);
    const drainA = (async () => {
      for (let r = await it.next(); !r.done; r = await it.next());
    })();
    const retries: RetryInfo[] = [];
    const b = client({ maxRetries: 30, onRetry: (r: RetryInfo) => retries.push(r) }).complete({ prompt: "Hello", max_tokens: 4, temperature: 0 });
    expect((await b.text()).length).toBeGreaterThan(0);
    expect(b.usage?.completion_tokens).toBe(4);
    expect(b.attempts).toBe(retries.length + 1);
    const e = retries[0].error as APIError;
    expect(e).toBeInstanceOf(APIError);
    expect(e).toMatchObject({ status: 429, code: "queue_full" });
    expect(retries[0].delayMs).toBe(Number(e.headers?.get("retry-after")) * 1000);
    await drainA;
    expect(a.finishReason).toBe("length");
  });

  it("aborting mid-stream ends the iteration with APIUserAbortError; the Worker keeps serving", async () => {
    const ac = new AbortController();
    const s = client().complete({ prompt: "x", max_tokens: 100, temperature: 0 }, { signal: ac.signal });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of s) if (++n === 1) ac.abort();
      })(),
    ).rejects.toBeInstanceOf(APIUserAbortError);
    expect(n).toBe(1);
    expect(s.finishReason).toBeNull();
    // Retries ride out the engine still being busy with the aborted request until the Worker lets it go.
    const next = await client({ maxRetries: 30 }).completion({ prompt: "ok", max_tokens: 2 });
    expect(next.usage?.completion_tokens).toBe(2);
  });

  it("an abort while the consumer is not reading closes the connection, and the Worker stops generating", async () => {
    const health = async () => ((await (await fetch(`${w.url}/health`)).json()) as { queue: { running: boolean } }).queue;
    const ac = new AbortController();
    const s = client().complete({ prompt: "x", max_tokens: 2000, temperature: 0 }, { signal: ac.signal });
    const it = s[Symbol.asyncIterator]();
    await it.next();
    expect((await health()).running).toBe(true);
    ac.abort();
    // 2000 tokens would hold the engine for many seconds; the disconnect frees it at the next token.
    await vi.waitFor(async () => expect((await health()).running).toBe(false), { timeout: 20_000, interval: 50 });
    expect(requestLines(w.logs()).some((l) => l.outcome === "aborted" && l.prefilled_tokens === l.prompt_tokens)).toBe(true);
    await expect(it.next()).rejects.toBeInstanceOf(APIUserAbortError);
  });

  it("surfaces the Worker's error bodies (401 without a valid key, 400 for an unknown field) without retrying", async () => {
    const retries: RetryInfo[] = [];
    const noKey = await createClient({ baseURL: w.url, onRetry: (r) => retries.push(r) }).complete({ prompt: "a" }).text().catch((e: unknown) => e);
    expect(noKey).toBeInstanceOf(APIError);
    expect(noKey).toMatchObject({ status: 401, code: "missing_api_key" });
    const bad = await client({ maxRetries: 2, onRetry: (r: RetryInfo) => retries.push(r) }).complete({ prompt: "a", bogus: 1 } as never).text().catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 400, type: "invalid_request_error", param: "bogus" });
    expect(retries).toEqual([]);
  });

  it("detects a truncated stream from the Worker (cut by the proxy)", async () => {
    proxy.handle(passThrough({ onEvent: (i) => (i < 3 ? "send" : "end") }));
    const err = await createClient({ baseURL: proxy.url, apiKey: KEY }).complete({ prompt: "Hello", max_tokens: 6 }).text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedStreamError);
  });
});
