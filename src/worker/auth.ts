/**
 * Optional bearer API keys from the API_KEYS secret, a JSON object {"<key>": "<tier>"}; the tier is
 * what the routing issue will use. Unset or empty: the API is open. Keys are never logged or echoed.
 */
import { ApiError } from "../api/errors";
import { ConfigError } from "./env";

export type Keys = ReadonlyMap<string, string> | undefined;

export function parseApiKeys(raw: string | number | undefined): Keys {
  const s = raw === undefined ? "" : String(raw).trim();
  if (s === "") return undefined;
  let obj: unknown;
  try {
    obj = JSON.parse(s);
  } catch {
    // Never include the secret's text in the message.
    throw new ConfigError('secret API_KEYS is not valid JSON: set it to an object like {"<key>": "<tier>"}');
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new ConfigError('secret API_KEYS must be a JSON object like {"<key>": "<tier>"}');
  const keys = new Map<string, string>();
  for (const [k, tier] of Object.entries(obj)) {
    if (k.length < 8 || typeof tier !== "string" || tier === "") throw new ConfigError("secret API_KEYS: every key must be at least 8 characters and map to a non-empty tier name");
    keys.set(k, tier);
  }
  return keys.size ? keys : undefined;
}

/** Compares without an early exit, so response time says nothing about how much of a key matched. */
export function sameKey(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

/** The bearer token as sent, if any (authorize decides whether it is a key). */
export function bearerToken(req: Request): string | undefined {
  return req.headers.get("authorization")?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
}

/** The caller's tier ("open" when auth is off), or a 401. */
export function authorize(req: Request, keys: Keys): string {
  if (!keys) return "open";
  const token = bearerToken(req);
  if (token === undefined) {
    throw new ApiError(401, "missing API key: send it as 'Authorization: Bearer <key>'", "invalid_request_error", null, "missing_api_key");
  }
  let tier: string | undefined;
  for (const [k, t] of keys) if (sameKey(k, token)) tier = t;
  if (tier === undefined) throw new ApiError(401, "invalid API key", "invalid_request_error", null, "invalid_api_key");
  return tier;
}
