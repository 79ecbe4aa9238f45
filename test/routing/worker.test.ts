/**
 * Routing end to end: the bundled Worker in real workerd (test/worker/harness.ts) with ORIGIN_URL
 * pointing at a fault-injecting front (faultOrigin.ts) over the stand-in origin — `edgelm serve`'s
 * server with a tiny F32 model, on 127.0.0.1, over real HTTP. One isolate serves the whole file,
 * so the breaker's state carries from test to test as it would in production: every test that
 * makes the origin fail ends with a success that closes it again (checked through /metrics).
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseSSE, requestLine, startWorker, testModelPath, type WorkerUnderTest, waitHealthy } from "../worker/harness";
import { ORIGIN_MODEL, startFaultOrigin, type FaultOrigin } from "./fault-origin";

const SECRET = "origin-secret-7f3a9c1e5b2d";
const KEYS = { "sk-route-free-00000001": "free", "sk-route-pro-000000002": "pro", "sk-route-ent-000000003": "ent" };
const [FREE, PRO, ENT] = Object.keys(KEYS);
const MODEL = "edgelm-tiny";
const TIMEOUT_MS = 2500;
const COOLDOWN_MS = 3000;

let w: WorkerUnderTest;
let origin: FaultOrigin;
/** Every response body and header the tests received, to check that the origin's secret is in none. */
const received: string[] = [];

beforeAll(async () => {
  origin = await startFaultOrigin(SECRET);
  w = await startWorker({
    r2Model: await testModelPath(),
    vars: {
      MODEL_KEY: "models/tiny-q4_0.gguf",
      MODEL_ID: MODEL,
      CHAT_TEMPLATE: "zephyr",
      QUEUE_DEPTH: "0",
      // One generation at a time, so one running stream makes the edge busy.
      MAX_BATCH: "1",
      LOAD_WAIT_MS: "60000",
      // 0.8 × 30 s × 100 tok/s: 2400 new tokens fit on the edge.
      CPU_BUDGET_MS: "30000",
      PREFILL_TOKENS_PER_S: "1000000",
      DECODE_TOKENS_PER_S: "100",
      API_KEYS: JSON.stringify(KEYS),
      // Miniflare may lose a disconnect; the stalled-reader fallback then frees the edge (docs/worker.md).
      STREAM_STALL_MS: "1000",
      ROUTE_TIERS: JSON.stringify({ free: "edge-only", pro: "auto", ent: "origin-only" }),
      ORIGIN_URL: origin.url,
      ORIGIN_MODEL,
      ORIGIN_API_KEY: SECRET,
      ROUTE_LONG_PROMPT_TOKENS: "64",
      ROUTE_LARGE_MAX_TOKENS: "100",
      ORIGIN_CONNECT_TIMEOUT_MS: String(TIMEOUT_MS),
      ORIGIN_FIRST_TOKEN_TIMEOUT_MS: String(TIMEOUT_MS),
      ORIGIN_IDLE_TIMEOUT_MS: String(TIMEOUT_MS),
      BREAKER_FAILURES: "3",
      BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
    },
  });
  await waitHealthy(w);
}, 120_000);

afterAll(async () => {
  await w?.close();
  await origin?.close();
});

function record(res: Response, body: string): void {
  res.headers.forEach((v, k) => received.push(`${k}: ${v}`));
  received.push(body);
}

async function post(body: Record<string, unknown>, opts: { key?: string; prefer?: string; path?: string } = {}): Promise<{ res: Response; text: string }> {
  const headers: Record<string, string> = { "content-type": "application/json", authorization: `Bearer ${opts.key ?? PRO}` };
  if (opts.prefer) headers["x-edgelm-prefer-route"] = opts.prefer;
  const res = await fetch(`${w.url}${opts.path ?? "/v1/completions"}`, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await res.text();
  record(res, text);
  return { res, text };
}

const route = (res: Response) => ({ route: res.headers.get("x-edgelm-route"), reason: res.headers.get("x-edgelm-route-reason"), fallback: res.headers.get("x-edgelm-fallback") });

async function metrics(): Promise<string> {
  const res = await fetch(`${w.url}/metrics`, { headers: { authorization: `Bearer ${PRO}` } });
  const text = await res.text();
  record(res, text);
  return text;
}

const metric = (text: string, name: string): number => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? NaN);

