/**
 * One generation as an async iterator of token events: prefill, then sample → detokenize →
 * decode, one token at a time. Platform-neutral (Node, Workers): no timers beyond setTimeout,
 * no Node imports. The HTTP layer formats these events; it never touches logits.
 */
import type { Engine } from "../model/engine";
import { StreamDetokenizer, type StopReason, type Tokenizer } from "../tokenizer/index";
import type { TokenConstraint } from "./constraint";
import { logSumExp, topK, type TokenLogprob } from "./logprobs";
import { DEFAULT_SAMPLING, sample, seededRandom, type SamplingOptions } from "./sampler";
import { yieldToEventLoop } from "./yield";

export interface GenerateOptions {
  /** Prompt token ids (at least one). */
  prompt: readonly number[];
  /** Upper bound on generated tokens (≥ 1). */
  maxTokens: number;
  sampling?: Partial<SamplingOptions>;
  /** Same seed + same request ⇒ same tokens. Default: a random seed. */
  seed?: number;
  /** Stop strings: the output is cut before the first match, which is never emitted. */
  stop?: readonly string[];
  /** Token ids that end generation (not emitted as text). Default: the tokenizer's eos. */
  stopTokenIds?: readonly number[];
  /** Report each token's logprob and this many alternatives (0..20). Undefined: no logprobs. */
  logprobs?: number;
  signal?: AbortSignal;
  /**
   * Prompt tokens per prefill forward pass (default 128). A long prompt is fed in chunks with a
   * yield between them, so an abort is seen during prefill and the host can send keep-alives.
   */
  prefillChunkTokens?: number;
  /** When given, the done event carries prefill/decode timing measured with this clock (ms). */
  clock?: () => number;
  /**
   * Structured output: tokens that do not fit are masked before sampling (so logprobs describe
   * the distribution actually sampled), and generation ends when the output is complete.
   */
  constraint?: TokenConstraint;
}

export interface TokenEvent {
  type: "token";
  id: number;
  /** Text that is now final for the client (may be "": held back for UTF-8 or a possible stop string). */
  text: string;
  /**
   * Where this token's own text begins in the generation's decoded text (UTF-16 units, text held
   * back or cut by a stop string included): the event whose text first reaches past it releases
   * this token's text (return_token_ids pairs ids with text by it).
   */
  start: number;
  /** With `logprobs`: the token's own text (raw, may be a partial character) and probabilities. */
  token?: string;
  logprob?: number;
  topLogprobs?: (TokenLogprob & { token: string })[];
}

export type FinishReason = "stop" | "length";

/** Prefill is under way: `done` of `total` prompt tokens are in the KV cache (only between chunks). */
export interface PrefillEvent {
  type: "prefill";
  done: number;
  total: number;
}

export interface Timing {
  /** Wall time of the prompt's forward passes. */
  prefill_ms: number;
  /** Wall time from the end of prefill to the last token (sampling included). */
  decode_ms: number;
  /** Generated tokens after the first per second of decode time (null when there were none). */
  decode_tokens_per_s: number | null;
}

export interface DoneEvent {
  type: "done";
  finishReason: FinishReason;
  /** What stopped it when finishReason is "stop". */
  stop?: StopReason;
  /** cached_tokens: prompt positions served from the engine's prefix cache (engines that have one). */
  usage: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number };
  /** Only when `clock` was given. */
  timing?: Timing;
}

export type GenerateEvent = TokenEvent | DoneEvent | PrefillEvent;

export const DEFAULT_PREFILL_CHUNK_TOKENS = 128;

/** Thrown (as the iterator's rejection) when `signal` aborts; `cause` is the signal's reason. */
export class GenerationAborted extends Error {
  override name = "AbortError";
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new GenerationAborted("generation aborted", { cause: signal.reason });
}

/** Validates what the API layer should already have validated: a bad call is a bug, not a 500 later. */
function checkOptions(engine: Engine, opts: GenerateOptions): void {
  const { vocabSize, contextLength } = engine.config;
  if (opts.prompt.length === 0) throw new RangeError("generate: the prompt is empty");
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) throw new RangeError(`generate: maxTokens must be an integer ≥ 1, got ${opts.maxTokens}`);
  const bad = opts.prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= vocabSize);
  if (bad !== undefined) throw new RangeError(`generate: token id ${bad} is outside the vocabulary (0..${vocabSize - 1})`);
  const chunk = opts.prefillChunkTokens;
  if (chunk !== undefined && (!Number.isInteger(chunk) || chunk < 1)) throw new RangeError(`generate: prefillChunkTokens must be an integer ≥ 1, got ${chunk}`);
  if (opts.prompt.length + opts.maxTokens > contextLength) {
    throw new RangeError(`generate: prompt (${opts.prompt.length}) + maxTokens (${opts.maxTokens}) exceeds the context length ${contextLength}`);
  }
}

