/**
 * The routing vars (wrangler.toml [vars] and the ORIGIN_API_KEY secret) → RoutingConfig, validated
 * like the rest of the Worker's config: a bad var makes every request a 500 that names it (never a
 * secret's value). Defaults: src/routing/config.ts; meanings: docs/routing.md.
 */
import { ROUTING_DEFAULTS as D, TIER_MODES, type AutoDefault, type RoutingConfig, type TierMode } from "../routing/config";
import { ConfigError, num, text, type Env, type WorkerConfig } from "./env";

function tierModeVar(name: string, v: string): TierMode {
  if (!(TIER_MODES as readonly string[]).includes(v)) throw new ConfigError(`var ${name}: a tier mode must be one of ${TIER_MODES.join(", ")}, got ${JSON.stringify(v)}`);
  return v as TierMode;
}

function parseTiers(raw: string | undefined): Map<string, TierMode> {
  const tiers = new Map<string, TierMode>();
  if (raw === undefined) return tiers;
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch {
    throw new ConfigError('var ROUTE_TIERS is not valid JSON: set it to an object like {"free": "edge-only", "pro": "auto"}');
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new ConfigError('var ROUTE_TIERS must be a JSON object like {"free": "edge-only"}');
  for (const [tier, mode] of Object.entries(obj)) tiers.set(tier, tierModeVar("ROUTE_TIERS", String(mode)));
  return tiers;
}

export function parseRoutingConfig(env: Env, worker: Pick<WorkerConfig, "prefillTokensPerS" | "decodeTokensPerS">): RoutingConfig {
  const url = text(env.ORIGIN_URL);
  if (url !== undefined) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError(`var ORIGIN_URL must be an http(s) URL, got ${JSON.stringify(url)}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new ConfigError(`var ORIGIN_URL must be an http(s) URL, got ${JSON.stringify(url)}`);
    // Credentials belong in the ORIGIN_API_KEY secret, not in a var that shows up in the dashboard.
    if (u.username || u.password) throw new ConfigError("var ORIGIN_URL must not contain credentials: put the origin's key in the ORIGIN_API_KEY secret");
  }
  const auto = text(env.ROUTE_AUTO_DEFAULT) ?? D.autoDefault;
  if (auto !== "edge" && auto !== "origin" && auto !== "cheapest") throw new ConfigError(`var ROUTE_AUTO_DEFAULT must be edge, origin or cheapest, got ${JSON.stringify(auto)}`);
  const ms = (name: keyof Env, def: number) => num(name, env[name] as string | undefined, def, { min: 1 });
  return {
    origin:
      url === undefined
        ? undefined
        : {
            url: url.replace(/\/+$/, ""),
            model: text(env.ORIGIN_MODEL) ?? D.originModel,
            apiKey: text(env.ORIGIN_API_KEY),
            connectTimeoutMs: ms("ORIGIN_CONNECT_TIMEOUT_MS", D.connectTimeoutMs),
            firstTokenTimeoutMs: ms("ORIGIN_FIRST_TOKEN_TIMEOUT_MS", D.firstTokenTimeoutMs),
            idleTimeoutMs: ms("ORIGIN_IDLE_TIMEOUT_MS", D.idleTimeoutMs),
          },
    tiers: parseTiers(text(env.ROUTE_TIERS)),
    defaultTierMode: tierModeVar("ROUTE_DEFAULT_TIER_MODE", text(env.ROUTE_DEFAULT_TIER_MODE) ?? D.defaultTierMode),
    autoDefault: auto as AutoDefault,
    longPromptTokens: num("ROUTE_LONG_PROMPT_TOKENS", env.ROUTE_LONG_PROMPT_TOKENS, D.longPromptTokens, { min: 0, integer: true }),
    largeMaxTokens: num("ROUTE_LARGE_MAX_TOKENS", env.ROUTE_LARGE_MAX_TOKENS, D.largeMaxTokens, { min: 0, integer: true }),
    breaker: {
      failures: num("BREAKER_FAILURES", env.BREAKER_FAILURES, D.breakerFailures, { min: 1, integer: true }),
      cooldownMs: num("BREAKER_COOLDOWN_MS", env.BREAKER_COOLDOWN_MS, D.breakerCooldownMs, { min: 0 }),
    },
    prices: {
      edgeUsdPerCpuMs: num("EDGE_USD_PER_CPU_MS", env.EDGE_USD_PER_CPU_MS, D.edgeUsdPerCpuMs, { min: 0 }),
      edgeUsdPerRequest: num("EDGE_USD_PER_REQUEST", env.EDGE_USD_PER_REQUEST, D.edgeUsdPerRequest, { min: 0 }),
      edgePrefillTokensPerS: worker.prefillTokensPerS,
      edgeDecodeTokensPerS: worker.decodeTokensPerS,
      originUsdPerGpuHour: num("ORIGIN_USD_PER_GPU_HOUR", env.ORIGIN_USD_PER_GPU_HOUR, D.originUsdPerGpuHour, { min: 0 }),
      originPrefillTokensPerS: num("ORIGIN_PREFILL_TOKENS_PER_S", env.ORIGIN_PREFILL_TOKENS_PER_S, D.originPrefillTokensPerS, { min: 0 }),
      originDecodeTokensPerS: num("ORIGIN_DECODE_TOKENS_PER_S", env.ORIGIN_DECODE_TOKENS_PER_S, D.originDecodeTokensPerS, { min: 0 }),
    },
  };
}