/** A small request the origin serves; closes the breaker (a success resets the failure count). */
async function originServes(): Promise<void> {
  origin.fault = { kind: "pass" };
  const { res } = await post({ prompt: "ok", max_tokens: 2, temperature: 0 }, { prefer: "origin" });
  expect(res.status).toBe(200);
  expect(route(res)).toMatchObject({ route: "origin", fallback: null });
  expect(metric(await metrics(), "edgelm_origin_consecutive_failures")).toBe(0);
}

/** A streamed request that prefers the origin, read to the end, as SSE payloads. */
async function streamed(body: Record<string, unknown>, opts: { key?: string; prefer?: string } = { prefer: "origin" }) {
  const { res, text } = await post({ stream: true, ...body }, opts);
  return { res, data: parseSSE(text).data };
}

describe("routing per tier, request and load", () => {
  it("auto tier, small request: the edge (default), with cost in usage and headers; the origin is not called", async () => {
    const before = origin.seen.length;
    const { res, text } = await post({ prompt: "Hello", max_tokens: 3, temperature: 0 });
    expect(res.status).toBe(200);
    expect(route(res)).toEqual({ route: "edge", reason: "default_edge", fallback: null });
    const usage = JSON.parse(text).usage;
    expect(usage).toMatchObject({ completion_tokens: 3, edgelm_route: "edge", edgelm_estimated_cost_usd: expect.any(Number), edgelm_cost_usd: expect.any(Number) });
    // The estimate assumed all 3 tokens; the actual cost used the tokens produced: equal here.
    expect(usage.edgelm_cost_usd).toBeCloseTo(usage.edgelm_estimated_cost_usd, 12);
    expect(Number(res.headers.get("x-edgelm-estimated-cost-usd"))).toBeCloseTo(usage.edgelm_estimated_cost_usd, 12);
    expect(origin.seen.length).toBe(before);
  });

  it("prefer origin: streamed from the origin in our shape (our ids and model), with the origin's text, model name and secret sent upstream", async () => {
    const req = { prompt: "Once upon a time", max_tokens: 6, seed: 11, temperature: 0.8, stream_options: { include_usage: true } };
    const { res, data } = await streamed(req);
    expect(res.status).toBe(200);
    expect(route(res)).toEqual({ route: "origin", reason: "prefer_origin", fallback: null });
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0].id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(chunks.every((c) => c.model === MODEL && c.object === "text_completion")).toBe(true);
    expect(chunks.slice(0, -1).every((c) => c.usage === null && !("stop_reason" in c.choices[0]))).toBe(true);
    const usage = chunks.at(-1).usage;
    expect(usage).toMatchObject({ completion_tokens: 6, edgelm_route: "origin", edgelm_cost_usd: expect.any(Number) });

    // What the origin received: its own model name, a stream with usage, our credential.
    const seen = origin.seen.at(-1)!;
    expect(seen).toMatchObject({ path: "/v1/completions", authorization: `Bearer ${SECRET}` });
    expect(seen.body).toMatchObject({ model: ORIGIN_MODEL, stream: true, stream_options: { include_usage: true }, max_tokens: 6, seed: 11 });

    // The text is the origin's own answer to the same request, passed through unchanged.
    const direct = (await (await fetch(`${origin.standIn.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...req, stream_options: undefined, model: ORIGIN_MODEL }) })).json()) as any;
    expect(chunks.map((c) => c.choices[0]?.text ?? "").join("")).toBe(direct.choices[0].text);
  });

  it("origin-only tier: a whole chat completion assembled from the origin's stream, same text as the origin's own answer", async () => {
    const req = { messages: [{ role: "user", content: "Hi!" }], max_tokens: 5, seed: 3 };
    const { res, text } = await post(req, { key: ENT, path: "/v1/chat/completions" });
    expect(res.status).toBe(200);
    expect(route(res)).toEqual({ route: "origin", reason: "tier_origin_only", fallback: null });
    const body = JSON.parse(text);
    expect(body).toMatchObject({ object: "chat.completion", model: MODEL, id: expect.stringMatching(/^chatcmpl-/), choices: [{ message: { role: "assistant" }, finish_reason: expect.stringMatching(/stop|length/) }] });
    expect(body.usage).toMatchObject({ edgelm_route: "origin", prompt_tokens: expect.any(Number) });
    expect(Number(res.headers.get("x-edgelm-cost-usd"))).toBeCloseTo(body.usage.edgelm_cost_usd, 12);
    const direct = (await (await fetch(`${origin.standIn.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...req, model: ORIGIN_MODEL }) })).json()) as any;
    expect(body.choices[0].message.content).toBe(direct.choices[0].message.content);
  });

  it("the unmodified openai SDK streams from the origin", async () => {
    const client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: PRO, maxRetries: 0, defaultHeaders: { "x-edgelm-prefer-route": "origin" } });
    const { data: stream, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hey" }], max_tokens: 4, stream: true }).withResponse();
    expect(response.headers.get("x-edgelm-route")).toBe("origin");
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    expect(chunks.at(-1)!.choices[0].finish_reason).toMatch(/stop|length/);
  });

  it.each([
    ["edge-only tier ignores a preference for the origin", FREE, { prompt: "a", max_tokens: 2 }, "origin", "edge", "tier_edge_only"],
    ["a named bf16 precision goes to the origin", PRO, { model: `${MODEL}:bf16`, prompt: "a", max_tokens: 2 }, undefined, "origin", "model_bf16"],
    ["a named q4_0 precision stays on the edge, whatever the preference", PRO, { model: `${MODEL}:q4_0`, prompt: "a", max_tokens: 2 }, "origin", "edge", "model_q4_0"],
    ["a long prompt goes to the origin", PRO, { prompt: Array.from({ length: 80 }, (_, i) => 1000 + i), max_tokens: 2 }, undefined, "origin", "long_prompt"],
    ["prefer edge is honoured in auto", PRO, { prompt: Array.from({ length: 80 }, (_, i) => 1000 + i), max_tokens: 2 }, "edge", "edge", "prefer_edge"],
  ])("%s", async (_name, key, body, prefer, expected, reason) => {
    const { res, text } = await post(body, { key, prefer });
    expect(res.status, text).toBe(200);
    expect(route(res)).toEqual({ route: expected, reason, fallback: null });
    expect(JSON.parse(text).model).toBe(MODEL);
  });

  it("an edge-only tier asking for bf16 gets 403; more CPU than the edge may spend, or a large max_tokens, goes to the origin", async () => {
    const { res, text } = await post({ model: `${MODEL}:bf16`, prompt: "a" }, { key: FREE });
    expect(res.status).toBe(403);
    expect(JSON.parse(text).error).toMatchObject({ code: "route_not_allowed", message: expect.stringMatching(/edge only/) });

    // Only the headers matter here: the streams are cancelled rather than generated to the end.
    for (const [maxTokens, reason] of [[3000, "cpu_budget"], [100, "large_max_tokens"]] as const) {
      const big = await fetch(`${w.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${PRO}` }, body: JSON.stringify({ prompt: "a", max_tokens: maxTokens, stream: true }) });
      expect(route(big)).toEqual({ route: "origin", reason, fallback: null });
      await big.body!.cancel();
    }
  });

  it("a busy edge (queue full) sends the next request to the origin", async () => {
    const a = new AbortController();
    const busy = await fetch(`${w.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${PRO}`, "x-edgelm-prefer-route": "edge" },
      body: JSON.stringify({ prompt: "A", max_tokens: 600, stream: true }),
      signal: a.signal,
    });
    expect(route(busy).route).toBe("edge");
    const reader = busy.body!.getReader();
    await reader.read(); // the edge is generating (QUEUE_DEPTH 0: nobody may wait)
    const { res } = await post({ prompt: "B", max_tokens: 2 });
    expect(route(res)).toEqual({ route: "origin", reason: "edge_queue_full", fallback: null });
    a.abort();
    await reader.cancel().catch(() => {});
    // The edge's own log line says when the generation let go of the engine; then the edge takes
    // requests again. Usually it ends "aborted"; but workerd now and then learns of a disconnect as a
    // failed write and reads the body on to its end (docs/worker.md, "Disconnects in workerd
    // itself"), so here it may also end "done". That the abort itself frees the engine is
    // test/worker/disconnect.test.ts's subject; this one is about routing.
    const id = busy.headers.get("x-request-id")!;
    await vi.waitFor(() => expect(["aborted", "done"]).toContain(requestLine(w.logs(), id)?.outcome), { timeout: 60_000, interval: 50 });
    expect(route((await post({ prompt: "C", max_tokens: 1 })).res).route).toBe("edge");
  });
});