export async function* generate(engine: Engine, tokenizer: Tokenizer, opts: GenerateOptions): AsyncGenerator<GenerateEvent, void, undefined> {
  checkOptions(engine, opts);
  const { signal, maxTokens } = opts;
  const sampling: SamplingOptions = { ...DEFAULT_SAMPLING, ...opts.sampling };
  const random = seededRandom(opts.seed ?? Math.floor(Math.random() * 2 ** 32));
  const stopTokenIds = opts.stopTokenIds ?? (tokenizer.eosId === undefined ? [] : [tokenizer.eosId]);
  const detok = new StreamDetokenizer(tokenizer, { stop: opts.stop, stopTokenIds });
  const prompt = [...opts.prompt];
  const generated: number[] = [];

  // The sequence exists before the yield below: a batching engine then waits for this prompt
  // (its gather) instead of starting a step without it while this generation yields.
  const seq = engine.newSequence();
  try {
    // Yield before prefill: a request that was aborted while it waited in a queue stops here.
    await yieldToEventLoop();
    checkAbort(signal);
    const clock = opts.clock;
    const t0 = clock?.() ?? 0;
    const chunk = opts.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS;
    // The start of the prompt may already be in the engine's KV cache (a shared system prompt, the previous turn).
    const cached = engine.reusePrefix?.(seq, prompt);
    // One logits array for the whole generation, which each step may fill (the engine's choice).
    const into = new Float32Array(engine.config.vocabSize);
    let logits: Float32Array | undefined;
    for (let at = cached ?? 0; at < prompt.length; at += chunk) {
      if (at > (cached ?? 0)) {
        // Between chunks: report progress (hosts turn it into a keep-alive) and honour an abort.
        yield { type: "prefill", done: at, total: prompt.length };
        await yieldToEventLoop();
        checkAbort(signal);
      }
      logits = (await engine.forward(seq, prompt.slice(at, at + chunk), at, { into }))[0];
    }
    if (!logits) throw new Error("generate: prefill produced no logits");
    const t1 = clock?.() ?? 0;

    for (;;) {
      await yieldToEventLoop();
      checkAbort(signal);
      opts.constraint?.apply(logits, stopTokenIds);
      const id = sample(logits, sampling, random, generated.length ? [...prompt, ...generated] : prompt, generated);
      generated.push(id);
      const ev = detok.push(id);
      if (!ev.stop) opts.constraint?.accept(id);
      const complete = opts.constraint?.complete ?? false;
      const last = ev.stop !== undefined || complete || generated.length === maxTokens;
      const text = last && !ev.stop ? ev.text + detok.flush().text : ev.text;
      yield { type: "token", id, text, start: ev.start, ...(opts.logprobs !== undefined ? tokenLogprobs(tokenizer, logits, id, opts.logprobs) : {}) };
      if (last) {
        yield {
          type: "done",
          finishReason: ev.stop || complete ? "stop" : "length",
          ...(ev.stop ? { stop: ev.stop } : {}),
          usage: { prompt_tokens: prompt.length, completion_tokens: generated.length, ...(cached !== undefined ? { cached_tokens: cached } : {}) },
          ...(clock ? { timing: timing(t0, t1, clock(), generated.length) } : {}),
        };
        return;
      }
      // Yield between sampling and the next forward so a disconnect can stop the work, not just the output.
      await yieldToEventLoop();
      checkAbort(signal);
      logits = (await engine.forward(seq, [id], prompt.length + generated.length - 1, { into }))[0];
    }
  } finally {
    // However it ends (done, aborted, failed, or the consumer stopped pulling): the sequence's KV is free.
    engine.releaseSequence?.(seq);
  }
}

function timing(start: number, prefilled: number, end: number, tokens: number): Timing {
  const decodeMs = Math.max(0, end - prefilled);
  // The first token comes from the prefill's logits; the decode rate counts the forward passes after it.
  const rate = tokens > 1 && decodeMs > 0 ? (tokens - 1) / (decodeMs / 1000) : null;
  const round = (x: number) => Math.round(x * 10) / 10;
  return { prefill_ms: round(Math.max(0, prefilled - start)), decode_ms: round(decodeMs), decode_tokens_per_s: rate === null ? null : round(rate) };
}

function tokenLogprobs(tokenizer: Tokenizer, logits: Float32Array, id: number, k: number): Pick<TokenEvent, "token" | "logprob" | "topLogprobs"> {
  const lse = logSumExp(logits);
  return {
    token: tokenizer.decode([id]),
    logprob: logits[id] - lse,
    topLogprobs: topK(logits, k, lse).map((t) => ({ ...t, token: tokenizer.decode([t.id]) })),
  };
}
