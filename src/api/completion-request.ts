/** `POST /v1/completions` request body → a validated CompletionRequest, or a 400 naming the field. */
import { invalid } from "./errors";
import { Fields, isObject } from "./fields";
import { parseCommon, type CommonParams } from "./params";
import { parseResponseFormat, type ResponseFormat } from "./structured-request";

export const COMPLETION_DEFAULT_MAX_TOKENS = 16;
export const MAX_LOGPROBS = 5;

export interface CompletionRequest extends CommonParams {
  maxTokens: number;
  /** Whether max_tokens came from the request (false: the default 16). */
  maxTokensGiven: boolean;
  /** Text, or token ids. */
  prompt: string | number[];
  echo: boolean;
  /** Number of alternatives per token (0..5); undefined: no logprobs. */
  logprobs?: number;
  /** Vendor extension: parse special-token text (e.g. `<|endoftext|>`) in a text prompt as the special token. */
  allowSpecialTokens: boolean;
  responseFormat: ResponseFormat;
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  if (!isObject(body)) throw invalid("body", "the request body must be a JSON object", "invalid_type");
  const f = new Fields(body);
  const common = parseCommon(f);
  const prompt = parsePrompt(f.raw("prompt"));
  const echo = f.boolean("echo") ?? false;
  const logprobs = f.integer("logprobs", { min: 0, max: MAX_LOGPROBS });
  const allowSpecialTokens = f.boolean("allow_special_tokens") ?? false;
  const responseFormat = parseResponseFormat(f.raw("response_format"));
  if (allowSpecialTokens && typeof prompt !== "string") throw invalid("allow_special_tokens", "allow_special_tokens applies only to a text prompt");
  const bestOf = f.integer("best_of");
  if (bestOf !== undefined && bestOf !== 1) throw invalid("best_of", "best_of > 1 is not supported: this server generates one sequence per request", "unsupported_parameter");
  f.unsupported("suffix", (v) => v === "", "insertion (suffix) is not implemented");
  if (echo && logprobs !== undefined) throw invalid("echo", "echo together with logprobs is not supported yet (prompt logprobs are not computed)", "unsupported_parameter");
  f.finish();
  return { ...common, maxTokens: common.maxTokens ?? COMPLETION_DEFAULT_MAX_TOKENS, maxTokensGiven: common.maxTokens !== undefined, prompt, echo, logprobs, allowSpecialTokens, responseFormat };
}

/** A string or token ids; a one-element batch is accepted (SDKs wrap single prompts), larger batches are not. */
function parsePrompt(v: unknown): string | number[] {
  if (v === undefined) throw invalid("prompt", "prompt is required", "missing_required_parameter");
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) throw invalid("prompt", "prompt must be a string or an array of token ids", "invalid_type");
  if (v.length > 0 && v.every((x) => typeof x === "number")) {
    const bad = v.find((x) => !Number.isSafeInteger(x) || (x as number) < 0);
    if (bad !== undefined) throw invalid("prompt", `prompt token ids must be non-negative integers, got ${bad}`);
    return v as number[];
  }
  if (v.length === 1 && (typeof v[0] === "string" || Array.isArray(v[0]))) return parsePrompt(v[0]);
  if (v.length > 1 && v.every((x) => typeof x === "string" || Array.isArray(x))) {
    throw invalid("prompt", "batched prompts are not supported: send one prompt per request", "unsupported_parameter");
  }
  throw invalid("prompt", "prompt must be a string or a non-empty array of token ids", "invalid_type");
}