describe("the origin fails before the first token → the edge serves", () => {
  it.each([
    ["5xx", () => (origin.fault = { kind: "status", status: 503 }), "http_503"],
    ["connection refused", () => origin.refuse(), "connect"],
    ["no response headers (connect timeout)", () => (origin.fault = { kind: "stall-before-headers" }), "connect_timeout"],
    ["a stall before the first token", () => (origin.fault = { kind: "stall-before-first-token" }), "first_token_timeout"],
  ])("%s", async (_name, inject, cause) => {
    await inject();
    try {
      const { res, data } = await streamed({ prompt: "Hi", max_tokens: 3, stream_options: { include_usage: true } });
      expect(res.status).toBe(200);
      expect(route(res)).toEqual({ route: "edge", reason: "prefer_origin", fallback: `origin->edge; cause=${cause}` });
      expect(data.at(-1)).toBe("[DONE]");
      expect(JSON.parse(data.at(-2)!).usage).toMatchObject({ completion_tokens: 3, edgelm_route: "edge" });
      // The router's note is on the request's own log line.
      const id = res.headers.get("x-request-id")!;
      await vi.waitFor(() => expect(requestLine(w.logs(), id)?.notes).toContainEqual(expect.stringMatching(new RegExp(`origin failed before the first token \\(${cause}\\): falling back to edge`))));
    } finally {
      await origin.accept().catch(() => {});
    }
    await originServes();
  });

  it("origin-only tier: no fallback, a 502 that says the origin failed (and nothing of its body)", async () => {
    origin.fault = { kind: "status", status: 500, body: (auth) => `{"error":{"message":"boom, you sent ${auth}"}}` };
    const { res, text } = await post({ prompt: "a", max_tokens: 2 }, { key: ENT });
    expect(res.status).toBe(502);
    expect(route(res)).toEqual({ route: "origin", reason: "tier_origin_only", fallback: null });
    expect(JSON.parse(text).error).toMatchObject({ code: "origin_error", type: "server_error" });
    expect(text).not.toContain("boom");
    await originServes();
  });

  it("a 4xx the origin means for the client is passed on, the secret scrubbed out of its message", async () => {
    origin.fault = { kind: "status", status: 400, body: (auth) => JSON.stringify({ error: { message: `This model's maximum context length is 4096 tokens (${auth})`, type: "BadRequestError", param: null, code: 400 } }) };
    const { res, text } = await post({ prompt: "a", max_tokens: 2 }, { prefer: "origin" });
    expect(res.status).toBe(400);
    expect(route(res)).toEqual({ route: "origin", reason: "prefer_origin", fallback: null });
    expect(JSON.parse(text).error).toMatchObject({ code: "origin_rejected", message: expect.stringMatching(/maximum context length is 4096 tokens \(Bearer \[redacted\]\)/) });
    await originServes();
  });
});

