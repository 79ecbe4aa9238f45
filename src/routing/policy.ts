/**
 * The routing policy: a pure function of what is known before any work — the caller's tier, the
 * request (size, named precision, preferred route), the edge's load and the origin's health — to
 * the path that serves it, why, what it is estimated to cost on that path and on the other one,
 * and where to fall back if the chosen path fails before its first token.
 *
 * Rules, in order (the first that applies decides):
 *  1. the tier: edge-only / origin-only are hard limits a client cannot override;
 *  2. a named precision (`<model>:bf16` → origin, `<model>:q4_0` → edge): the client asked for
 *     those weights, so there is no fallback to the other precision;
 *  3. availability: no origin configured, or its breaker open → edge; edge model failed → origin;
 *  4. what the edge cannot do well now: estimated CPU over its limit, a full queue, weights still
 *     loading → origin (falling back to the edge, which then answers with its own clear 4xx/429/503);
 *  5. the client's `x-edgelm-prefer-route` (soft: only among what rules 1–4 left open);
 *  6. long prompts and large max_tokens → origin (GPU prefill and batching win there);
 *  7. the deployment's default for auto: edge, origin, or the cheaper estimate.
 */
import type { AutoDefault, Prices, Route, TierMode } from "./config";
import { edgeCostUsd, originCostUsd } from "./cost";

export type Precision = "bf16" | "q4_0";
export type PreferRoute = Route | "auto";

export interface PolicyInput {
  tier: string;
  /** From a `:bf16` / `:q4_0` suffix on `model`; undefined for a bare id (the policy chooses). */
  precision?: Precision;
  /** The request header x-edgelm-prefer-route. */
  prefer?: PreferRoute;
  promptTokens: number;
  /** max_tokens as the request will run (the endpoint's default when not given). */
  maxTokens: number;
  edge: {
    state: "ready" | "loading" | "failed";
    /** A generation is running and the waiting room is full: the edge would answer 429. */
    queueFull: boolean;
    /** Estimated CPU ms of this request on the edge and what a request may use; undefined: no budget check. */
    cpuMs?: number;
    cpuBudgetMs?: number;
  };
  origin: {
    configured: boolean;
    /** The circuit breaker lets a request through (closed, or open long enough for a probe). */
    available: boolean;
  };
}

export interface PolicyConfig {
  tiers: ReadonlyMap<string, TierMode>;
  defaultTierMode: TierMode;
  autoDefault: AutoDefault;
  longPromptTokens: number;
  largeMaxTokens: number;
  prices: Prices;
}

export type RouteReason =
  | "tier_edge_only"
  | "tier_origin_only"
  | "model_bf16"
  | "model_q4_0"
  | "no_origin"
  | "origin_unavailable"
  | "edge_unavailable"
  | "cpu_budget"
  | "edge_queue_full"
  | "edge_loading"
  | "prefer_edge"
  | "prefer_origin"
  | "long_prompt"
  | "large_max_tokens"
  | "default_edge"
  | "default_origin"
  | "cheaper_edge"
  | "cheaper_origin";

export interface RouteDecision {
  route: Route;
  reason: RouteReason;
  /** Where to go if the chosen path fails before its first token; null: nowhere (the error is returned). */
  fallback: Route | null;
  /** Up-front estimate on the chosen path (max_tokens as the completion length); null when unknown. */
  estimatedCostUsd: number | null;
  /** The same estimate on the other path; null when unknown or that path is not configured. */
  alternativeCostUsd: number | null;
}

/** Neither path may serve this request (e.g. origin-only tier while the origin is down). */
export interface RouteRefusal {
  route: "none";
  reason: "route_not_allowed" | "origin_unavailable" | "origin_not_configured";
  status: 403 | 404 | 503;
  message: string;
}

export function tierMode(tier: string, cfg: Pick<PolicyConfig, "tiers" | "defaultTierMode">): TierMode {
  return cfg.tiers.get(tier) ?? cfg.defaultTierMode;
}

