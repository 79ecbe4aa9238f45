/**
 * The routing configuration (wrangler.toml vars, parsed in src/worker/routing-env.ts): which tiers
 * may use which path, the thresholds of the auto policy, the origin's timeouts and breaker, and the
 * price table. Defaults live here so the policy, the docs and the tests share one set of numbers.
 */

export type Route = "edge" | "origin";
/** What a tier may use: only the edge, only the origin, or whichever the policy picks. */
export type TierMode = "edge-only" | "origin-only" | "auto";
/** What auto does when no rule applies: a fixed path, or the cheaper estimate. */
export type AutoDefault = "edge" | "origin" | "cheapest";

export interface Prices {
  /** Workers Standard: $0.02 per million CPU ms. */
  edgeUsdPerCpuMs: number;
  /** Workers Standard: $0.30 per million requests (charged on both paths: the Worker runs either way). */
  edgeUsdPerRequest: number;
  /** Edge throughput for the CPU estimate (the same vars as the CPU budget); 0 = unknown. */
  edgePrefillTokensPerS: number;
  edgeDecodeTokensPerS: number;
  /** What one origin GPU costs per hour. */
  originUsdPerGpuHour: number;
  /** One GPU's aggregate throughput under batching (all concurrent requests together). */
  originPrefillTokensPerS: number;
  originDecodeTokensPerS: number;
}

export interface OriginConfig {
  /** Base URL, e.g. https://gpu.example.com (no trailing /v1). */
  url: string;
  /** The `model` sent upstream (vLLM's --served-model-name). */
  model: string;
  /** Secret ORIGIN_API_KEY (vLLM's --api-key); sent as a bearer token, never echoed. */
  apiKey?: string;
  /** Until the upstream response headers arrive. */
  connectTimeoutMs: number;
  /** From the headers until the first token. */
  firstTokenTimeoutMs: number;
  /** Between events after the first token: a stalled stream ends in an error event. */
  idleTimeoutMs: number;
}

export interface BreakerConfig {
  /** Consecutive failures that open the breaker. */
  failures: number;
  /** How long it stays open before one probe request is let through. */
  cooldownMs: number;
}

export interface RoutingConfig {
  /** Undefined: no origin; everything runs on the edge. */
  origin?: OriginConfig;
  tiers: ReadonlyMap<string, TierMode>;
  /** Mode of a tier not listed in ROUTE_TIERS (and of "open", the tier when auth is off). */
  defaultTierMode: TierMode;
  autoDefault: AutoDefault;
  /** Prompts of at least this many tokens go to the origin (auto); 0 = off. */
  longPromptTokens: number;
  /** max_tokens of at least this go to the origin (auto); 0 = off. */
  largeMaxTokens: number;
  breaker: BreakerConfig;
  prices: Prices;
}

export const ROUTING_DEFAULTS = {
  originModel: "stabilityai/stablelm-2-1_6b",
  connectTimeoutMs: 3000,
  firstTokenTimeoutMs: 15_000,
  idleTimeoutMs: 30_000,
  defaultTierMode: "auto" as TierMode,
  autoDefault: "edge" as AutoDefault,
  longPromptTokens: 1024,
  largeMaxTokens: 512,
  breakerFailures: 5,
  breakerCooldownMs: 30_000,
  edgeUsdPerCpuMs: 0.02 / 1e6,
  edgeUsdPerRequest: 0.3 / 1e6,
  originUsdPerGpuHour: 2.0,
  originPrefillTokensPerS: 40_000,
  originDecodeTokensPerS: 5000,
};

export const TIER_MODES: readonly TierMode[] = ["edge-only", "origin-only", "auto"];