describe("the origin fails after the first token", () => {
  it("a stall after the first token: the tokens so far, then an error event and no [DONE]", async () => {
    origin.fault = { kind: "stall-after-first-token" };
    const { res, data } = await streamed({ prompt: "Once", max_tokens: 50 });
    expect(res.status).toBe(200);
    expect(route(res)).toEqual({ route: "origin", reason: "prefer_origin", fallback: null });
    expect(data).not.toContain("[DONE]");
    const last = JSON.parse(data.at(-1)!);
    expect(last.error).toMatchObject({ code: "origin_stall", type: "server_error", message: expect.stringMatching(/stalled/) });
    expect(data.slice(0, -1).map((d) => JSON.parse(d).choices[0].text).join("")).not.toBe("");
    await originServes();
  });

  it("a slow origin (every event delayed) is not a failure", async () => {
    origin.fault = { kind: "pass", delayMs: 150 };
    const { res, data } = await streamed({ prompt: "Slow", max_tokens: 3 });
    expect(route(res)).toEqual({ route: "origin", reason: "prefer_origin", fallback: null });
    expect(data.at(-1)).toBe("[DONE]");
    origin.fault = { kind: "pass" };
  });
});

describe("circuit breaker", () => {
  it("opens after 3 consecutive failures (the origin is then skipped), and a probe after the cool-down closes it", async () => {
    await originServes();
    origin.fault = { kind: "status", status: 500 };
    for (let i = 0; i < 3; i++) {
      const { res } = await post({ prompt: "x", max_tokens: 1 }, { prefer: "origin" });
      expect(route(res).fallback).toBe("origin->edge; cause=http_500");
    }
    // Open: no request reaches the origin; auto requests stay on the edge, origin-only ones get 503.
    const calls = origin.seen.length;
    const skipped = await post({ prompt: "x", max_tokens: 1 }, { prefer: "origin" });
    expect(route(skipped.res)).toEqual({ route: "edge", reason: "origin_unavailable", fallback: null });
    const ent = await post({ prompt: "x", max_tokens: 1 }, { key: ENT });
    expect(ent.res.status).toBe(503);
    expect(ent.res.headers.get("retry-after")).toBe(String(COOLDOWN_MS / 1000));
    expect(JSON.parse(ent.text).error.code).toBe("origin_unavailable");
    expect(origin.seen.length).toBe(calls);
    expect(metric(await metrics(), "edgelm_origin_breaker_state")).toBe(1);
    expect(w.logs()).toMatch(/origin circuit breaker open: 3 consecutive failures \(last: http_500\)/);

    // The origin recovers; after the cool-down one probe goes through and closes the breaker.
    origin.fault = { kind: "pass" };
    await vi.waitFor(
      async () => {
        const { res } = await post({ prompt: "x", max_tokens: 1 }, { prefer: "origin" });
        expect(route(res).route).toBe("origin");
      },
      { timeout: COOLDOWN_MS * 5, interval: 250 },
    );
    expect(origin.seen.length).toBe(calls + 1); // exactly one probe
    expect(metric(await metrics(), "edgelm_origin_breaker_state")).toBe(0);
    expect(w.logs()).toMatch(/origin circuit breaker half-open[\s\S]*origin circuit breaker closed: the probe succeeded/);
  });
});

