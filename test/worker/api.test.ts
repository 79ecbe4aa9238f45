/**
 * The Worker in real workerd (Miniflare on a real socket), weights from local R2, driven by the
 * unmodified openai SDK and by raw fetch for the wire details. One isolate serves the whole file,
 * as one production isolate would serve many requests: every test also checks it keeps serving.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseSSE, requestLine, requestLines, startWorker, testModelPath, type WorkerUnderTest, waitHealthy } from "./harness";

const KEYS = { "sk-edgelm-test-free-0001": "free", "sk-edgelm-test-pro-00002": "pro" };
const KEY = "sk-edgelm-test-free-0001";
const MODEL = "edgelm-tiny";
// Budget: 0.8 × 30 s × 100 tok/s = 2400 new tokens fit (prefill is nearly free at 1e6 tok/s).
const VARS = {
  MODEL_KEY: "models/tiny-q4_0.gguf",
  MODEL_ID: MODEL,
  QUEUE_DEPTH: "1",
  // One generation at a time: these tests are about the queue in front of a single engine slot (batching.test.ts runs MAX_BATCH 4).
  MAX_BATCH: "1",
  LOAD_WAIT_MS: "60000",
  CPU_BUDGET_MS: "30000",
  PREFILL_TOKENS_PER_S: "1000000",
  DECODE_TOKENS_PER_S: "100",
  PREFILL_CHUNK_TOKENS: "8",
  CORS_ORIGINS: "https://app.example",
  API_KEYS: JSON.stringify(KEYS),
  // Miniflare's entry Worker often loses a client disconnect (disconnect.test.ts checks workerd's
  // own handling without it); here the stalled-reader fallback must free the engine, and soon.
  STREAM_STALL_MS: "1000",
};

let w: WorkerUnderTest;
let client: OpenAI;

beforeAll(async () => {
  w = await startWorker({ vars: VARS, r2Model: await testModelPath() });
  client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: KEY, maxRetries: 0 });
  await waitHealthy(w);
}, 120_000);

afterAll(async () => {
  await w?.close();
});

const health = async () => (await (await fetch(`${w.url}/health`)).json()) as any;

function post(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${w.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}`, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

/** The isolate still answers a small completion correctly. */
async function stillServes(): Promise<void> {
  const r = await client.completions.create({ model: MODEL, prompt: "ok", max_tokens: 2, temperature: 0 });
  expect(r.choices[0].finish_reason).toBe("length");
  expect(r.usage?.completion_tokens).toBe(2);
}

