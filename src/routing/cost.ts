/**
 * What a request costs on each path, in USD, from the price table. Up front (the estimate) it uses
 * max_tokens, an upper bound; after the request it uses the tokens actually produced. The edge is
 * billed by CPU time, which a Worker cannot read, so its CPU ms are modelled from the measured
 * throughput vars (the same model as the CPU budget). The origin's GPU is billed by the hour
 * whether busy or not; a request is charged its share of GPU time at the GPU's batched throughput,
 * i.e. the cost at full utilisation (docs/routing.md has the break-even).
 */
import type { Prices, Route } from "./config";

export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
}

/** Modelled edge CPU ms; undefined when the throughput vars are 0 (unknown). */
export function edgeCpuMs(t: TokenCounts, p: Prices): number | undefined {
  if (p.edgePrefillTokensPerS <= 0 || p.edgeDecodeTokensPerS <= 0) return undefined;
  return (t.promptTokens / p.edgePrefillTokensPerS + t.completionTokens / p.edgeDecodeTokensPerS) * 1000;
}

export function edgeCostUsd(t: TokenCounts, p: Prices, cpuMs = edgeCpuMs(t, p)): number | undefined {
  if (cpuMs === undefined) return undefined;
  return cpuMs * p.edgeUsdPerCpuMs + p.edgeUsdPerRequest;
}

/** GPU seconds of one request at the GPU's batched throughput. */
export function originGpuSeconds(t: TokenCounts, p: Prices): number | undefined {
  if (p.originPrefillTokensPerS <= 0 || p.originDecodeTokensPerS <= 0) return undefined;
  return t.promptTokens / p.originPrefillTokensPerS + t.completionTokens / p.originDecodeTokensPerS;
}

export function originCostUsd(t: TokenCounts, p: Prices): number | undefined {
  const s = originGpuSeconds(t, p);
  if (s === undefined) return undefined;
  // The Worker in front of the origin is billed per request too (its CPU time is negligible).
  return (s * p.originUsdPerGpuHour) / 3600 + p.edgeUsdPerRequest;
}

export function costUsd(route: Route, t: TokenCounts, p: Prices): number | undefined {
  return route === "edge" ? edgeCostUsd(t, p) : originCostUsd(t, p);
}

/** Dollars with enough significant digits for per-request amounts (1e-7 ranges), as a number. */
export function roundUsd(x: number): number {
  return Number(x.toPrecision(4));
}
