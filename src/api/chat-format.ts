/**
 * Token events → OpenAI `chat.completion` / `chat.completion.chunk` objects. The first chunk
 * carries the assistant role, the last an empty delta with finish_reason.
 */
import type { FinishReason, GenerateEvent, TokenEvent } from "../generate/generator";
import type { Tokenizer } from "../tokenizer/index";
import { usageOf, type Usage } from "./completion-format";
import { KEEP_ALIVE } from "./sse";

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

export interface ChatLogprobs {
  content: ChatTokenLogprob[];
  refusal: null;
}

/** A finished call, as in `message.tool_calls`; `arguments` is JSON text. */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A streamed piece of a call: the first carries id, type and name; later ones append to `arguments`. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
}

export type ChatFinishReason = FinishReason | "tool_calls";

export interface ChatDelta {
  role?: "assistant";
  content?: string | null;
  tool_calls?: ToolCallDelta[];
}

export interface ChatMessageOut {
  role: "assistant";
  /** null when the answer is tool calls only. */
  content: string | null;
  refusal: null;
  tool_calls?: ToolCall[];
}

export interface ChatChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: { index: number; delta: ChatDelta; logprobs: ChatLogprobs | null; finish_reason: ChatFinishReason | null }[];
  usage?: Usage | null;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: { index: number; message: ChatMessageOut; logprobs: ChatLogprobs | null; finish_reason: ChatFinishReason }[];
  usage: Usage;
}

export interface ChatFormatContext {
  id: string;
  created: number;
  model: string;
  logprobs: boolean;
  includeUsage: boolean;
  /** For each token's raw bytes (a token may be part of a UTF-8 character). */
  tokenizer: Tokenizer;
}

function bytesOf(tok: Tokenizer, id: number): number[] | null {
  const b = tok.tokenBytes(id);
  return b ? Array.from(b) : null;
}

function entry(ev: TokenEvent, tok: Tokenizer): ChatTokenLogprob {
  return {
    token: ev.token ?? ev.text,
    logprob: ev.logprob ?? 0,
    bytes: bytesOf(tok, ev.id),
    top_logprobs: (ev.topLogprobs ?? []).map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytesOf(tok, t.id) })),
  };
}

export async function* chatChunks(events: AsyncIterable<GenerateEvent>, ctx: ChatFormatContext): AsyncGenerator<ChatChunk | typeof KEEP_ALIVE> {
  const base = { id: ctx.id, object: "chat.completion.chunk" as const, created: ctx.created, model: ctx.model };
  const usageField = ctx.includeUsage ? { usage: null } : {};
  yield { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }], ...usageField };
  for await (const ev of events) {
    if (ev.type === "prefill") {
      yield KEEP_ALIVE;
    } else if (ev.type === "token") {
      if (ev.text === "" && !ctx.logprobs) continue;
      const logprobs = ctx.logprobs ? { content: [entry(ev, ctx.tokenizer)], refusal: null } : null;
      yield { ...base, choices: [{ index: 0, delta: { content: ev.text }, logprobs, finish_reason: null }], ...usageField };
    } else {
      yield { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: ev.finishReason }], ...usageField };
      if (ctx.includeUsage) yield { ...base, choices: [], usage: usageOf(ev.usage, ev.timing) };
    }
  }
}

export async function collectChat(events: AsyncIterable<GenerateEvent>, ctx: ChatFormatContext): Promise<ChatCompletion> {
  let content = "";
  const lps: ChatTokenLogprob[] = [];
  for await (const ev of events) {
    if (ev.type === "token") {
      content += ev.text;
      if (ctx.logprobs) lps.push(entry(ev, ctx.tokenizer));
    } else if (ev.type === "done") {
      return {
        id: ctx.id,
        object: "chat.completion",
        created: ctx.created,
        model: ctx.model,
        choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, logprobs: ctx.logprobs ? { content: lps, refusal: null } : null, finish_reason: ev.finishReason }],
        usage: usageOf(ev.usage, ev.timing),
      };
    }
  }
  throw new Error("generation ended without a done event");
}
