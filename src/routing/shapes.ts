/** The response shapes the routing layer reads and writes (the API layer's, re-exported in one place). */
import { isObject } from "../api/fields";
import type { CompletionChoice, CompletionLogprobs, CompletionObject, Usage } from "../api/completion-format";

export type { CompletionLogprobs, CompletionObject, Usage };
/** A streamed text_completion chunk (same shape as the whole object, as OpenAI's SDK says). */
export type CompletionChunk = Omit<CompletionObject, "choices"> & { choices: CompletionChoice[] };

/** The cost fields we add to `usage` (documented in docs/routing.md). */
export interface CostUsage {
  edgelm_route: "edge" | "origin";
  /** Up-front estimate on the path that served (max_tokens as the completion length). */
  edgelm_estimated_cost_usd: number | null;
  /** After the fact, from the tokens actually used. */
  edgelm_cost_usd: number | null;
}

/** Usage as a path reports it: the three counts, and whatever else it adds (the edge's timings). */
export function isUsage(v: unknown): v is Usage {
  return isObject(v) && typeof v.prompt_tokens === "number" && typeof v.completion_tokens === "number" && typeof v.total_tokens === "number";
}