describe("Worker: OpenAI SDK against workerd", () => {
  it("serves the model from R2: /health reports it, the load was logged with progress", async () => {
    const h = await health();
    expect(h.engine).toMatch(/^wasm /);
    expect(h).toMatchObject({ status: "ok", model: MODEL, source: "r2", file: VARS.MODEL_KEY, synthetic: true, chat_template: "zephyr" });
    expect(w.logs()).toMatch(/loading models\/tiny-q4_0\.gguf: 100%/);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it("streams a completion: chunks of one id, finish_reason, usage with timing; route and request id headers", async () => {
    const { data: stream, response } = await client.completions
      .create({ model: MODEL, prompt: "Once upon a time", max_tokens: 12, seed: 7, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(response.headers.get("x-edgelm-route")).toBe("edge");
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.text)).join("");
    const finals = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finals).toHaveLength(1);
    expect(finals[0].choices[0].finish_reason).toBe("length");
    const usage = chunks.at(-1)!.usage as any;
    expect(usage).toMatchObject({ completion_tokens: 12, prompt_tokens: expect.any(Number) });
    expect(usage.prefill_ms).toBeGreaterThanOrEqual(0);
    expect(usage.decode_tokens_per_s).toBeGreaterThan(0);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);

    // Same seed, not streamed: the same text.
    const whole = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 12, seed: 7 });
    expect(whole.choices[0].text).toBe(text);
    expect(whole.object).toBe("text_completion");
  });

  it("streams a chat completion with the zephyr template", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Hi there!" }],
      max_tokens: 6,
      temperature: 0.7,
      top_p: 0.95,
      seed: 1,
      stream: true,
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].object).toBe("chat.completion.chunk");
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    expect(chunks.at(-1)!.choices[0].finish_reason).toMatch(/^(stop|length)$/);
    const whole = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hi there!" }], max_tokens: 6, temperature: 0.7, top_p: 0.95, seed: 1 });
    expect(whole.choices[0].message.content).toBe(chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""));
  });

  it("structured output on the edge: a streamed json_schema answer validates; a tool call streams in OpenAI's shape", async () => {
    const schema = { type: "object", properties: { city: { type: "string", maxLength: 8 }, temp: { type: "integer", minimum: -50, maximum: 50 } }, required: ["city", "temp"], additionalProperties: false };
    const stream = client.chat.completions.stream({ model: MODEL, messages: [{ role: "user", content: "Weather as JSON" }], seed: 3, max_tokens: 120, response_format: { type: "json_schema", json_schema: { name: "weather", schema } } });
    const answer = await stream.finalChatCompletion();
    expect(answer.choices[0].finish_reason).toBe("stop");
    const value = JSON.parse(answer.choices[0].message.content!);
    expect(Object.keys(value)).toEqual(["city", "temp"]);
    expect(Number.isInteger(value.temp) && value.temp >= -50 && value.temp <= 50).toBe(true);
    const tools = [{ type: "function" as const, function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string", maxLength: 6 } }, required: ["q"] } } }];
    const called = await client.chat.completions.stream({ model: MODEL, messages: [{ role: "user", content: "Look it up" }], seed: 2, max_tokens: 120, tools, tool_choice: "required" }).finalChatCompletion();
    expect(called.choices[0].finish_reason).toBe("tool_calls");
    const call = called.choices[0].message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("lookup");
    expect(typeof JSON.parse(call.function.arguments).q).toBe("string");
    await stillServes();
  });

  it("echoes a sane x-request-id and exposes it to allowed browser origins", async () => {
    const res = await post("/v1/completions", { prompt: "a", max_tokens: 1 }, { "x-request-id": "client-req-42", origin: "https://app.example" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("client-req-42");
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(res.headers.get("access-control-expose-headers")).toMatch(/x-request-id/);
    const pre = await fetch(`${w.url}/v1/completions`, { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "POST" } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-methods")).toMatch(/POST/);
    const evil = await post("/v1/completions", { prompt: "a", max_tokens: 1 }, { origin: "https://evil.example" });
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("Worker: auth", () => {
  it("401 without a key or with a wrong one; /health is open; keys never reach the logs", async () => {
    const none = await fetch(`${w.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"prompt":"a"}' });
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe("Bearer");
    expect((await none.json()).error).toMatchObject({ code: "missing_api_key", message: expect.stringMatching(/Authorization: Bearer/) });

    const wrong = await post("/v1/completions", { prompt: "a" }, { authorization: "Bearer sk-not-a-real-key-123" });
    expect(wrong.status).toBe(401);
    const body = await wrong.text();
    expect(JSON.parse(body).error.code).toBe("invalid_api_key");
    expect(body).not.toContain("sk-not-a-real-key-123");

    const sdk = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: "sk-wrong-key-4567", maxRetries: 0 });
    await expect(sdk.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect((await fetch(`${w.url}/health`)).status).toBe(200);
    // The playground page is open too: it asks for the key itself once the API answers 401.
    const page = await fetch(`${w.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toMatch(/<title>edgelm playground<\/title>/);

    const pro = await post("/v1/completions", { prompt: "a", max_tokens: 1 }, { authorization: "Bearer sk-edgelm-test-pro-00002" });
    expect(pro.status).toBe(200);
    await pro.text();
    const logs = w.logs();
    expect(requestLines(logs).some((l) => l.path === "/v1/completions" && l.status === 200 && l.tier === "pro")).toBe(true);
    for (const k of [...Object.keys(KEYS), "sk-not-a-real-key-123", "sk-wrong-key-4567"]) expect(logs).not.toContain(k);
  });
});

describe("Worker: bad input → 4xx with a clear message, and the isolate keeps serving", () => {
  const longIds = Array.from({ length: 4097 }, (_, i) => 1000 + i);
  const cases: [string, unknown, number, RegExp, string | null][] = [
    ["malformed JSON", '{"prompt": "a",', 400, /not valid JSON/, "body"],
    ["empty body", "", 400, /empty/, "body"],
    ["wrong type: prompt", { prompt: 42 }, 400, /prompt must be/, "prompt"],
    ["wrong type: temperature", { prompt: "a", temperature: "hot" }, 400, /temperature/, "temperature"],
    ["out of range: temperature", { prompt: "a", temperature: 3 }, 400, /temperature/, "temperature"],
    ["out of range: top_p", { prompt: "a", top_p: 0 }, 400, /top_p/, "top_p"],
    ["out of range: logprobs", { prompt: "a", logprobs: 6 }, 400, /logprobs/, "logprobs"],
    ["out of range: max_tokens 0", { prompt: "a", max_tokens: 0 }, 400, /max_tokens/, "max_tokens"],
    ["unknown model", { model: "gpt-4", prompt: "a" }, 404, /gpt-4.*does not exist/, "model"],
    ["empty prompt", { prompt: "" }, 400, /prompt is empty/, "prompt"],
    ["prompt longer than the context", { prompt: longIds, max_tokens: 1 }, 400, /maximum context length is 4096/, "max_tokens"],
    ["max_tokens beyond the context", { prompt: "a", max_tokens: 5000 }, 400, /maximum context length/, "max_tokens"],
    ["max_tokens beyond the CPU budget", { prompt: "a", max_tokens: 3000 }, 400, /CPU time.*at most 2399/, "max_tokens"],
    ["n > 1", { prompt: "a", n: 2 }, 400, /n > 1 is not supported/, "n"],
    ["unknown field", { prompt: "a", frobnicate: true }, 400, /frobnicate/, "frobnicate"],
    ["logit_bias", { prompt: "a", logit_bias: { "1": 5 } }, 400, /logit_bias/, "logit_bias"],
    ["oversized body", { prompt: "x".repeat(1_100_000) }, 413, /larger than 1048576 bytes/, null],
  ];
  it.each(cases)("%s", async (_name, body, status, message, param) => {
    const res = await post("/v1/completions", body);
    expect(res.status).toBe(status);
    expect(res.headers.get("x-should-retry")).toBe("false");
    const { error } = (await res.json()) as any;
    expect(error.message).toMatch(message);
    expect(error.param).toBe(param);
    expect(error.type).toMatch(/invalid_request_error|not_found_error/);
  });

  it("the SDK raises the 400 as BadRequestError, and the isolate keeps serving after all of the above", async () => {
    // The oversized body above was refused before it was all sent, so workerd closes that connection;
    // a fetch that picks it from the keep-alive pool just then fails to connect. Real SDK callers retry
    // (default 2); one retry here keeps that race out of what this test checks.
    await expect(client.completions.create({ model: MODEL, prompt: "a", n: 3 }, { maxRetries: 1 })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await stillServes();
    expect((await health()).queue).toEqual({ running: false, waiting: 0, max_waiting: 1 });
  });
});

describe("Worker: streaming, queue, abort", () => {
  // One retry: workerd sometimes misses the client's going away (test/worker/disconnect.test.ts says
  // how often); a Worker that never stops an abandoned generation still fails both tries.
  it("delivers the first event while generating; queues fairly; 429 past the depth; abort frees the isolate for the next", { retry: 1 }, async () => {
    const a = new AbortController();
    // Far more tokens than the test waits for: it is aborted long before it could finish.
    const { data: streamA, response: responseA } = await client.completions
      .create({ model: MODEL, prompt: "A", max_tokens: 2000, stream: true, seed: 3 }, { signal: a.signal })
      .withResponse();
    const itA = streamA[Symbol.asyncIterator]();
    const first = await itA.next();
    expect(first.done).toBe(false);
    // Causal check of incremental delivery: we hold A's first event, and the server is still generating A.
    expect((await health()).queue).toMatchObject({ running: true, waiting: 0 });

    // B waits for the engine (depth 1), C finds the queue full.
    const b = post("/v1/completions", { prompt: "B", max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    await vi.waitFor(async () => expect((await health()).queue.waiting).toBe(1), { timeout: 10_000, interval: 20 });
    const c = await post("/v1/completions", { prompt: "C", max_tokens: 3 });
    expect(c.status).toBe(429);
    expect(c.headers.get("retry-after")).toBe("1");
    expect((await c.json()).error.code).toBe("queue_full");

    // The client goes away mid-stream: A stops and B, waiting behind it, is served.
    a.abort();
    const resB = await b;
    expect(resB.status).toBe(200);
    const sse = parseSSE(await resB.text());
    expect(sse.data.at(-1)).toBe("[DONE]");
    expect(JSON.parse(sse.data.at(-2)!).usage.completion_tokens).toBe(3);
    // A's generation ended as aborted, far short of its 2000 tokens (it was not left running).
    const idA = responseA.headers.get("x-request-id")!;
    await vi.waitFor(() => expect(requestLine(w.logs(), idA)).toMatchObject({ outcome: "aborted" }), { timeout: 10_000 });
    const lineA = requestLine(w.logs(), idA)!;
    expect(lineA.prefilled_tokens).toBe(lineA.prompt_tokens);
    expect(lineA.completion_tokens).toBeLessThan(2000);
    expect((await health()).queue).toMatchObject({ running: false, waiting: 0 });
    await stillServes();
  });

  // Whether the abort reaches the Worker here is Miniflare's race, not ours: its entry Worker often
  // loses the disconnect, and the stall fallback needs backpressure, which ~5 KB of keep-alives do
  // not make. The whole 3000-token prefill of the tiny model takes ~0.4 s on a fast machine, so in
  // about 1 run in 3 it ended before either path fired and the 5 tokens were generated (measured
  // with the kernels of 2026-12-06 and those before them alike). That a disconnect the Worker sees
  // stops the prefill between chunks is checked in bare workerd, where it is seen every time
  // (disconnect.test.ts); here: keep-alives flow, the generation ends either way, and the engine is
  // free after it.
  it("sends keep-alive comments during a long prefill; a client leaving mid-prefill never holds the engine", async () => {
    const prompt = Array.from({ length: 3000 }, (_, i) => 500 + i);
    const a = new AbortController();
    const res = await post("/v1/completions", { prompt, max_tokens: 5, stream: true }, {}, a.signal);
    expect(res.status).toBe(200);
    const id = res.headers.get("x-request-id")!;
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    // Prefill runs in chunks of 8 tokens; between chunks the stream carries comments, not data.
    expect(new TextDecoder().decode(value)).toMatch(/^: keep-alive\n\n/);
    a.abort();
    await vi.waitFor(() => expect(requestLine(w.logs(), id)?.outcome).toMatch(/^(aborted|done)$/), { timeout: 10_000 });
    const line = requestLine(w.logs(), id)!;
    expect(line.prompt_tokens).toBe(3000);
    if (line.outcome === "aborted") {
      // Seen: stopped between prefill chunks, nothing generated.
      expect(line.prefilled_tokens).toBeLessThan(3000);
      expect(line.completion_tokens).toBe(0);
    } else {
      expect(line.completion_tokens).toBe(5);
    }
    await vi.waitFor(async () => expect((await health()).queue).toMatchObject({ running: false, waiting: 0 }), { timeout: 10_000 });
    await stillServes();
  });
});
