/**
 * Up-front CPU cost of a generation on the edge, against the Worker's CPU-time limit
 * (`[limits] cpu_ms`, mirrored in the CPU_BUDGET_MS var because a Worker cannot read its limits).
 * A request the estimate says cannot finish is refused before any work, with a 400 that says how
 * much would fit; a request that left max_tokens to the default gets a smaller default instead.
 * The routing policy (src/routing/policy.ts) reads `estimate` first and sends what does not fit to
 * the GPU origin; this admission check is what the edge itself does when it serves the request anyway.
 *
 * With batching (MAX_BATCH > 1) a request's invocation runs whole steps, other requests' rows
 * included; the scheduler hands each step to the member that has run the fewest rows beyond its
 * own (src/api/step-scheduler.ts, polled mode), so an invocation runs about its own rows, at the
 * batched cost per row (no more than alone), plus at most one step beyond them. The estimate adds
 * that step: the larger of a full step of MAX_BATCH_TOKENS prompt rows and one of MAX_BATCH decode rows.
 */
import type { Admission, AdmitResult } from "../api/deps";
import { ApiError } from "../api/errors";
import type { WorkerConfig } from "./env";

/** Part of the budget the estimate may use: throughput varies (noisy neighbours, sampling cost). */
export const BUDGET_SAFETY = 0.8;

export interface Estimate {
  cpuMs: number;
  budgetMs: number;
  /** Most new tokens that fit after this prompt (0 when the prompt alone does not fit). */
  maxTokensThatFit: number;
}

export type Decision = { route: "edge"; estimate?: Estimate; maxTokens?: number } | { route: "refuse"; estimate: Estimate; reason: string; param: string };

type Rates = Pick<WorkerConfig, "cpuBudgetMs" | "prefillTokensPerS" | "decodeTokensPerS" | "maxBatch" | "maxBatchTokens">;

/** CPU time (ms) an invocation may spend beyond its own rows when generations are batched: one step. */
export function batchSlackMs(r: Rates): number {
  if (r.maxBatch <= 1) return 0;
  return Math.max(r.maxBatchTokens / r.prefillTokensPerS, r.maxBatch / r.decodeTokensPerS) * 1000;
}

/** Undefined when the deployment set no budget or no throughput figures: nothing to check. */
export function estimate(a: Pick<Admission, "promptTokens" | "maxTokens">, r: Rates): Estimate | undefined {
  if (r.cpuBudgetMs <= 0 || r.prefillTokensPerS <= 0 || r.decodeTokensPerS <= 0) return undefined;
  // Prompt and slack come first: what is left of the budget goes to new tokens.
  const prefillMs = (a.promptTokens / r.prefillTokensPerS) * 1000 + batchSlackMs(r);
  const budgetMs = r.cpuBudgetMs * BUDGET_SAFETY;
  return {
    cpuMs: prefillMs + (a.maxTokens / r.decodeTokensPerS) * 1000,
    budgetMs,
    maxTokensThatFit: Math.max(0, Math.floor(((budgetMs - prefillMs) / 1000) * r.decodeTokensPerS)),
  };
}

export function decide(a: Admission, r: Rates): Decision {
  const est = estimate(a, r);
  if (!est || est.cpuMs <= est.budgetMs) return { route: "edge", estimate: est };
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const slack = batchSlackMs(r);
  const batch = slack > 0 ? `, and ${s(slack)} for one batched step of other requests' rows` : "";
  const why = `this request would need about ${s(est.cpuMs)} of CPU time on the edge (${a.promptTokens} prompt tokens at ${r.prefillTokensPerS} tok/s, up to ${a.maxTokens} new tokens at ${r.decodeTokensPerS} tok/s${batch}), more than the ${s(est.budgetMs)} this Worker may spend per request`;
  if (est.maxTokensThatFit < 1) return { route: "refuse", estimate: est, param: "prompt", reason: `${why}; shorten the prompt` };
  // The client did not choose max_tokens: give it what fits rather than refusing.
  if (!a.maxTokensGiven) return { route: "edge", estimate: est, maxTokens: est.maxTokensThatFit };
  return { route: "refuse", estimate: est, param: a.maxTokensParam, reason: `${why}; set ${a.maxTokensParam} to at most ${est.maxTokensThatFit}` };
}

/** ApiDeps.admit for the Worker. */
export function cpuAdmission(r: Rates): (a: Admission) => AdmitResult {
  return (a) => {
    const d = decide(a, r);
    if (d.route === "refuse") throw new ApiError(400, d.reason, "invalid_request_error", d.param, "cpu_budget_exceeded");
    return d.maxTokens === undefined ? undefined : { maxTokens: d.maxTokens };
  };
}