export function decideRoute(input: PolicyInput, cfg: PolicyConfig): RouteDecision | RouteRefusal {
  const tokens = { promptTokens: input.promptTokens, completionTokens: input.maxTokens };
  const edgeCost = edgeCostUsd(tokens, cfg.prices) ?? null;
  const originCost = input.origin.configured ? (originCostUsd(tokens, cfg.prices) ?? null) : null;
  const pick = (route: Route, reason: RouteReason, fallback: Route | null): RouteDecision => ({
    route,
    reason,
    fallback,
    estimatedCostUsd: route === "edge" ? edgeCost : originCost,
    alternativeCostUsd: route === "edge" ? originCost : edgeCost,
  });
  const { origin, edge } = input;
  const originDown = (): RouteRefusal =>
    origin.configured
      ? { route: "none", reason: "origin_unavailable", status: 503, message: "the GPU origin is unavailable right now (its circuit breaker is open after repeated failures); retry later" }
      : { route: "none", reason: "origin_not_configured", status: 503, message: "this deployment has no GPU origin configured (ORIGIN_URL)" };

  // 1. The tier.
  const mode = tierMode(input.tier, cfg);
  if (mode === "edge-only") {
    if (input.precision === "bf16") return { route: "none", reason: "route_not_allowed", status: 403, message: `the ${input.tier} tier is served on the edge only (int4); the bf16 model on the GPU origin is not available to it` };
    return pick("edge", "tier_edge_only", null);
  }
  if (mode === "origin-only") {
    if (input.precision === "q4_0") return { route: "none", reason: "route_not_allowed", status: 403, message: `the ${input.tier} tier is served by the GPU origin only (bf16); the int4 edge model is not available to it` };
    if (!origin.configured || !origin.available) return originDown();
    return pick("origin", "tier_origin_only", null);
  }

  // 2. A named precision.
  if (input.precision === "bf16") {
    if (!origin.configured) return { route: "none", reason: "origin_not_configured", status: 404, message: "the bf16 model runs on the GPU origin, which this deployment does not have (ORIGIN_URL); use the bare model id" };
    if (!origin.available) return originDown();
    return pick("origin", "model_bf16", null);
  }
  if (input.precision === "q4_0") return pick("edge", "model_q4_0", null);

  // 3. Availability.
  if (!origin.configured) return pick("edge", "no_origin", null);
  if (!origin.available) return pick("edge", "origin_unavailable", null);
  if (edge.state === "failed") return pick("origin", "edge_unavailable", null);

  // 4. What the edge cannot do well right now. Falling back to the edge still makes sense: its own
  // answer (400 cpu_budget_exceeded with what fits, 429, or a wait for the weights) is the clearest.
  if (edge.cpuMs !== undefined && edge.cpuBudgetMs !== undefined && edge.cpuMs > edge.cpuBudgetMs) return pick("origin", "cpu_budget", "edge");
  if (edge.queueFull) return pick("origin", "edge_queue_full", "edge");
  if (edge.state === "loading") return pick("origin", "edge_loading", "edge");

  // 5. The client's preference.
  if (input.prefer === "edge") return pick("edge", "prefer_edge", "origin");
  if (input.prefer === "origin") return pick("origin", "prefer_origin", "edge");

  // 6. Size.
  if (cfg.longPromptTokens > 0 && input.promptTokens >= cfg.longPromptTokens) return pick("origin", "long_prompt", "edge");
  if (cfg.largeMaxTokens > 0 && input.maxTokens >= cfg.largeMaxTokens) return pick("origin", "large_max_tokens", "edge");

  // 7. The default.
  if (cfg.autoDefault === "cheapest" && edgeCost !== null && originCost !== null) {
    return originCost < edgeCost ? pick("origin", "cheaper_origin", "edge") : pick("edge", "cheaper_edge", "origin");
  }
  return cfg.autoDefault === "origin" ? pick("origin", "default_origin", "edge") : pick("edge", "default_edge", "origin");
}

/** `stablelm-2-1_6b:bf16` → {base: "stablelm-2-1_6b", precision: "bf16"}; other names unchanged. */
export function splitModel(model: string | undefined): { base: string | undefined; precision?: Precision } {
  const m = model?.match(/^(.*):(bf16|q4_0)$/i);
  if (!m) return { base: model };
  return { base: m[1], precision: m[2].toLowerCase() as Precision };
}

/** The header's value, or undefined when absent or unrecognised (a bad hint is ignored, not an error). */
export function parsePrefer(header: string | null): PreferRoute | undefined {
  const v = header?.trim().toLowerCase();
  return v === "edge" || v === "origin" || v === "auto" ? v : undefined;
}
