/**
 * Fields shared by /v1/completions and /v1/chat/completions: sampling (OpenAI plus vLLM's top_k,
 * min_p, repetition_penalty), stop strings, seed, streaming, and the fields this server knows
 * but refuses (n > 1, best_of > 1, logit_bias) — refused loudly, never silently ignored.
 */
import { DEFAULT_SAMPLING, type SamplingOptions } from "../generate/sampler";
import { invalid } from "./errors";
import { Fields, isObject } from "./fields";

export const MAX_STOP_STRINGS = 4;

export interface CommonParams {
  model?: string;
  /** Undefined: the endpoint's default (completions 16; chat: see chatRequest). */
  maxTokens?: number;
  sampling: SamplingOptions;
  /** A uint32 seed; undefined means random. */
  seed?: number;
  stop: string[];
  stream: boolean;
  /** stream_options.include_usage: an extra usage chunk before [DONE]. */
  includeUsage: boolean;
  user?: string;
  /** vLLM's return_token_ids: send the prompt's and the answer's token ids back. */
  returnTokenIds: boolean;
}

/** Reads the common fields; the caller reads its own and then calls `f.finish()`. */
export function parseCommon(f: Fields, maxTokensKey = "max_tokens"): CommonParams {
  const model = f.string("model");
  const maxTokens = f.integer(maxTokensKey, { min: 1 });
  const sampling: SamplingOptions = {
    temperature: f.number("temperature", { min: 0, max: 2 }) ?? DEFAULT_SAMPLING.temperature,
    topP: f.number("top_p", { min: 0, max: 1, minExclusive: true }) ?? DEFAULT_SAMPLING.topP,
    // vLLM: -1 (older) and 0 (current) both mean "off".
    topK: Math.max(0, f.integer("top_k", { min: -1 }) ?? 0),
    minP: f.number("min_p", { min: 0, max: 1 }) ?? DEFAULT_SAMPLING.minP,
    repetitionPenalty: f.number("repetition_penalty", { min: 0, max: 10, minExclusive: true }) ?? DEFAULT_SAMPLING.repetitionPenalty,
    presencePenalty: f.number("presence_penalty", { min: -2, max: 2 }) ?? DEFAULT_SAMPLING.presencePenalty,
    frequencyPenalty: f.number("frequency_penalty", { min: -2, max: 2 }) ?? DEFAULT_SAMPLING.frequencyPenalty,
  };
  const seedIn = f.integer("seed");
  // OpenAI seeds are any integer; the sampler's PRNG takes 32 bits, so wrap (deterministically).
  const seed = seedIn === undefined ? undefined : ((seedIn % 2 ** 32) + 2 ** 32) % 2 ** 32;
  const stop = parseStop(f.raw("stop"));
  const stream = f.boolean("stream") ?? false;
  const includeUsage = parseStreamOptions(f.raw("stream_options"), stream);
  const user = f.string("user");
  const returnTokenIds = f.boolean("return_token_ids") ?? false;

  const n = f.integer("n");
  if (n !== undefined && n < 1) throw invalid("n", `n must be ≥ 1, got ${n}`);
  if (n !== undefined && n > 1) throw invalid("n", "n > 1 is not supported: this server generates one choice per request (send n requests instead)", "unsupported_parameter");
  f.unsupported("logit_bias", (v) => isObject(v) && Object.keys(v).length === 0, "logit_bias is not implemented");
  return { model, maxTokens, sampling, seed, stop, stream, includeUsage, user, returnTokenIds };
}

function parseStop(v: unknown): string[] {
  if (v === undefined) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) throw invalid("stop", "stop must be a string or an array of strings", "invalid_type");
  if (list.length > MAX_STOP_STRINGS) throw invalid("stop", `stop takes at most ${MAX_STOP_STRINGS} strings, got ${list.length}`);
  return (list as string[]).filter((s) => s !== "");
}

function parseStreamOptions(v: unknown, stream: boolean): boolean {
  if (v === undefined) return false;
  if (!stream) throw invalid("stream_options", "stream_options is only allowed when stream is true");
  if (!isObject(v)) throw invalid("stream_options", "stream_options must be an object", "invalid_type");
  const f = new Fields(v, "stream_options.");
  const include = f.boolean("include_usage") ?? false;
  f.finish();
  return include;
}
