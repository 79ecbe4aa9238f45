/** Prompt-size checks shared by both generation endpoints, as 400s the client can act on. */
import type { Admission, AdmitResult, ApiDeps, ServedModel } from "./deps";
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

/**
 * max_tokens after admission: the host's (ApiDeps.admit: e.g. the CPU budget), then the model's own
 * (ServedModel.admit: e.g. a sharded engine's per-request platform counts), each of which may
 * refuse, or lower a default but never what the client asked for.
 */
export async function admit(deps: ApiDeps, model: ServedModel, a: Admission): Promise<number> {
  const host = admittedMaxTokens(await deps.admit?.(a), a.maxTokens, a.maxTokensGiven);
  return admittedMaxTokens(await model.admit?.({ ...a, maxTokens: host }), host, a.maxTokensGiven);
}

function admittedMaxTokens(admitted: AdmitResult, asked: number, given: boolean): number {
  const lower = admitted?.maxTokens;
  if (lower === undefined || given) return asked;
  return Math.max(1, Math.min(asked, Math.floor(lower)));
}
