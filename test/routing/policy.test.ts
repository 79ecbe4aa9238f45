/** The routing policy as a table: one row per rule, each checked against the rule it must beat. */
import { describe, expect, it } from "vitest";
import { ROUTING_DEFAULTS as D, type Prices } from "../../src/routing/config";
import { decideRoute, parsePrefer, splitModel, type PolicyConfig, type PolicyInput } from "../../src/routing/policy";
import { edgeCostUsd, originCostUsd } from "../../src/routing/cost";

const prices: Prices = {
  edgeUsdPerCpuMs: D.edgeUsdPerCpuMs,
  edgeUsdPerRequest: D.edgeUsdPerRequest,
  edgePrefillTokensPerS: 40,
  edgeDecodeTokensPerS: 8,
  originUsdPerGpuHour: 2,
  originPrefillTokensPerS: 40_000,
  originDecodeTokensPerS: 5000,
};

const cfg: PolicyConfig = {
  tiers: new Map([
    ["free", "edge-only"],
    ["pro", "auto"],
    ["ent", "origin-only"],
  ]),
  defaultTierMode: "auto",
  autoDefault: "edge",
  longPromptTokens: 1024,
  largeMaxTokens: 512,
  prices,
};

const base: PolicyInput = {
  tier: "pro",
  promptTokens: 10,
  maxTokens: 16,
  edge: { state: "ready", queueFull: false, cpuMs: 2000, cpuBudgetMs: 24_000 },
  origin: { configured: true, available: true },
};

type Over = Omit<Partial<PolicyInput>, "edge" | "origin"> & { edge?: Partial<PolicyInput["edge"]>; origin?: Partial<PolicyInput["origin"]> };
type Row = [string, Over, string, string, string | null];

// name, input (over `base`), route, reason, fallback
const rows: Row[] = [
  ["small request, auto: edge by default", {}, "edge", "default_edge", "origin"],
  ["unlisted tier gets the default mode (auto)", { tier: "open" }, "edge", "default_edge", "origin"],
  ["edge-only tier", { tier: "free" }, "edge", "tier_edge_only", null],
  ["edge-only tier beats prefer origin", { tier: "free", prefer: "origin" }, "edge", "tier_edge_only", null],
  ["edge-only tier beats a long prompt", { tier: "free", promptTokens: 5000 }, "edge", "tier_edge_only", null],
  ["origin-only tier", { tier: "ent" }, "origin", "tier_origin_only", null],
  ["origin-only tier beats prefer edge", { tier: "ent", prefer: "edge" }, "origin", "tier_origin_only", null],
  ["origin-only tier, origin down", { tier: "ent", origin: { available: false } }, "none", "origin_unavailable", null],
  ["origin-only tier, no origin", { tier: "ent", origin: { configured: false } }, "none", "origin_not_configured", null],
  ["edge-only tier asking for bf16", { tier: "free", precision: "bf16" }, "none", "route_not_allowed", null],
  ["origin-only tier asking for q4_0", { tier: "ent", precision: "q4_0" }, "none", "route_not_allowed", null],
  [":bf16 → origin, no fallback", { precision: "bf16" }, "origin", "model_bf16", null],
  [":bf16 beats prefer edge", { precision: "bf16", prefer: "edge" }, "origin", "model_bf16", null],
  [":bf16 with the origin down", { precision: "bf16", origin: { available: false } }, "none", "origin_unavailable", null],
  [":bf16 without an origin", { precision: "bf16", origin: { configured: false } }, "none", "origin_not_configured", null],
  [":q4_0 → edge, no fallback", { precision: "q4_0" }, "edge", "model_q4_0", null],
  [":q4_0 beats a full edge queue", { precision: "q4_0", edge: { queueFull: true } }, "edge", "model_q4_0", null],
  ["no origin configured", { promptTokens: 5000, origin: { configured: false } }, "edge", "no_origin", null],
  ["breaker open: edge, even for a long prompt", { promptTokens: 5000, origin: { available: false } }, "edge", "origin_unavailable", null],
  ["edge model failed", { edge: { state: "failed" } }, "origin", "edge_unavailable", null],
  ["CPU estimate over the edge budget", { edge: { cpuMs: 30_000 } }, "origin", "cpu_budget", "edge"],
  ["CPU over budget beats prefer edge", { prefer: "edge", edge: { cpuMs: 30_000 } }, "origin", "cpu_budget", "edge"],
  ["no budget check (no estimate): not a reason", { edge: { cpuMs: undefined, cpuBudgetMs: undefined } }, "edge", "default_edge", "origin"],
  ["full edge queue", { edge: { queueFull: true } }, "origin", "edge_queue_full", "edge"],
  ["edge still loading", { edge: { state: "loading" } }, "origin", "edge_loading", "edge"],
  ["prefer origin", { prefer: "origin" }, "origin", "prefer_origin", "edge"],
  ["prefer edge beats a long prompt", { prefer: "edge", promptTokens: 5000 }, "edge", "prefer_edge", "origin"],
  ["prefer auto = no preference", { prefer: "auto", promptTokens: 5000 }, "origin", "long_prompt", "edge"],
  ["long prompt (at the threshold)", { promptTokens: 1024 }, "origin", "long_prompt", "edge"],
  ["just under the long-prompt threshold", { promptTokens: 1023 }, "edge", "default_edge", "origin"],
  ["large max_tokens", { maxTokens: 512 }, "origin", "large_max_tokens", "edge"],
];

