/**
 * Token events → OpenAI `text_completion` objects. The streamed chunks and the whole response have
 * the same shape (as in the OpenAI SDK); finish_reason is null until the final chunk, and always present.
 */
import type { FinishReason, GenerateEvent, Timing, TokenEvent } from "../generate/generator";
import { KEEP_ALIVE } from "./sse";
import { TokenIdTracker } from "./token-ids";

/** OpenAI's usage, plus our timing fields when the host asked for them (clients ignore extra keys). */
export interface Usage extends Partial<Timing> {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Engines with a prefix cache: how much of the prompt it served. */
  prompt_tokens_details?: { cached_tokens: number };
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export interface CompletionChoice {
  text: string;
  index: number;
  logprobs: CompletionLogprobs | null;
  finish_reason: FinishReason | null;
  /** return_token_ids: the prompt's ids (the first chunk only, when streamed). */
  prompt_token_ids?: number[];
  /** return_token_ids: the ids of the tokens whose text this choice carries. */
  token_ids?: number[];
}

export interface CompletionObject {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: CompletionChoice[];
  usage?: Usage | null;
}

export interface FormatContext {
  id: string;
  created: number;
  model: string;
  /** Text to put before the output (echo). */
  echo?: string;
  logprobs: boolean;
  includeUsage: boolean;
  /** return_token_ids: the prompt's ids; the answer's ids then ride with their text. */
  promptIds?: readonly number[];
}

export function usageOf(u: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number }, timing?: Timing): Usage {
  const details = u.cached_tokens !== undefined ? { prompt_tokens_details: { cached_tokens: u.cached_tokens } } : {};
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.prompt_tokens + u.completion_tokens, ...details, ...timing };
}

/** Logprobs of one token; `offset` is where its text starts in the returned text. */
function tokenLogprobs(ev: TokenEvent, offset: number): CompletionLogprobs {
  return {
    tokens: [ev.token ?? ev.text],
    token_logprobs: [ev.logprob ?? 0],
    top_logprobs: [Object.fromEntries((ev.topLogprobs ?? []).map((t) => [t.token, t.logprob]))],
    text_offset: [offset],
  };
}

function mergeLogprobs(all: CompletionLogprobs[]): CompletionLogprobs {
  return {
    tokens: all.flatMap((l) => l.tokens),
    token_logprobs: all.flatMap((l) => l.token_logprobs),
    top_logprobs: all.flatMap((l) => l.top_logprobs),
    text_offset: all.flatMap((l) => l.text_offset),
  };
}

export async function* completionChunks(events: AsyncIterable<GenerateEvent>, ctx: FormatContext): AsyncGenerator<CompletionObject | typeof KEEP_ALIVE> {
  const base = { id: ctx.id, object: "text_completion" as const, created: ctx.created, model: ctx.model };
  const usageField = ctx.includeUsage ? { usage: null } : {};
  const tracker = ctx.promptIds && new TokenIdTracker();
  let promptIds = ctx.promptIds && { prompt_token_ids: [...ctx.promptIds] };
  const chunk = (text: string, logprobs: CompletionLogprobs | null, finish: FinishReason | null, ids: number[] = []): CompletionObject => {
    const extra = tracker ? { ...promptIds, token_ids: ids } : {};
    promptIds = undefined;
    return { ...base, choices: [{ text, index: 0, logprobs, finish_reason: finish, ...extra }], ...usageField };
  };
  let offset = 0;
  if (ctx.echo) {
    yield chunk(ctx.echo, null, null);
    offset = ctx.echo.length;
  }
  for await (const ev of events) {
    if (ev.type === "prefill") {
      yield KEEP_ALIVE;
    } else if (ev.type === "token") {
      // A held-back token releases no text and so no id: the ids wait for the text that flushes them.
      const ids = tracker?.push(ev);
      // Held-back tokens (text "") make no chunk unless the client asked for per-token logprobs.
      if (ev.text === "" && !ctx.logprobs) continue;
      yield chunk(ev.text, ctx.logprobs ? tokenLogprobs(ev, offset) : null, null, ids);
      offset += ev.text.length;
    } else {
      yield chunk("", null, ev.finishReason, tracker?.finish(ev));
      if (ctx.includeUsage) yield { ...base, choices: [], usage: usageOf(ev.usage, ev.timing) };
    }
  }
}

export async function collectCompletion(events: AsyncIterable<GenerateEvent>, ctx: FormatContext): Promise<CompletionObject> {
  let text = ctx.echo ?? "";
  const lps: CompletionLogprobs[] = [];
  const tracker = ctx.promptIds && new TokenIdTracker();
  const ids: number[] = [];
  for await (const ev of events) {
    if (ev.type === "token") {
      if (ctx.logprobs) lps.push(tokenLogprobs(ev, text.length));
      text += ev.text;
      if (tracker) ids.push(...tracker.push(ev));
    } else if (ev.type === "done") {
      const extra = tracker && ctx.promptIds ? { prompt_token_ids: [...ctx.promptIds], token_ids: [...ids, ...tracker.finish(ev)] } : {};
      return {
        id: ctx.id,
        object: "text_completion",
        created: ctx.created,
        model: ctx.model,
        choices: [{ text, index: 0, logprobs: ctx.logprobs ? mergeLogprobs(lps) : null, finish_reason: ev.finishReason, ...extra }],
        usage: usageOf(ev.usage, ev.timing),
      };
    }
  }
  throw new Error("generation ended without a done event");
}
