/**
 * The RATE_LIMITS var: per tier, requests and tokens per minute, and how much of that one isolate
 * may lease at a time. Unset: no limits. A tier it does not list is not limited.
 */
import { ConfigError, text, type Var } from "./env";

export interface TierLimits {
  /** Requests per minute; undefined = not limited. */
  rpm?: number;
  /** Tokens (prompt + max_tokens, reserved; refunded to what was used) per minute; undefined = not limited. */
  tpm?: number;
  /** Share of each limit one lease may hold beyond the request that asks for it (0 = every request asks the limiter). */
  slice: number;
}

export type RateLimits = ReadonlyMap<string, TierLimits>;

/**
 * A tenth: at rpm 60 an isolate goes to the Durable Object about once per 6 requests, and at most
 * a tenth of the limit sits unused in any one isolate.
 */
export const DEFAULT_SLICE = 0.1;

const EXAMPLE = '{"free": {"rpm": 60, "tpm": 20000}, "pro": {"rpm": 600, "tpm": 400000}}';

export function parseRateLimits(raw: Var): RateLimits | undefined {
  const s = text(raw);
  if (s === undefined) return undefined;
  let obj: unknown;
  try {
    obj = JSON.parse(s);
  } catch {
    throw new ConfigError(`var RATE_LIMITS is not valid JSON: set it to an object like ${EXAMPLE}`);
  }
  if (!isPlainObject(obj)) throw new ConfigError(`var RATE_LIMITS must be a JSON object like ${EXAMPLE}`);
  const tiers = new Map<string, TierLimits>();
  for (const [tier, v] of Object.entries(obj)) {
    const where = `var RATE_LIMITS, tier ${JSON.stringify(tier)}`;
    if (!isPlainObject(v)) throw new ConfigError(`${where}: must be an object like {"rpm": 60, "tpm": 20000}`);
    for (const k of Object.keys(v)) if (k !== "rpm" && k !== "tpm" && k !== "slice") throw new ConfigError(`${where}: unknown field ${JSON.stringify(k)} (rpm, tpm, slice)`);
    const limit = (k: "rpm" | "tpm") => {
      const n = v[k];
      if (n === undefined) return undefined;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 1) throw new ConfigError(`${where}: ${k} must be an integer ≥ 1, got ${JSON.stringify(n)}`);
      return n;
    };
    const slice = v.slice ?? DEFAULT_SLICE;
    if (typeof slice !== "number" || !(slice >= 0 && slice <= 1)) throw new ConfigError(`${where}: slice must be a number from 0 to 1, got ${JSON.stringify(slice)}`);
    const limits: TierLimits = { rpm: limit("rpm"), tpm: limit("tpm"), slice };
    if (limits.rpm === undefined && limits.tpm === undefined) throw new ConfigError(`${where}: give rpm, tpm or both (leave the tier out to not limit it)`);
    tiers.set(tier, limits);
  }
  return tiers.size ? tiers : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
