/** Prompt-size checks shared by both generation endpoints, as 400s the client can act on. */
import type { AdmitResult } from "./deps";
import { invalid } from "./errors";

export function checkPromptIds(ids: readonly number[], vocabSize: number): void {
  if (ids.length === 0) throw invalid("prompt", "the prompt is empty: give at least one token");
  const bad = ids.find((t) => t >= vocabSize);
  if (bad !== undefined) throw invalid("prompt", `token id ${bad} is outside the model's vocabulary (0..${vocabSize - 1})`);
}

export function checkContext(promptTokens: number, maxTokens: number, contextLength: number, maxTokensParam: string): void {
  if (promptTokens + maxTokens <= contextLength) return;
  throw invalid(
    maxTokensParam,
    `this model's maximum context length is ${contextLength} tokens; the prompt has ${promptTokens} tokens and ${maxTokensParam} is ${maxTokens} (${promptTokens + maxTokens} in all)`,
    "context_length_exceeded",
  );
}

/** max_tokens after admission: a host may only lower a default, never what the client asked for. */
export function admittedMaxTokens(admitted: AdmitResult, asked: number, given: boolean): number {
  const lower = admitted?.maxTokens;
  if (lower === undefined || given) return asked;
  return Math.max(1, Math.min(asked, Math.floor(lower)));
}