describe("/metrics and secrets", () => {
  it("GET /metrics: Prometheus text with requests, tokens, cost, latency histograms and errors per route", async () => {
    const text = await metrics();
    for (const line of text.trimEnd().split("\n")) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{(\w+="[^"]*",?)*\})? -?[\d.e+-]+|\w+(\{.*\})? \+Inf)$/);
    expect(text).toMatch(/^# TYPE edgelm_requests_total counter$/m);
    expect(text).toMatch(/^edgelm_requests_total\{route="origin",endpoint="completions",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^edgelm_requests_total\{route="edge",endpoint="completions",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^edgelm_completion_tokens_total\{route="origin"\} [1-9]\d*$/m);
    expect(text).toMatch(/^edgelm_cost_usd_total\{route="edge"\} [\d.e-]+$/m);
    expect(text).toMatch(/^edgelm_request_duration_seconds_bucket\{route="origin",le="\+Inf"\} [1-9]\d*$/m);
    expect(text).toMatch(/^edgelm_time_to_first_token_seconds_count\{route="edge"\} [1-9]\d*$/m);
    expect(text).toMatch(/^edgelm_fallbacks_total\{from="origin",to="edge",cause="http_500"\} [1-9]\d*$/m);
    expect(text).toMatch(/^edgelm_errors_total\{route="origin",kind="origin_stall"\} 1$/m);
    expect(text).toMatch(/^edgelm_route_decisions_total\{route="origin",reason="long_prompt"\} 1$/m);
    const anon = await fetch(`${w.url}/metrics`);
    expect(anon.status).toBe(401);
    await anon.text();
  });

  it("the origin's secret appears in no response header or body, and in no log line", () => {
    expect(received.length).toBeGreaterThan(50);
    for (const r of received) expect(r).not.toContain(SECRET);
    expect(w.logs()).not.toContain(SECRET);
    // …while the origin did receive it on every generation request.
    expect(origin.seen.filter((s) => s.path.startsWith("/v1/")).every((s) => s.authorization === `Bearer ${SECRET}`)).toBe(true);
  });
});