function input(r: Row[1]): PolicyInput {
  return { ...base, ...r, edge: { ...base.edge, ...r.edge }, origin: { ...base.origin, ...r.origin } };
}

describe("decideRoute", () => {
  it.each(rows)("%s", (_name, r, route, reason, fallback) => {
    const d = decideRoute(input(r), cfg);
    expect(d.route).toBe(route);
    expect(d.reason).toBe(reason);
    if (d.route !== "none") expect(d.fallback).toBe(fallback);
  });

  it("refusals carry a status and a message for the client", () => {
    expect(decideRoute(input({ tier: "free", precision: "bf16" }), cfg)).toMatchObject({ status: 403, message: expect.stringMatching(/free tier.*edge only/) });
    expect(decideRoute(input({ tier: "ent", origin: { available: false } }), cfg)).toMatchObject({ status: 503 });
    expect(decideRoute(input({ precision: "bf16", origin: { configured: false } }), cfg)).toMatchObject({ status: 404 });
  });

  it("estimates the cost on both paths: the chosen one and the alternative", () => {
    const d = decideRoute(input({ promptTokens: 100, maxTokens: 64 }), cfg);
    if (d.route === "none") throw new Error("refused");
    const t = { promptTokens: 100, completionTokens: 64 };
    expect(d.estimatedCostUsd).toBeCloseTo(edgeCostUsd(t, prices)!, 15);
    expect(d.alternativeCostUsd).toBeCloseTo(originCostUsd(t, prices)!, 15);
    // 100/40 s + 64/8 s = 10.5 s of CPU at $0.02 per million ms, plus the request.
    expect(d.estimatedCostUsd).toBeCloseTo(10_500 * 2e-8 + 3e-7, 15);
    // 100/40000 + 64/5000 GPU-seconds at $2/hour, plus the Worker request.
    expect(d.alternativeCostUsd).toBeCloseTo(((0.0025 + 0.0128) * 2) / 3600 + 3e-7, 15);
    const o = decideRoute(input({ prefer: "origin", promptTokens: 100, maxTokens: 64 }), cfg);
    if (o.route === "none") throw new Error("refused");
    expect(o.estimatedCostUsd).toBe(d.alternativeCostUsd);
    const none = decideRoute(input({ origin: { configured: false } }), cfg);
    if (none.route === "none") throw new Error("refused");
    expect(none.alternativeCostUsd).toBeNull();
  });

  it("auto default: edge, origin, or the cheaper estimate", () => {
    expect(decideRoute(base, { ...cfg, autoDefault: "origin" })).toMatchObject({ route: "origin", reason: "default_origin", fallback: "edge" });
    // With these prices the batched GPU is cheaper per token than the edge's CPU.
    expect(decideRoute(base, { ...cfg, autoDefault: "cheapest" })).toMatchObject({ route: "origin", reason: "cheaper_origin" });
    const pricey = { ...cfg, autoDefault: "cheapest" as const, prices: { ...prices, originUsdPerGpuHour: 100_000 } };
    expect(decideRoute(base, pricey)).toMatchObject({ route: "edge", reason: "cheaper_edge", fallback: "origin" });
  });

  it("thresholds of 0 turn the size rules off", () => {
    expect(decideRoute(input({ promptTokens: 10_000, maxTokens: 4000 }), { ...cfg, longPromptTokens: 0, largeMaxTokens: 0 })).toMatchObject({ route: "edge", reason: "default_edge" });
  });
});

describe("request parsing for the policy", () => {
  it.each([
    ["stablelm-2-1_6b", { base: "stablelm-2-1_6b" }],
    ["stablelm-2-1_6b:bf16", { base: "stablelm-2-1_6b", precision: "bf16" }],
    ["stablelm-2-1_6b:Q4_0", { base: "stablelm-2-1_6b", precision: "q4_0" }],
    ["stablelm-2-1_6b:q8_0", { base: "stablelm-2-1_6b:q8_0" }],
    [undefined, { base: undefined }],
  ] as const)("splitModel(%s)", (model, expected) => {
    expect(splitModel(model)).toEqual(expected);
  });

  it("parsePrefer ignores what it does not know", () => {
    expect(parsePrefer(" Origin ")).toBe("origin");
    expect(parsePrefer("edge")).toBe("edge");
    expect(parsePrefer("auto")).toBe("auto");
    expect(parsePrefer("gpu")).toBeUndefined();
    expect(parsePrefer(null)).toBeUndefined();
  });
});
