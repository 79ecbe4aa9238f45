/**
 * The router in Node with fakes: an edge continuation that answers what the test says, and a fetch
 * that answers like vLLM (its extras: stop_reason, system_fingerprint, a usage chunk). Covers what
 * the workerd tests cannot provoke on cue: the edge failing before its first token → the origin.
 */
import { describe, expect, it } from "vitest";
import { errorResponse, ApiError } from "../../src/api/errors";
import { CircuitBreaker } from "../../src/routing/breaker";
import { ROUTING_DEFAULTS as D, type RoutingConfig } from "../../src/routing/config";
import { RoutingMetrics } from "../../src/routing/metrics";
import { routeRequest, type EdgeView } from "../../src/routing/router";

const cfg: RoutingConfig = {
  origin: { url: "http://origin.invalid", model: "stabilityai/stablelm-2-1_6b", apiKey: "k-secret-123", connectTimeoutMs: 1000, firstTokenTimeoutMs: 1000, idleTimeoutMs: 1000 },
  tiers: new Map(),
  defaultTierMode: "auto",
  autoDefault: "edge",
  longPromptTokens: 1024,
  largeMaxTokens: 512,
  breaker: { failures: 2, cooldownMs: 1000 },
  prices: { edgeUsdPerCpuMs: D.edgeUsdPerCpuMs, edgeUsdPerRequest: D.edgeUsdPerRequest, edgePrefillTokensPerS: 40, edgeDecodeTokensPerS: 8, originUsdPerGpuHour: 2, originPrefillTokensPerS: 40000, originDecodeTokensPerS: 5000 },
};

const edge: EdgeView = { state: "ready", queueFull: false, countPromptTokens: () => 3, cpu: () => undefined };

function vllmSSE(): Response {
  const base = { id: "cmpl-vllm-1", object: "text_completion", created: 1, model: "stabilityai/stablelm-2-1_6b", system_fingerprint: "fp" };
  const events = [
    { ...base, choices: [{ index: 0, text: " Hel", logprobs: null, finish_reason: null, stop_reason: null }] },
    { ...base, choices: [{ index: 0, text: "lo", logprobs: null, finish_reason: "length", stop_reason: null }] },
    { ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
  ];
  const body = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n";
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

function call(body: unknown, local: (b: unknown) => Promise<Response>, headers: Record<string, string> = {}) {
  const logs: string[] = [];
  const req = new Request("http://w/v1/completions", { method: "POST", headers });
  return { logs, c: { req, endpoint: "completions" as const, body, local, tier: "open", log: (l: string) => logs.push(l) } };
}

function deps(fetchImpl: typeof fetch, view: EdgeView = edge) {
  return { cfg, modelId: "stablelm-2-1_6b", breaker: new CircuitBreaker(cfg.breaker), metrics: new RoutingMetrics(0), edge: () => view, fetch: fetchImpl, now: () => Date.now() };
}

describe("routeRequest", () => {
  it("the edge answers 429 before any token → the origin serves, normalized to our shape", async () => {
    const sent: RequestInit[] = [];
    const fetchImpl = (async (_url: string, init: RequestInit) => (sent.push(init), vllmSSE())) as unknown as typeof fetch;
    const local = async () => errorResponse(new ApiError(429, "busy", "rate_limit_error", null, "queue_full", 1));
    const { c, logs } = call({ prompt: "Hi", max_tokens: 2 }, local);
    const d = deps(fetchImpl);
    const res = await routeRequest(c, d);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-edgelm-route")).toBe("origin");
    expect(res.headers.get("x-edgelm-fallback")).toBe("edge->origin; cause=edge_http_429");
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ object: "text_completion", model: "stablelm-2-1_6b", choices: [{ text: " Hello", index: 0, logprobs: null, finish_reason: "length" }] });
    expect(body.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(body).not.toHaveProperty("system_fingerprint");
    expect(body.choices[0]).not.toHaveProperty("stop_reason");
    expect(body.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, edgelm_route: "origin" });
    expect((sent[0].headers as Record<string, string>).authorization).toBe("Bearer k-secret-123");
    expect(logs.join("\n")).toMatch(/edge failed before the first token \(edge_http_429\): falling back to origin/);
    expect(d.metrics.fallbacks.get({ from: "edge", to: "origin", cause: "edge_http_429" })).toBe(1);
  });

  it("a 400 from the edge is the client's problem: returned as is, no fallback", async () => {
    let fetched = 0;
    const fetchImpl = (async () => (fetched++, vllmSSE())) as unknown as typeof fetch;
    const local = async () => errorResponse(new ApiError(400, "bad", "invalid_request_error", "prompt", "invalid_value"));
    const { c } = call({ prompt: "Hi" }, local);
    const res = await routeRequest(c, deps(fetchImpl));
    expect(res.status).toBe(400);
    expect(res.headers.get("x-edgelm-route")).toBe("edge");
    expect(fetched).toBe(0);
  });

  it("streams: usage the edge was asked for is stripped when the client did not ask; kept (with cost) when it did", async () => {
    const edgeSSE = (b: any) => {
      expect(b.stream_options).toEqual({ include_usage: true });
      const chunk = { id: "cmpl-e", object: "text_completion", created: 1, model: "stablelm-2-1_6b", choices: [{ text: "x", index: 0, logprobs: null, finish_reason: "length" }], usage: null };
      const usage = { id: "cmpl-e", object: "text_completion", created: 1, model: "stablelm-2-1_6b", choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } };
      return new Response(`: keep-alive\n\ndata: ${JSON.stringify(chunk)}\n\ndata: ${JSON.stringify(usage)}\n\ndata: [DONE]\n\n`, { headers: { "content-type": "text/event-stream" } });
    };
    const without = await (await routeRequest(call({ prompt: "Hi", stream: true }, async (b) => edgeSSE(b)).c, deps(fetch))).text();
    expect(without.startsWith(": keep-alive\n\n")).toBe(true);
    expect(without).not.toContain("usage");
    expect(without.endsWith("data: [DONE]\n\n")).toBe(true);
    const withUsage = await (await routeRequest(call({ prompt: "Hi", stream: true, stream_options: { include_usage: true } }, async (b) => edgeSSE(b)).c, deps(fetch))).text();
    expect(withUsage).toContain('"usage":null');
    expect(withUsage).toMatch(/"choices":\[\],"usage":\{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"edgelm_route":"edge","edgelm_estimated_cost_usd":[\d.e-]+,"edgelm_cost_usd":[\d.e-]+\}/);
  });

  it("validation runs before routing: a bad request never reaches either path", async () => {
    let called = 0;
    const { c } = call({ prompt: "Hi", frobnicate: 1 }, async () => (called++, new Response()));
    const res = await routeRequest(c, deps((async () => (called++, vllmSSE())) as unknown as typeof fetch));
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.param).toBe("frobnicate");
    expect(res.headers.get("x-edgelm-route")).toBe("none");
    expect(called).toBe(0);
  });

  it("an unknown model is 404 whatever the suffix", async () => {
    const { c } = call({ model: "gpt-4:bf16", prompt: "Hi" }, async () => new Response());
    const res = await routeRequest(c, deps(fetch));
    expect(res.status).toBe(404);
  });
});
