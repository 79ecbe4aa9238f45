/**
 * The router's rate-limit hook with fakes: asked once with prompt + max_tokens before any path,
 * a refusal goes out with its headers and reaches no path, and the request settles once with what
 * it used, on the origin path as on the edge.
 */
import { describe, expect, it } from "vitest";
import { ApiError, errorResponse } from "../../src/api/errors";
import { CircuitBreaker } from "../../src/routing/breaker";
import { ROUTING_DEFAULTS as D, type RoutingConfig } from "../../src/routing/config";
import type { LimitAnswer } from "../../src/routing/context";
import { RoutingMetrics } from "../../src/routing/metrics";
import { routeRequest } from "../../src/routing/router";

const cfg: RoutingConfig = {
  origin: { url: "http://origin.invalid", model: "m", apiKey: "k", connectTimeoutMs: 1000, firstTokenTimeoutMs: 1000, idleTimeoutMs: 1000 },
  tiers: new Map([["big", "origin-only"]]),
  defaultTierMode: "edge-only",
  autoDefault: "edge",
  longPromptTokens: 1024,
  largeMaxTokens: 512,
  breaker: { failures: 2, cooldownMs: 1000 },
  prices: { edgeUsdPerCpuMs: D.edgeUsdPerCpuMs, edgeUsdPerRequest: D.edgeUsdPerRequest, edgePrefillTokensPerS: 40, edgeDecodeTokensPerS: 8, originUsdPerGpuHour: 2, originPrefillTokensPerS: 40000, originDecodeTokensPerS: 5000 },
};

function originSSE(): Response {
  const base = { id: "x", object: "text_completion", created: 1, model: "m" };
  const events = [{ ...base, choices: [{ index: 0, text: "Hi", finish_reason: "length" }] }, { ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }];
  return new Response(events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n", { headers: { "content-type": "text/event-stream" } });
}

function setup(tier: string, answer: (tokens: number) => LimitAnswer | undefined, local: () => Promise<Response>) {
  const asked: number[] = [];
  const settled: number[] = [];
  let fetched = 0;
  const deps = {
    cfg,
    modelId: "m",
    breaker: new CircuitBreaker(cfg.breaker),
    metrics: new RoutingMetrics(0),
    edge: () => ({ state: "ready" as const, queueFull: false, countPromptTokens: () => 3, cpu: () => undefined }),
    fetch: (async () => (fetched++, originSSE())) as unknown as typeof fetch,
    now: () => 0,
    limit: async (_c: unknown, tokens: number) => {
      asked.push(tokens);
      const a = answer(tokens);
      return a && a.ok ? { ...a, settle: (u: number) => settled.push(u) } : a;
    },
  };
  const c = { req: new Request("http://w/v1/completions", { method: "POST" }), endpoint: "completions" as const, body: { prompt: "Hi", max_tokens: 50 }, local, tier, log: () => {} };
  return { run: () => routeRequest(c, deps), asked, settled, fetched: () => fetched };
}

const admit = (): LimitAnswer => ({ ok: true, headers: new Headers({ "x-ratelimit-limit-tokens": "100" }), settle: () => {} });

describe("the router's rate-limit hook", () => {
  it("an origin-routed request reserves prompt + max_tokens and settles with the origin's usage", async () => {
    const t = setup("big", admit, async () => new Response("unused"));
    const res = await t.run();
    expect(res.status).toBe(200);
    expect(res.headers.get("x-edgelm-route")).toBe("origin");
    expect(res.headers.get("x-ratelimit-limit-tokens")).toBe("100");
    await res.json();
    expect(t.asked).toEqual([53]);
    expect(t.settled).toEqual([5]);
  });

  it("a refusal goes out with its headers and no path is tried", async () => {
    const refusal: LimitAnswer = { ok: false, error: new ApiError(429, "slow down", "rate_limit_error", null, "rate_limit_exceeded", 3), headers: new Headers({ "x-ratelimit-remaining-requests": "0" }) };
    let local = 0;
    const t = setup("big", () => refusal, async () => (local++, new Response("")));
    const res = await t.run();
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("3");
    expect(res.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(res.headers.get("x-edgelm-route-reason")).toBe("rate_limited");
    expect(((await res.json()) as any).error.code).toBe("rate_limit_exceeded");
    expect(t.fetched() + local).toBe(0);
  });

  it("an edge that fails before any token, with no fallback, settles 0 used; once", async () => {
    const t = setup("free", admit, async () => errorResponse(new ApiError(503, "loading", "service_unavailable_error", null, "model_loading", 2)));
    const res = await t.run();
    expect(res.status).toBe(503);
    expect(t.settled).toEqual([0]);
  });

  it("no answer from the hook: not limited, no headers", async () => {
    const t = setup("free", () => undefined, async () => Response.json({ choices: [{ text: "x" }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
    const res = await t.run();
    expect(res.status).toBe(200);
    expect(res.headers.get("x-ratelimit-limit-tokens")).toBeNull();
  });
});
